import msgspec
import pytest

from market_maker.estimators import FillIntensityEstimator
from market_maker.model import BookUpdate, Side, Trade
from market_maker.venues import SimMarket, SimParams


def drain(market):
    out = []
    while market.peek_ns() is not None:
        out.append(market.pop())
    return out


def test_same_seed_same_market_and_another_seed_another():
    params = SimParams(duration_s=120.0)
    assert drain(SimMarket(params, seed=3)) == drain(SimMarket(params, seed=3))
    assert drain(SimMarket(params, seed=3)) != drain(SimMarket(params, seed=4))


def test_books_are_one_tick_wide_on_the_grid_and_time_ordered():
    events = drain(SimMarket(SimParams(duration_s=60.0, sigma=0.001), seed=1))
    books = [e for e in events if isinstance(e, BookUpdate)]
    assert len(books) == 601
    for b in books:
        assert b.asks[0][0] - b.bids[0][0] == 1.0
        assert b.bids[0][0] == int(b.bids[0][0])
    times = [e.ts_ns for e in events]
    assert times == sorted(times)


def test_market_order_rate_is_the_stationary_hawkes_rate_a():
    params = SimParams(duration_s=4_000.0, flow_mu=1.0, flow_alpha=0.5, flow_beta=1.0)
    trades = [e for e in drain(SimMarket(params, seed=2)) if isinstance(e, Trade)]
    for side in (Side.BUY, Side.SELL):
        rate = sum(1 for t in trades if t.aggressor is side) / params.duration_s
        assert rate == pytest.approx(params.fill_intensity_a, rel=0.1)


@pytest.mark.parametrize(("mu", "k"), [(1.0, 0.05), (2.0, 0.1)])
def test_fill_intensity_fitted_from_the_sim_recovers_a_and_k(mu, k):
    params = SimParams(
        duration_s=1_500.0, flow_mu=mu, flow_alpha=0.3, flow_beta=1.0, k=k, sigma=0.00005
    )
    est = FillIntensityEstimator(
        tick_size=1.0, step_s=0.1, window_s=1_500.0, max_depth_ticks=int(4 / k)
    )
    for ev in drain(SimMarket(params, seed=5)):
        t = ev.ts_ns / 1e9
        if isinstance(ev, BookUpdate):
            est.on_mid(0.5 * (ev.bids[0][0] + ev.asks[0][0]), t)
        else:
            est.update(ev.price, t, ev.aggressor is Side.BUY)
    assert est.fitted
    assert est.a == pytest.approx(params.fill_intensity_a, rel=0.2)
    assert est.k == pytest.approx(k, rel=0.15)


def test_cascade_jumps_the_mid_and_bursts_one_side():
    params = SimParams(
        duration_s=120.0,
        sigma=0.00001,
        cascade_at_s=60.0,
        cascade_jump=-0.02,
        cascade_kick=30.0,
        cascade_side=Side.SELL,
    )
    events = drain(SimMarket(params, seed=1))
    books = [e for e in events if isinstance(e, BookUpdate)]
    before = books[590].bids[0][0]
    after = books[610].bids[0][0]
    assert after < before * 0.985
    sells = [e for e in events if isinstance(e, Trade) and e.aggressor is Side.SELL]
    burst = sum(1 for e in sells if 60e9 <= e.ts_ns < 65e9)
    calm = sum(1 for e in sells if 30e9 <= e.ts_ns < 35e9)
    assert burst > 5 * max(calm, 1)


def test_params_validate():
    with pytest.raises(ValueError):
        SimParams(flow_alpha=2.0, flow_beta=1.0)
    with pytest.raises(ValueError):
        msgspec.structs.replace(SimParams(), k=0.0)


@pytest.mark.parametrize("depth", [5, 20, 40])
def test_rate_of_market_orders_reaching_a_fixed_depth_is_a_exp_minus_k_delta(depth):
    """An order resting ``depth`` ticks from the mid is reached at A * exp(-k * depth)."""
    import math

    params = SimParams(
        duration_s=3_000.0, k=0.05, flow_mu=1.0, flow_alpha=0.5, flow_beta=1.0, sigma=0.00002
    )
    mid = None
    reached = 0
    for ev in drain(SimMarket(params, seed=9)):
        if isinstance(ev, BookUpdate):
            mid = 0.5 * (ev.bids[0][0] + ev.asks[0][0])
        elif mid is not None:
            offset = ev.price - mid if ev.aggressor is Side.BUY else mid - ev.price
            reached += offset >= depth  # prints land on whole ticks; the book mid is a half tick
    rate_per_side = reached / params.duration_s / 2
    expected = params.fill_intensity_a * math.exp(-params.k * depth)
    assert rate_per_side == pytest.approx(expected, rel=0.1)
