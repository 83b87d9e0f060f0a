"""The simulated exchange's Hyperliquid profile, from reference section 7: actions commit in
blocks (post-only, then cancels, then IOCs), answers and fills leave at the block's time,
snapshots are answered at once from committed state on a skewed server clock, late actions
expire, and paying makers can jump ahead of us at our level."""

import pytest

from market_maker.model import (
    AckStatus,
    Cancel,
    Fill,
    Modify,
    OrderAck,
    Place,
    RequestSnapshot,
    Side,
    VenueSnapshot,
)
from market_maker.venues import Faults, LatencyModel
from market_maker.venues.exchange import FIFO, HYPERLIQUID, VenueProfile
from tests.venues.test_exchange import book, drain, exchange, of, trade

S = 1_000_000_000
MS = 1_000_000
BLOCK = 70 * MS
EXPIRED = "Action already expired"


def hl(events, sizes=None, **kw):
    kw.setdefault("profile", HYPERLIQUID)
    return exchange(events, sizes, **kw)


def bid(cloid, price=99.0, size=0.2, rid=0):
    return Place(cloid=cloid, side=Side.BUY, price=price, size=size, request_id=rid)


def ioc_buy(cloid, rid=0, size=0.2):
    return Place(
        cloid=cloid, side=Side.BUY, price=101.0, size=size, post_only=False, request_id=rid
    )


def test_within_a_block_an_ioc_sent_before_a_cancel_trades_after_it():
    orders = {}
    for name, profile in (("hyperliquid", HYPERLIQUID), ("fifo", FIFO)):
        ex = exchange([book(0), book(10 * S)], profile=profile)
        ex.submit([Place(cloid="ask", side=Side.SELL, price=102.0, size=0.2, request_id=1)], 0)
        ex.submit([ioc_buy("ioc", rid=2), Cancel(cloid="ask", request_id=3)], 1 * S)
        events = drain(ex)
        orders[name] = [a.request_id for a in of(events, OrderAck)]
        (fill,) = of(events, Fill)
        assert fill.cloid == "ioc" and ex.position == pytest.approx(0.2)
    assert orders == {"hyperliquid": [1, 3, 2], "fifo": [1, 2, 3]}


def test_within_a_block_a_post_only_place_goes_before_a_cancel_sent_before_it():
    seen = {}
    for name, profile in (("hyperliquid", HYPERLIQUID), ("fifo", FIFO)):
        ex = exchange([book(0), book(10 * S)], profile=profile)
        ex.submit([Cancel(cloid="b", request_id=1), bid("b", rid=2)], 1 * S)
        acks = {a.request_id: a.status for a in of(drain(ex), OrderAck)}
        seen[name] = (acks[1], acks[2], ex.open_orders())
    # One block: the place, then the cancel, which finds the order.
    assert seen["hyperliquid"] == (AckStatus.CANCELED, AckStatus.ACCEPTED, 0)
    # First in, first out: the cancel finds nothing and the order stays.
    assert seen["fifo"] == (AckStatus.NOT_FOUND, AckStatus.ACCEPTED, 1)


def test_a_block_applies_no_taker_actions_then_cancels_then_takers_in_arrival_order():
    ex = hl([book(0), book(10 * S)])
    ex.submit([bid("a", 98.0, rid=1), bid("b", 97.0, rid=2)], 0)
    ex.submit(
        [
            ioc_buy("i1", rid=3),
            Cancel(cloid="a", request_id=4),
            Modify(cloid="b", new_cloid="b2", price=96.0, size=0.2, request_id=5),
            ioc_buy("i2", rid=6),
            Cancel(cloid="x", request_id=7),
            bid("c", rid=8),
        ],
        1 * S,
    )
    acks = of(drain(ex), OrderAck)
    assert [a.request_id for a in acks] == [1, 2, 5, 8, 4, 7, 3, 6]
    assert ex.stats.blocks == 2


def test_a_snapshot_asked_right_after_a_place_misses_it_until_its_block_commits():
    ex = hl([book(0), book(10 * S)])
    ex.submit([RequestSnapshot(request_id=1), bid("b", rid=2)], 1 * S)
    ex.submit([RequestSnapshot(request_id=3)], 1 * S + 2 * MS)  # still before the block
    ex.submit([RequestSnapshot(request_id=4)], 1 * S + 2 * BLOCK)  # after it
    events = drain(ex)
    snaps = {s.request_id: s for s in of(events, VenueSnapshot)}
    (ack,) = of(events, OrderAck)
    assert snaps[1].orders == () and snaps[3].orders == ()
    assert [o.cloid for o in snaps[4].orders] == ["b"]
    # Both early snapshots were answered before the block committed, the ack after it.
    commit = (1 * S + 1 * MS) // BLOCK * BLOCK + BLOCK
    assert snaps[3].ts_ns < commit <= ack.ts_ns < snaps[4].ts_ns


def test_a_snapshot_is_one_instant_of_committed_state():
    sizes = {(Side.BUY, 99): 0.0}
    events = [book(0), trade(2 * S, 99.0, 0.05, Side.SELL), book(10 * S)]
    ex = hl(events, sizes, order_latency=LatencyModel())
    ex.submit([bid("b", rid=1), ioc_buy("i", rid=2, size=0.1)], 1 * S)
    out = []
    while (ev := ex.pop_next()) is not None:
        out.append(ev)
        if isinstance(ev, Fill) and ev.cloid == "b":
            ex.submit([RequestSnapshot(request_id=3)], ev.ts_ns)
    (snap,) = of(out, VenueSnapshot)
    (order,) = snap.orders
    assert (order.cloid, order.filled_size, order.size) == ("b", 0.05, pytest.approx(0.15))
    assert snap.position == pytest.approx(0.05 + 0.1)  # the order's fills and the IOC's


def test_acks_leave_only_after_the_block_commits():
    ex = hl([book(0), book(10 * S)], order_latency=LatencyModel())
    sent = 1 * S + 5 * MS
    ex.submit([bid("b", rid=1), Cancel(cloid="b", request_id=2)], sent)
    acks = of(drain(ex), OrderAck)
    commit = (sent // BLOCK + 1) * BLOCK
    assert [a.ts_ns for a in acks] == [commit, commit]  # zero latency: at the commit itself
    ex = hl([book(0), book(10 * S)], order_latency=LatencyModel(base_ms=3.0, jitter_ms=20.0))
    ex.submit([bid("b", rid=1)], sent)
    (ack,) = of(drain(ex), OrderAck)
    assert ack.ts_ns >= (sent + 3 * MS) // BLOCK * BLOCK + BLOCK + 3 * MS


def test_fills_made_in_a_block_carry_the_block_time():
    ex = hl([book(0), book(10 * S)], order_latency=LatencyModel())
    ex.submit([ioc_buy("i1", rid=1), ioc_buy("i2", rid=2)], 1 * S + 5 * MS)
    fills = of(drain(ex), Fill)
    commit = (1 * S + 5 * MS) // BLOCK * BLOCK + BLOCK
    assert [f.exchange_ts_ns for f in fills] == [commit, commit]
    # First in, first out: each fill has a stamp of its own at its arrival.
    ex = exchange([book(0), book(10 * S)], order_latency=LatencyModel())
    ex.submit([ioc_buy("i1", rid=1), ioc_buy("i2", rid=2)], 1 * S + 5 * MS)
    assert [f.exchange_ts_ns for f in of(drain(ex), Fill)] == [1 * S + 5 * MS, 1 * S + 5 * MS + 1]


@pytest.mark.parametrize("skew_ms", [-500.0, 0.0, 500.0])
def test_a_snapshot_is_stamped_on_the_server_clock_off_the_block_clock(skew_ms):
    profile = VenueProfile(model="hyperliquid", server_skew_ms=skew_ms)
    ex = hl([book(0), book(10 * S)], profile=profile, order_latency=LatencyModel())
    asked = 1 * S + 7 * MS  # between blocks: answered at once, not at a block
    ex.submit([ioc_buy("i", rid=1), RequestSnapshot(request_id=2)], asked)
    ex.submit([RequestSnapshot(request_id=3)], 2 * S)
    events = drain(ex)
    snaps = of(events, VenueSnapshot)
    (fill,) = of(events, Fill)
    assert [s.exchange_ts_ns for s in snaps] == [
        asked + int(skew_ms * MS),
        2 * S + int(skew_ms * MS),
    ]
    assert [s.ts_ns for s in snaps] == [asked, 2 * S]
    assert fill.exchange_ts_ns % BLOCK == 0  # fills stay on the block clock
    assert [s.position for s in snaps] == [0.0, pytest.approx(0.2)]


def test_an_action_whose_block_commits_after_its_deadline_is_refused_and_does_nothing():
    ex = hl(
        [book(0), book(10 * S)],
        order_latency=LatencyModel(base_ms=1_200.0),
        request_expiry_s=1.0,
    )
    ex.submit([bid("b", rid=1), ioc_buy("i", rid=2)], 1 * S)
    acks = of(drain(ex), OrderAck)
    assert [(a.request_id, a.status, a.reason) for a in acks] == [
        (1, AckStatus.REJECTED, EXPIRED),
        (2, AckStatus.REJECTED, EXPIRED),
    ]
    assert ex.open_orders() == 0 and ex.position == 0.0 and ex.stats.fills == 0
    assert ex.stats.expired == 2


def test_a_slow_block_expires_what_waits_for_it_a_cancel_too_and_the_order_stays():
    ex = hl([book(0), book(10 * S)], order_latency=LatencyModel(base_ms=20.0), request_expiry_s=1.0)
    ex.submit([bid("b", rid=1)], 1 * S)
    ex.submit([RequestSnapshot(request_id=2)], 2 * S)
    while not of([ex.pop_next()], VenueSnapshot):
        pass  # the place committed on time
    ex.faults = Faults(slow_block=1.0, slow_block_ms=1_500.0)
    ex.submit([Cancel(cloid="b", request_id=3), bid("c", rid=4)], 3 * S)
    ex.submit([RequestSnapshot(request_id=5)], 6 * S)
    events = drain(ex)
    acks = {a.request_id: a for a in of(events, OrderAck)}
    assert (acks[3].status, acks[3].reason) == (AckStatus.REJECTED, EXPIRED)
    assert (acks[4].status, acks[4].reason) == (AckStatus.REJECTED, EXPIRED)
    assert acks[3].ts_ns > 4 * S + 20 * MS  # refused when the late block came
    (snap,) = of(events, VenueSnapshot)
    assert [o.cloid for o in snap.orders] == ["b"] and ex.stats.slow_blocks == 1


def test_an_action_committed_within_its_deadline_executes():
    ex = hl(
        [book(0), book(10 * S)], order_latency=LatencyModel(base_ms=900.0), request_expiry_s=1.0
    )
    ex.submit([bid("b", rid=1)], 1 * S)  # arrives at 1.9 s, commits by 1.97 s
    (ack,) = of(drain(ex), OrderAck)
    assert ack.status == AckStatus.ACCEPTED and ex.open_orders() == 1


def test_the_fifo_profile_has_no_deadline_and_answers_snapshots_in_order():
    ex = exchange(
        [book(0), book(10 * S)], order_latency=LatencyModel(base_ms=1_200.0), request_expiry_s=1.0
    )
    ex.submit([bid("b", rid=1), RequestSnapshot(request_id=2)], 1 * S)
    events = drain(ex)
    (ack,) = of(events, OrderAck)
    (snap,) = of(events, VenueSnapshot)
    assert ack.status == AckStatus.ACCEPTED and [o.cloid for o in snap.orders] == ["b"]
    assert ex.stats.blocks == 0


def _first_fill_ns(rate_per_s):
    sizes = {(Side.BUY, 100): 0.3}
    events = [book(0)] + [trade(i * S, 100.0, 0.2, Side.SELL) for i in range(2, 40)]
    profile = VenueProfile(model="hyperliquid", priority_jump_rate_per_s=rate_per_s)
    ex = hl(events, sizes, profile=profile, seed=11)
    ex.submit([Place(cloid="b", side=Side.BUY, price=100.0, size=0.1)], 1 * S)
    fills = of(drain(ex), Fill)
    return fills[0].exchange_ts_ns, ex.stats.queue_jumps


def test_priority_fee_queue_jumps_make_our_fill_come_later_than_fifo_would():
    fifo_fill, none = _first_fill_ns(0.0)
    jumped_fill, jumps = _first_fill_ns(20.0)
    # Without jumps: 0.3 ahead, prints of 0.2 at 2 s and 3 s; we fill at 3 s.
    assert none == 0 and fifo_fill == 3 * S
    assert jumps > 0 and jumped_fill > fifo_fill


def test_queue_jumps_come_only_within_the_window_after_our_arrival():
    profile = VenueProfile(model="hyperliquid", priority_jump_rate_per_s=50.0)
    ex = hl([book(0), book(10 * S)], profile=profile, order_latency=LatencyModel())
    ex.submit([bid("b", rid=1)], 1 * S)
    while not of([ex.pop_next()], OrderAck):
        pass  # past the block: the order rests and its jumps are scheduled
    jumps = [t for t, _, kind, _ in ex._heap if kind == 5]
    commit = (1 * S) // BLOCK * BLOCK + BLOCK
    assert jumps and all(commit < t <= commit + 400 * MS for t in jumps)


def _stream(seed):
    profile = VenueProfile(model="hyperliquid", server_skew_ms=-300.0, priority_jump_rate_per_s=5.0)
    events = [book(0)] + [
        trade(i * 100 * MS, 99.0 + (i % 3), 0.05, Side.SELL if i % 2 else Side.BUY)
        for i in range(1, 200)
    ]
    ex = hl(
        events,
        {(Side.BUY, 99): 0.2, (Side.SELL, 101): 0.2},
        profile=profile,
        seed=seed,
        order_latency=LatencyModel(base_ms=20.0, jitter_ms=40.0),
        fill_latency=LatencyModel(base_ms=30.0, jitter_ms=30.0),
        request_expiry_s=0.15,
        faults=Faults(slow_block=0.1, reorder_ms=5.0, duplicate=0.05),
    )
    out = []
    rid = 0
    while (ev := ex.pop_next()) is not None:
        out.append(ev)
        if len(out) % 7 == 0:
            rid += 1
            ex.submit(
                [
                    RequestSnapshot(request_id=rid),
                    Place(cloid=f"a{rid}", side=Side.SELL, price=101.0, size=0.2, request_id=rid),
                    bid(f"b{rid}", rid=rid),
                    Cancel(cloid=f"b{rid - 2}", request_id=rid),
                ],
                ev.ts_ns,
            )
    return out, ex.stats


def test_the_same_seed_gives_the_same_event_stream():
    first, stats = _stream(5)
    again, _ = _stream(5)
    other, _ = _stream(6)
    assert first == again and first != other
    assert stats.blocks > 10 and stats.expired > 0 and stats.queue_jumps > 0 and stats.fills > 0
