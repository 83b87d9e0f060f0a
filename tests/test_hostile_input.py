"""Hostile input: absurd but finite values, non-finite values, far-future and stale stamps.

Whatever arrives, the engine never raises, never hangs, and never sends an order that is not
finite, positive, on the grid and behind the touch it last accepted.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market_maker.config import AppConfig
from market_maker.engine import QuoteEngine
from market_maker.model import (
    AccountUpdate,
    BookUpdate,
    Cancel,
    Fill,
    Instrument,
    Modify,
    OrderAck,
    Place,
    Side,
    Timer,
    Trade,
)

S = 1_000_000_000
INST = Instrument(symbol="BTC", tick_size=0.1, lot_size=0.001, min_notional=10.0)

ABSURD = st.sampled_from(
    [1e308, -1e308, 1e-308, 5e-324, math.inf, -math.inf, math.nan, 0.0, -1.0, 1e18, 1e-9]
)
NEAR = st.floats(99_000.0, 101_000.0)
PRICE = st.one_of(NEAR, NEAR, NEAR, ABSURD)
SIZE = st.one_of(st.floats(0.001, 5.0), ABSURD)
DT = st.one_of(st.integers(0, S), st.sampled_from([-3600 * S, 3600 * S, 10**18]))


@st.composite
def events(draw):
    kind = draw(
        st.sampled_from(["book", "book", "trade", "trade", "account", "fill", "ack", "timer"])
    )
    dt = draw(DT)
    if kind == "book":
        bid = draw(PRICE)
        ask = draw(st.one_of(st.just(bid + 0.1), PRICE))
        return dt, ("book", bid, ask, draw(SIZE))
    if kind == "trade":
        return dt, ("trade", draw(PRICE), draw(SIZE), draw(st.booleans()))
    if kind == "account":
        return dt, (
            "account",
            draw(st.one_of(st.floats(0, 1e6), ABSURD)),
            draw(st.one_of(st.none(), ABSURD, st.floats(-1, 1))),
        )
    if kind == "fill":
        return dt, ("fill", draw(PRICE), draw(SIZE), draw(st.booleans()))
    if kind == "ack":
        return dt, ("ack", draw(st.sampled_from(["accepted", "canceled", "rejected", "bogus"])))
    return dt, ("timer",)


def build(ts, e, engine, sent):
    kind = e[0]
    if kind == "book":
        return BookUpdate(ts_ns=ts, bids=((e[1], e[3]),), asks=((e[2], e[3]),))
    if kind == "trade":
        return Trade(ts_ns=ts, price=e[1], size=e[2], aggressor=Side.BUY if e[3] else Side.SELL)
    if kind == "account":
        return AccountUpdate(ts_ns=ts, account_value=e[1], balance=e[1], position=e[2])
    if kind == "fill":
        cloid = sent[-1].cloid if sent else "0xnone"
        return Fill(
            ts_ns=ts,
            cloid=cloid,
            price=e[1],
            size=e[2],
            side=Side.BUY if e[3] else Side.SELL,
            fill_id=f"f{ts}",
        )
    if kind == "ack":
        cloid = sent[-1].cloid if sent else "0xnone"
        rid = sent[-1].request_id if sent else None
        return OrderAck(ts_ns=ts, cloid=cloid, status=e[1], request_id=rid)
    return Timer(ts_ns=ts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(), min_size=1, max_size=60))
def test_any_sequence_of_absurd_values_never_raises_and_never_sends_a_bad_order(seq):
    engine = QuoteEngine(AppConfig(), INST)
    ts = 1_700_000_000 * S
    sent = []
    for dt, e in seq:
        ts = max(0, ts + dt)
        actions = engine.on_event(build(ts, e, engine, sent))
        for a in actions:
            if isinstance(a, (Place, Modify)):
                assert math.isfinite(a.price) and a.price > 0, a
                assert math.isfinite(a.size) and a.size > 0, a
                assert a.price < 1e7, a  # a BTC-like market: nothing absurd ever leaves
                sent.append(a)
    status = engine.status()
    assert status.position == status.position  # never NaN


def book(ts, bid, spread=0.1):
    return BookUpdate(ts_ns=ts, bids=((bid, 1.0),), asks=((bid + spread, 1.0),))


def test_a_book_far_from_the_last_mid_is_refused_until_the_market_confirms_it():
    engine = QuoteEngine(AppConfig(), INST)
    engine.on_event(book(1 * S, 100_000.0))
    assert engine.on_event(book(2 * S, 1_000.0)) == []  # a fat finger, or a broken feed
    assert engine.mid == 100_000.05 and engine.counters.implausible_prices == 1
    engine.on_event(book(3 * S, 100_000.0))  # back to normal: the suspect level is forgotten
    for i in range(4, 20):  # then the market really gaps down 30 % and stays there
        engine.on_event(book(i * S, 70_000.0))
        engine.on_event(Timer(ts_ns=i * S))
    assert engine.counters.reanchored == 1
    assert engine.mid == 70_000.05


def test_a_trade_far_from_the_mid_is_refused():
    engine = QuoteEngine(AppConfig(), INST)
    engine.on_event(book(1 * S, 100_000.0))
    engine.on_event(Trade(ts_ns=2 * S, price=1e308, size=1.0, aggressor=Side.BUY))
    engine.on_event(Trade(ts_ns=3 * S, price=10.0, size=1.0, aggressor=Side.SELL))
    assert engine.counters.bad_trades + engine.counters.implausible_prices == 2
    assert engine.intensity.count == 0


def test_an_event_stamped_an_hour_ahead_does_not_become_the_engines_clock():
    """From the issue: a book stamped an hour ahead froze staleness for 10 minutes while the
    engine quoted into a market that had moved."""
    engine = QuoteEngine(AppConfig(), INST)
    engine.on_event(book(1 * S, 100_000.0))
    assert engine.on_event(book(3_600 * S, 100_000.0)) == []
    assert engine.counters.future_events == 1 and engine.now_ns == 1 * S
    engine.on_event(Timer(ts_ns=8 * S))  # no good data for 7 s
    assert "stale_data" in engine.status().reasons[0]


def test_conversions_never_overflow():
    from market_maker.risk import PositionSizer

    sizer = PositionSizer(INST)
    for value in (1e308, -1e308, math.inf, math.nan):
        assert sizer.nearest_ticks(value) == 0 and sizer.nearest_lots(value) == 0
        assert not sizer.price_ok(value) and not sizer.size_ok(value)
    assert sizer.price_ok(100_000.0) and sizer.size_ok(0.001)


def test_absurd_fills_and_snapshots_are_counted_not_applied():
    from market_maker.model import VenueSnapshot

    engine = QuoteEngine(AppConfig(), INST)
    engine.on_event(book(1 * S, 100_000.0))
    engine.on_event(
        Fill(ts_ns=2 * S, cloid="x", price=100_000.0, size=1e308, side=Side.BUY, fill_id="a")
    )
    engine.on_event(VenueSnapshot(ts_ns=3 * S, exchange_ts_ns=3 * S, position=1e308))
    counters = engine.status().order_counters
    assert counters.bad_fills == 1 and counters.bad_snapshots == 1
    assert engine.position == 0.0


def test_trades_over_a_frozen_book_do_not_hide_that_the_book_is_stale():
    engine = QuoteEngine(AppConfig(), INST)
    engine.on_event(book(1 * S, 100_000.0))
    for i in range(2, 12):
        engine.on_event(Trade(ts_ns=i * S, price=100_000.0, size=0.01, aggressor=Side.BUY))
    assert "stale_data" in engine.status().reasons[0]


def test_a_venue_that_refuses_every_modify_and_cancel_pauses_us():
    engine = QuoteEngine(AppConfig(), INST)

    def venue(actions, ts):
        """Accepts places, refuses everything else, answering whatever comes back too."""
        for _ in range(50):
            if not actions:
                return
            pending, actions = actions, []
            for a in pending:
                if isinstance(a, Place | Modify | Cancel):
                    status = "accepted" if isinstance(a, Place) else "rejected"
                    ack = OrderAck(ts_ns=ts, cloid=a.cloid, status=status, request_id=a.request_id)
                    actions += engine.on_event(ack)

    for i in range(1, 8):  # the touch moves, every re-price is refused
        venue(engine.on_event(book(i * S, 100_000.0 + 10 * i)), i * S)
    assert engine.status().order_counters.refusals >= 3
    assert engine.status().trading_state == "paused"
    assert "rejections" in engine.status().reasons[0]


def test_invalid_equity_keeps_the_loss_triggers_working_on_our_own_pnl():
    """From the issue: equity reported as NaN switched off the loss triggers while the engine's
    own PnL was -900 USD against a 500 USD limit."""
    engine = QuoteEngine(AppConfig(), INST)
    engine.on_event(book(1 * S, 100_000.0))
    engine.on_event(AccountUpdate(ts_ns=1 * S, account_value=10_000.0))
    engine.on_event(
        Fill(ts_ns=2 * S, cloid="x", price=100_000.0, size=0.1, side=Side.BUY, fill_id="a")
    )
    engine.on_event(book(3 * S, 95_000.0))  # -500 USD on 0.1 BTC
    engine.on_event(book(4 * S, 91_000.0))  # -900 USD
    engine.on_event(AccountUpdate(ts_ns=5 * S, account_value=math.nan))
    status = engine.status()
    assert status.counters.equity_estimated == 1
    assert status.trading_state == "halted"
    assert any("loss" in r or "drawdown" in r for r in status.reasons)


def test_an_account_snapshot_stamped_yesterday_does_not_reset_the_daily_baseline():
    from market_maker.risk import KillSwitch

    ks = KillSwitch(AppConfig())
    day = 86_400 * S
    ks.on_account(10 * day + S, 10_000.0)
    ks.on_account(10 * day + 2 * S, 9_700.0)
    ks.on_account(9 * day + 3 * S, 9_700.0)  # a stale snapshot from the day before
    assert ks.day_start_equity == 10_000.0


def test_absurd_equity_or_balance_never_becomes_a_limit():
    engine = QuoteEngine(AppConfig(), INST)
    engine.on_event(book(1 * S, 100_000.0))
    engine.on_event(AccountUpdate(ts_ns=2 * S, account_value=10_000.0, balance=10_000.0))
    limit = engine.status().limits.max_position_value
    engine.on_event(AccountUpdate(ts_ns=3 * S, account_value=1e308, balance=1e308))
    engine.on_event(AccountUpdate(ts_ns=4 * S, account_value=10_000.0, balance=1e308))
    assert engine.status().limits.max_position_value <= limit
    assert engine.status().counters.bad_accounts == 2


def test_a_refused_level_is_forgotten_when_the_old_touch_comes_back_unchanged():
    """A fat finger, the unchanged touch again, the same fat finger much later: the later
    print is a new suspect (refused), not the confirmation of the first one."""
    engine = QuoteEngine(AppConfig(), INST)
    wait = int(AppConfig().input.reanchor_after_s * S)
    engine.on_event(book(1 * S, 100_000.0))
    engine.on_event(book(2 * S, 1_000.0))
    engine.on_event(book(3 * S, 100_000.0))  # the very touch already accepted: sizes only
    engine.on_event(book(3 * S + 2 * wait, 1_000.0))
    assert engine.counters.reanchored == 0
    assert engine.mid == 100_000.05 and engine.counters.implausible_prices == 2
