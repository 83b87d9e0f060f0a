import itertools
from collections import deque

import pytest

from market_maker.model import (
    AckStatus,
    BookUpdate,
    Cancel,
    Fill,
    Instrument,
    Modify,
    OrderAck,
    Place,
    RequestSnapshot,
    Side,
    Timer,
    Trade,
    VenueSnapshot,
)
from market_maker.venues import ExchangeCore, Faults, FeeModel, LatencyModel, RateLimit

S = 1_000_000_000
INST = Instrument(symbol="T", tick_size=1.0, lot_size=0.001, min_notional=10.0)


class ScriptedMarket:
    """A MarketSource that plays a fixed list of books and trades."""

    def __init__(self, events, sizes=None):
        self.events = deque(events)
        self.sizes = sizes or {}

    def peek_ns(self):
        return self.events[0].ts_ns if self.events else None

    def pop(self):
        return self.events.popleft()

    def load(self):
        return 1.0

    def displayed_size(self, side, price_ticks):
        return self.sizes.get((side, price_ticks), 0.0)


def book(ts, bid=100.0, ask=101.0):
    return BookUpdate(ts_ns=ts, bids=((bid, 1.0),), asks=((ask, 1.0),))


def trade(ts, price, size, aggressor):
    return Trade(ts_ns=ts, price=price, size=size, aggressor=aggressor)


def exchange(events, sizes=None, **kw):
    kw.setdefault("order_latency", LatencyModel(base_ms=1.0))
    kw.setdefault("fees", FeeModel(maker_bps=2.0))
    return ExchangeCore(
        INST, ScriptedMarket(events, sizes), account_interval_s=1e6, timer_interval_s=1e6, **kw
    )


def drain(ex):
    out = []
    while (ev := ex.pop_next()) is not None:
        out.append(ev)
    return out


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def test_place_is_acknowledged_after_latency_and_fills_on_a_trade_through():
    ex = exchange([book(0), book(10 * S), trade(20 * S, 98.0, 0.5, Side.SELL), book(30 * S)])
    first = ex.pop_next()
    ex.submit([Place(cloid="a", side=Side.BUY, price=99.0, size=0.2)], first.ts_ns)
    events = drain(ex)
    (ack,) = of(events, OrderAck)
    assert ack.status is AckStatus.ACCEPTED and ack.ts_ns == first.ts_ns + 2_000_000
    (fill,) = of(events, Fill)
    assert fill.price == 99.0 and fill.size == pytest.approx(0.2)
    assert fill.fee == pytest.approx(99.0 * 0.2 * 2e-4)
    assert ex.position == pytest.approx(0.2)
    assert ex.equity() == pytest.approx(10_000.0 + 0.2 * (100.5 - 99.0) - fill.fee)


def test_queue_ahead_is_eaten_first_at_our_price():
    sizes = {(Side.BUY, 100): 0.3}
    events = [book(0), trade(10 * S, 100.0, 0.2, Side.SELL), trade(11 * S, 100.0, 0.25, Side.SELL)]
    ex = exchange(events, sizes)
    ex.submit([Place(cloid="a", side=Side.BUY, price=100.0, size=0.1)], ex.pop_next().ts_ns)
    fills = of(drain(ex), Fill)
    # 0.2 eats 0.2 of the 0.3 ahead; 0.25 eats the last 0.1 ahead and fills us 0.1 (all of it)
    assert [f.size for f in fills] == [pytest.approx(0.1)]


def test_a_buy_aggressor_does_not_fill_our_bid():
    ex = exchange([book(0), trade(10 * S, 99.0, 1.0, Side.BUY)])
    ex.submit([Place(cloid="a", side=Side.BUY, price=99.0, size=0.1)], ex.pop_next().ts_ns)
    assert of(drain(ex), Fill) == []


def test_book_moving_through_our_order_fills_it():
    ex = exchange([book(0), book(10 * S, bid=97.0, ask=98.0)])
    ex.submit([Place(cloid="a", side=Side.BUY, price=99.0, size=0.2)], ex.pop_next().ts_ns)
    assert len(of(drain(ex), Fill)) == 1


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (Place(cloid="x", side=Side.BUY, price=101.0, size=0.1), "post only"),
        (Place(cloid="x", side=Side.SELL, price=100.0, size=0.1), "post only"),
        (Place(cloid="x", side=Side.BUY, price=99.5, size=0.1), "grid"),
        (Place(cloid="x", side=Side.BUY, price=99.0, size=0.0005), "grid"),
        (Place(cloid="x", side=Side.BUY, price=99.0, size=0.05), "minimum notional"),
    ],
)
def test_exchange_rules_reject(action, reason):
    ex = exchange([book(0), book(10 * S)])
    ex.submit([action], ex.pop_next().ts_ns)
    (ack,) = of(drain(ex), OrderAck)
    assert ack.status is AckStatus.REJECTED and reason in ack.reason


def test_a_cancel_or_modify_of_an_order_the_venue_does_not_hold_is_refused_as_hyperliquid_does():
    ex = exchange([book(0), book(10 * S)])
    t0 = ex.pop_next().ts_ns
    ex.submit([Cancel(cloid="never-existed", request_id=7)], t0)
    ex.submit([Modify(cloid="gone", new_cloid="b", price=99.0, size=0.1, request_id=8)], t0)
    cancel, modify = of(drain(ex), OrderAck)
    assert (cancel.status, cancel.request_id) == (AckStatus.NOT_FOUND, 7)
    assert cancel.reason == "Order was never placed, already canceled, or filled."
    assert (modify.status, modify.request_id) == (AckStatus.NOT_FOUND, 8)
    assert ex.open_orders() == 0  # nothing rests as an orphan


def test_modify_replaces_the_order_with_a_fresh_one_at_the_back_of_the_new_queue():
    sizes = {(Side.BUY, 98): 0.5}
    events = [book(0), book(5 * S), trade(10 * S, 98.0, 0.4, Side.SELL)]
    ex = exchange(events, sizes)
    t0 = ex.pop_next().ts_ns
    ex.submit([Place(cloid="a", side=Side.BUY, price=99.0, size=0.2)], t0)
    ex.submit([Modify(cloid="a", new_cloid="b", price=98.0, size=0.2)], t0 + 3_000_000)
    events_out = drain(ex)
    acks = of(events_out, OrderAck)
    assert [a.status for a in acks] == [AckStatus.ACCEPTED] * 2
    assert acks[1].filled_size == 0.0  # the old leg's cumulative fill when it was replaced
    assert of(events_out, Fill) == []  # 0.4 traded, 0.5 was ahead of us
    assert [o.cloid for o in ex.snapshot(0).orders] == ["b"]


def test_a_modify_whose_new_price_would_cross_cancels_the_old_leg_and_says_so():
    ex = exchange([book(0), book(10 * S)])
    t0 = ex.pop_next().ts_ns
    ex.submit([Place(cloid="a", side=Side.BUY, price=99.0, size=0.2)], t0)
    ex.submit([Modify(cloid="a", new_cloid="b", price=101.0, size=0.2)], t0)
    _, modify = of(drain(ex), OrderAck)
    assert modify.status is AckStatus.CANCELED and "during modify" in modify.reason
    assert ex.open_orders() == 0


def test_requests_are_handled_in_the_order_sent_whatever_their_latency():
    # Jitter large enough that independent draws would let the cancel overtake its place.
    ex = exchange([book(0), book(10 * S)], order_latency=LatencyModel(base_ms=1.0, jitter_ms=50.0))
    t0 = ex.pop_next().ts_ns
    for i in range(50):
        ex.submit([Place(cloid=f"p{i}", side=Side.BUY, price=99.0, size=0.2)], t0 + i)
        ex.submit([Cancel(cloid=f"p{i}")], t0 + i)
    acks = of(drain(ex), OrderAck)
    assert [a.status for a in acks] == [AckStatus.ACCEPTED, AckStatus.CANCELED] * 50
    assert ex.open_orders() == 0
    assert all(b.ts_ns >= a.ts_ns for a, b in itertools.pairwise(acks))


def test_fills_travel_on_their_own_stream_and_can_arrive_after_a_later_cancel_ack():
    events = [book(0), trade(1 * S, 99.0, 0.1, Side.SELL), book(10 * S)]
    ex = exchange(
        events,
        order_latency=LatencyModel(base_ms=10.0),
        fill_latency=LatencyModel(base_ms=500.0),
    )
    t0 = ex.pop_next().ts_ns
    ex.submit([Place(cloid="a", side=Side.BUY, price=99.0, size=0.2)], t0)
    out = []
    while (ev := ex.pop_next()) is not None:
        out.append(ev)
        if isinstance(ev, Trade):
            ex.submit([Cancel(cloid="a")], ev.ts_ns)
    kinds = [type(e).__name__ for e in out if isinstance(e, (OrderAck, Fill))]
    assert kinds == ["OrderAck", "OrderAck", "Fill"]  # place ack, cancel ack, then the fill
    cancel_ack = of(out, OrderAck)[1]
    (fill,) = of(out, Fill)
    assert cancel_ack.status is AckStatus.CANCELED and cancel_ack.filled_size == 0.1
    assert fill.exchange_ts_ns < cancel_ack.ts_ns < fill.ts_ns


def test_a_snapshot_answers_on_the_ack_stream_with_orders_position_and_a_later_stamp():
    events = [book(0), trade(1 * S, 99.0, 0.1, Side.SELL), book(10 * S)]
    ex = exchange(events, fill_latency=LatencyModel(base_ms=500.0))
    t0 = ex.pop_next().ts_ns
    ex.submit([Place(cloid="a", side=Side.BUY, price=99.0, size=0.2)], t0)
    out = []
    while (ev := ex.pop_next()) is not None:
        out.append(ev)
        if isinstance(ev, Trade):
            ex.submit([RequestSnapshot(request_id=5)], ev.ts_ns)
    (snap,) = of(out, VenueSnapshot)
    (fill,) = of(out, Fill)
    assert snap.request_id == 5 and snap.position == pytest.approx(0.1)
    (order,) = snap.orders
    assert (order.cloid, order.size, order.filled_size) == ("a", pytest.approx(0.1), 0.1)
    assert fill.exchange_ts_ns < snap.exchange_ts_ns  # so the engine knows it is included
    assert snap.ts_ns < fill.ts_ns  # and it arrived before the fill did


def test_faults_drop_and_duplicate_private_messages():
    events = [book(0)] + [trade(i * S, 99.0, 0.001, Side.SELL) for i in range(1, 200)]
    ex = exchange(events, faults=Faults(drop_fill=0.3, duplicate=0.3))
    t0 = ex.pop_next().ts_ns
    ex.submit([Place(cloid="a", side=Side.BUY, price=99.0, size=0.5)], t0)
    fills = of(drain(ex), Fill)
    ids = [f.fill_id for f in fills]
    assert ex.stats.dropped > 0 and ex.stats.duplicated > 0
    assert len(ids) > len(set(ids))  # some twice
    assert len(set(ids)) < ex.stats.fills  # some never


def test_rate_limit_rejects_beyond_the_burst():
    ex = exchange([book(0), book(10 * S)], rate_limit=RateLimit(per_s=1.0, burst=2.0))
    t0 = ex.pop_next().ts_ns
    ex.submit([Cancel(cloid=str(i)) for i in range(4)], t0)
    acks = of(drain(ex), OrderAck)
    assert [a.status for a in acks].count(AckStatus.REJECTED) == 2
    assert ex.stats.rejected_rate_limit == 2


def test_timers_and_account_updates_are_emitted():
    events = [book(i * S) for i in range(5)]
    ex = ExchangeCore(INST, ScriptedMarket(events), account_interval_s=1.0, timer_interval_s=1.0)
    out = drain(ex)
    assert len(of(out, Timer)) >= 3
    accounts = [e for e in out if type(e).__name__ == "AccountUpdate"]
    assert len(accounts) >= 4 and accounts[0].account_value == 10_000.0


def test_one_print_is_shared_by_our_orders_at_the_same_price():
    events = [book(0), trade(10 * S, 100.0, 0.3, Side.SELL)]
    ex = exchange(events, {(Side.BUY, 100): 0.1})
    t0 = ex.pop_next().ts_ns
    ex.submit(
        [
            Place(cloid="a", side=Side.BUY, price=100.0, size=0.15),
            Place(cloid="b", side=Side.BUY, price=100.0, size=0.15),
        ],
        t0,
    )
    fills = of(drain(ex), Fill)
    # 0.1 ahead, then 0.15 to "a", then the last 0.05 to "b"
    assert [(f.cloid, round(f.size, 3)) for f in fills] == [("a", 0.15), ("b", 0.05)]
