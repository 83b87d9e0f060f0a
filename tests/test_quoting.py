"""``[quoting]``: the fair value from the book's sizes, the adverse-selection floor and the
toxic-flow guard, each through the engine, against numbers worked out by hand."""

import pytest

from market_maker.config import AppConfig, DynamicRiskConfig, QuotingConfig, StrategyConfig
from market_maker.engine import QuoteEngine, _toxic_state
from market_maker.model import BookUpdate, Fill, Side, Trade
from tests.test_engine import INST, S, accept_all

MID = 100_000.05


def book(ts, bid_size=1.0, ask_size=1.0, bid=100_000.0):
    return BookUpdate(ts_ns=ts, bids=((bid, bid_size),), asks=((bid + 0.1, ask_size),))


def make(**quoting) -> QuoteEngine:
    cfg = AppConfig(
        risk=DynamicRiskConfig(max_position=1.0),
        strategy=StrategyConfig(order_size=0.01, min_half_spread_bps=1.0, backup_levels=0),
        quoting=QuotingConfig(**quoting),
    )
    return QuoteEngine(cfg, INST)


def centre(e: QuoteEngine) -> float:
    st = e.status()
    return 0.5 * (st.bids.wanted[0].price + st.asks.wanted[0].price)


def test_the_fair_value_shifts_the_quotes_by_the_imbalance_in_whole_ticks():
    # 3 to 1 on the bid: I = 0.5; 0.4 bps a unit: 0.2 bps of 100,000 = 2 USD = 20 ticks.
    off, on = make(), make(fair_value=True, imbalance_beta_bps=0.4)
    for e in (off, on):
        e.on_event(book(S, bid_size=3.0, ask_size=1.0))
    assert centre(on) - centre(off) == pytest.approx(2.0, abs=1e-6)
    assert on.params.fair_shift == pytest.approx(2.0)
    # The same touch with the sizes turned round: only the sizes changed, and the quotes move.
    actions = on.on_event(book(2 * S, bid_size=1.0, ask_size=3.0))
    assert actions and centre(on) - centre(off) == pytest.approx(-2.0, abs=1e-6)


def test_without_the_switch_the_sizes_move_nothing():
    e = make(fair_value=False, imbalance_beta_bps=0.4)
    e.on_event(book(S, bid_size=3.0, ask_size=1.0))
    before = centre(e)
    assert e.on_event(book(2 * S, bid_size=1.0, ask_size=3.0)) == []
    assert centre(e) == before


def test_the_floor_is_the_adverse_move_after_our_fills_plus_the_fee():
    e = make(
        adverse_floor=True,
        adverse_prior_bps=0.5,
        adverse_prior_fills=1.0,
        adverse_horizon_s=1.0,
        maker_fee_bps=1.5,
    )
    ts = S
    accept_all(e, e.on_event(book(ts)), ts)
    bid = e.status().bids.resting[0]
    # Three fills of our bid, each followed a second later by a mid 4 bps lower.
    for i in range(3):
        ts += S
        e.on_event(
            Fill(ts_ns=ts, cloid=bid.cloid, price=MID, size=0.001, side=Side.BUY, fill_id=f"f{i}")
        )
        ts += S
        e.on_event(book(ts, bid=100_000.0 * (1 - 4e-4)))
        e.on_event(book(ts + 1, bid=100_000.0))
    # (1 * 0.5 + 3 settled fills of about 4 bps, barely decayed) / 4 = 3.1, + 1.5 fee
    est = e.adverse.bps
    assert 3.0 < est < 3.2
    floor_usd = (round((est + 1.5) * 20) / 20) * 1e-4 * MID
    st = e.status()
    assert MID - st.bids.wanted[0].price >= floor_usd - 0.1  # a tick of rounding
    assert st.asks.wanted[0].price - MID >= floor_usd - 0.1


def test_the_toxic_guard_steps_back_the_side_the_flow_runs_to_with_hysteresis():
    assert _toxic_state(0, 8.0, 2.0, 0.6, 0.4) == 1  # (8 - 2) / 10 = 0.6: on
    assert _toxic_state(1, 7.0, 3.0, 0.6, 0.4) == 1  # 0.4: still on (not under the exit)
    assert _toxic_state(1, 6.9, 3.1, 0.6, 0.4) == 0  # 0.38: off
    assert _toxic_state(0, 7.0, 3.0, 0.6, 0.4) == 0  # 0.4: not on either
    assert _toxic_state(1, 1.0, 9.0, 0.6, 0.4) == -1  # flipped past the other threshold
    assert _toxic_state(0, 0.0, 0.0, 0.6, 0.4) == 0
    calm, guarded = (
        make(),
        make(toxic_guard=True, toxic_enter=0.6, toxic_exit=0.4, toxic_widen_bps=2.0),
    )
    for e in (calm, guarded):
        e.on_event(book(S))
        for i in range(40):  # one-sided buying
            e.on_event(
                Trade(
                    ts_ns=S + (i + 1) * 10_000_000, price=MID + 0.05, size=0.01, aggressor=Side.BUY
                )
            )
    a, b = calm.status(), guarded.status()
    assert guarded._toxic == 1
    # The ask steps 2 bps (20 USD) further out; the bid stays.
    assert b.asks.wanted[0].price - a.asks.wanted[0].price == pytest.approx(20.0, abs=0.1)
    assert b.bids.wanted[0].price == a.bids.wanted[0].price
