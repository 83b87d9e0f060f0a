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
    Side,
    Timer,
    Trade,
)
from market_maker.venues import ExchangeCore, FeeModel, LatencyModel, RateLimit

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
        (Modify(cloid="missing", price=99.0, size=0.1), "not found"),
    ],
)
def test_exchange_rules_reject(action, reason):
    ex = exchange([book(0), book(10 * S)])
    ex.submit([action], ex.pop_next().ts_ns)
    (ack,) = of(drain(ex), OrderAck)
    assert ack.status is AckStatus.REJECTED and reason in ack.reason


def test_cancel_by_cloid_is_idempotent():
    ex = exchange([book(0), book(10 * S)])
    ex.submit([Cancel(cloid="never-existed")], ex.pop_next().ts_ns)
    (ack,) = of(drain(ex), OrderAck)
    assert ack.status is AckStatus.CANCELED


def test_modify_moves_the_order_to_the_back_of_the_new_queue():
    sizes = {(Side.BUY, 98): 0.5}
    events = [book(0), book(5 * S), trade(10 * S, 98.0, 0.4, Side.SELL)]
    ex = exchange(events, sizes)
    t0 = ex.pop_next().ts_ns
    ex.submit([Place(cloid="a", side=Side.BUY, price=99.0, size=0.2)], t0)
    ex.submit([Modify(cloid="a", price=98.0, size=0.2)], t0 + 3_000_000)
    events_out = drain(ex)
    assert [a.status for a in of(events_out, OrderAck)] == [AckStatus.ACCEPTED] * 2
    assert of(events_out, Fill) == []  # 0.4 traded, 0.5 was ahead of us


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
