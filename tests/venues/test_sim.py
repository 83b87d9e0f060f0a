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


# Informed flow, measured by brute force over a generated path (as on a capture): the mid in
# force just before each aggressive order and h seconds later, and the top-of-book imbalance
# on a 0.1 s grid against the next second's mid change.


def _path(params, seed):
    import numpy as np

    events = drain(SimMarket(params, seed=seed))
    books = [e for e in events if isinstance(e, BookUpdate)]
    trades = [e for e in events if isinstance(e, Trade)]
    bt = np.array([b.ts_ns / 1e9 for b in books])
    mid = np.array([0.5 * (b.bids[0][0] + b.asks[0][0]) for b in books])
    imb = np.array([(b.bids[0][1] - b.asks[0][1]) / (b.bids[0][1] + b.asks[0][1]) for b in books])
    tt = np.array([t.ts_ns / 1e9 for t in trades])
    sign = np.array([1.0 if t.aggressor is Side.BUY else -1.0 for t in trades])

    def mid_at(t):
        return mid[np.clip(np.searchsorted(bt, t, side="right") - 1, 0, None)]

    return bt, mid, imb, tt, sign, mid_at


def _trade_signed_move_bps(params, seed, horizon_s):
    import numpy as np

    bt, _, _, tt, sign, mid_at = _path(params, seed)
    ok = tt + horizon_s < bt[-1]
    before = mid_at(tt[ok] - 1e-9)
    return float(np.mean(sign[ok] * (mid_at(tt[ok] + horizon_s) - before) / before * 1e4))


INFORMED = SimParams(
    duration_s=3_000.0,
    sigma=0.00015,
    informed_share=0.3,
    informed_jump_bps=1.0,
    informed_jump_rate_per_s=0.5,
    informed_lead_s=0.2,
)


@pytest.mark.parametrize("horizon_s", [0.1, 1.0, 10.0])
def test_the_trade_signed_mid_move_is_the_informed_share_times_the_walk_it_sees(horizon_s):
    # 0.3 * 1.0 bps times the share of its burst's walk an informed order sees: 3.4 orders a
    # move, so its own step and half the others', 0.61 by 1 s, 0.52 by 0.1 s with a 0.2 s
    # lead. Standard error about 0.02 bps at 1 s (bursts share their move).
    expected = INFORMED.trade_signed_move_bps(horizon_s)
    assert expected == pytest.approx({0.1: 0.155, 1.0: 0.184, 10.0: 0.184}[horizon_s], abs=0.002)
    moved = _trade_signed_move_bps(INFORMED, 4, horizon_s)
    assert moved == pytest.approx(expected, abs=0.05 if horizon_s < 10.0 else 0.15)


def test_without_informed_flow_the_trade_signed_mid_move_is_nil():
    calm = msgspec.structs.replace(INFORMED, informed_share=0.0)
    assert abs(_trade_signed_move_bps(calm, 4, 1.0)) < 0.05


def test_informed_orders_are_their_share_of_the_flow_and_sigma_stays_the_total():
    import numpy as np

    market = SimMarket(INFORMED, seed=2)
    events = drain(market)
    assert market.informed_orders / market.market_orders == pytest.approx(0.3, abs=0.03)
    trades = sum(1 for e in events if isinstance(e, Trade))
    expected = INFORMED.uninformed_rate_per_s / 0.7 * INFORMED.duration_s
    assert trades == pytest.approx(expected, rel=0.08)
    # The moves carry 1e-8 of the 2.25e-8 per second; the diffusion only the rest.
    assert INFORMED.diffusion_variance_per_s == pytest.approx(1.25e-8)
    books = [e for e in events if isinstance(e, BookUpdate)]
    bt = np.array([b.ts_ns / 1e9 for b in books])
    mid = np.array([0.5 * (b.bids[0][0] + b.asks[0][0]) for b in books])
    seconds = mid[np.searchsorted(bt, np.arange(1.0, bt[-1], 1.0), side="right") - 1]
    assert float(np.std(np.diff(np.log(seconds)))) == pytest.approx(0.00015, rel=0.08)


def test_an_informed_burst_walks_the_price_and_the_book_follows_each_sweep():
    params = msgspec.structs.replace(
        INFORMED,
        duration_s=1_000.0,
        sigma=0.0004,
        k=1.0,
        informed_jump_bps=20.0,
        informed_jump_rate_per_s=0.01,
    )
    # A burst of about 29 informed orders walks a 20 bps move (200 ticks): each sweeps to where
    # its step takes the mid, and the next book is there at once, at the sweep's own time (no
    # uninformed order has a book at its own time: those come on the 0.1 s grid).
    market = SimMarket(params, seed=3)
    events = drain(market)
    mid = None
    sweeps = toward = 0
    for before, ev, after in zip(events, events[1:], events[2:], strict=False):
        if isinstance(before, BookUpdate):
            mid = 0.5 * (before.bids[0][0] + before.asks[0][0])
        if not (isinstance(ev, Trade) and isinstance(after, BookUpdate) and mid is not None):
            continue
        if after.ts_ns != ev.ts_ns:
            continue
        sweeps += 1
        touch = after.asks[0][0] if ev.aggressor is Side.BUY else after.bids[0][0]
        moved = 0.5 * (after.bids[0][0] + after.asks[0][0]) - mid
        up = ev.aggressor is Side.BUY
        # The new touch is where the sweep went (a tick of rounding), or short of it where the
        # order's own reach went further than its step.
        reached = touch <= ev.price + 1.0 if up else touch >= ev.price - 1.0
        toward += reached and (moved >= 0.0 if up else moved <= 0.0)
    assert sweeps == market.informed_orders > 1_000
    assert toward == sweeps


IMBALANCED = SimParams(
    duration_s=3_000.0,
    sigma=0.00005,
    imbalance_sd=0.4,
    imbalance_halflife_s=0.5,
    imbalance_beta_bps=0.5,
)


def test_the_book_imbalance_predicts_the_next_second_by_its_coefficient_and_persists():
    import numpy as np

    bt, _, imb, _, _, mid_at = _path(IMBALANCED, 6)
    grid = np.arange(bt[0] + 0.05, bt[-1] - 1.0, 0.1)
    now = imb[np.searchsorted(bt, grid, side="right") - 1]
    later = imb[np.searchsorted(bt, grid + 0.1, side="right") - 1]
    move = (mid_at(grid + 1.0) - mid_at(grid)) / mid_at(grid) * 1e4
    beta = np.cov(now, move)[0, 1] / np.var(now)
    assert beta == pytest.approx(0.5, abs=0.07)
    assert np.corrcoef(now, later)[0, 1] == pytest.approx(0.5 ** (0.1 / 0.5), abs=0.02)
    assert np.std(now) == pytest.approx(0.4, abs=0.03)
    assert np.std(np.diff(np.log(mid_at(np.arange(bt[0], bt[-1], 1.0))))) == pytest.approx(
        0.00005, rel=0.08
    )


def test_sides_have_their_own_hawkes_flow():
    params = SimParams(duration_s=2_000.0, flow_mu=1.0, sell_flow_mu=2.0, sell_flow_alpha=0.2)
    trades = [e for e in drain(SimMarket(params, seed=1)) if isinstance(e, Trade)]
    buys = sum(1 for t in trades if t.aggressor is Side.BUY) / params.duration_s
    sells = sum(1 for t in trades if t.aggressor is Side.SELL) / params.duration_s
    assert buys == pytest.approx(1.0 / (1 - 0.5), rel=0.12)
    assert sells == pytest.approx(2.0 / (1 - 0.2), rel=0.12)


def test_informed_params_validate_the_variance_budget():
    with pytest.raises(ValueError, match="more than sigma"):
        SimParams(
            sigma=0.0001, informed_share=0.3, informed_jump_bps=2.0, informed_jump_rate_per_s=1.0
        )
    with pytest.raises(ValueError):
        SimParams(informed_share=1.0)
    with pytest.raises(ValueError):
        SimParams(imbalance_beta_bps=0.4)  # no imbalance to carry it
    with pytest.raises(ValueError):
        SimParams(sell_flow_alpha=3.0)
