"""The simulated exchange's Hyperliquid profile, from reference section 7: actions commit in
blocks (post-only, then cancels, then IOCs), answers leave after the commit, snapshots are
answered at once from committed state on a skewed server clock, late actions expire."""

from market_maker.model import (
    AckStatus,
    Cancel,
    Fill,
    OrderAck,
    Place,
    RequestSnapshot,
    Side,
    VenueSnapshot,
)
from tests.venues.test_exchange import book, drain, exchange, of

S = 1_000_000_000
MS = 1_000_000
BLOCK = 70 * MS


def hl(events, **kw):
    kw.setdefault("block_ms", 70.0)
    return exchange(events, **kw)


def test_within_a_block_post_only_orders_go_before_cancels_and_cancels_before_iocs():
    for profile in ({"block_ms": 70.0}, {"block_ms": 0.0}):
        ex = exchange([book(0), book(10 * S)], **profile)
        ex.submit([Place(cloid="ask", side=Side.SELL, price=102.0, size=0.2, request_id=1)], 0)
        ex.submit(
            [
                Place(
                    cloid="ioc",
                    side=Side.BUY,
                    price=101.0,
                    size=0.2,
                    post_only=False,
                    request_id=2,
                ),
                Cancel(cloid="ask", request_id=3),
                Place(cloid="bid", side=Side.BUY, price=99.0, size=0.2, request_id=4),
            ],
            2 * S,
        )
        acks = [a.request_id for a in of(drain(ex), OrderAck)]
        if profile["block_ms"]:
            assert acks == [1, 4, 3, 2]  # one block: post-only, cancel, IOC
        else:
            assert acks == [1, 2, 3, 4]  # first in, first out


def test_a_snapshot_asked_right_after_a_place_misses_it_until_its_block_commits():
    ex = hl([book(0), book(10 * S)])
    ex.submit(
        [
            Place(cloid="bid", side=Side.BUY, price=99.0, size=0.2, request_id=1),
            RequestSnapshot(request_id=2),
        ],
        1 * S,
    )
    ex.submit([RequestSnapshot(request_id=3)], 1 * S + 2 * BLOCK)
    events = drain(ex)
    snaps = {s.request_id: s for s in of(events, VenueSnapshot)}
    assert snaps[2].orders == ()  # answered at once: the place was waiting for its block
    assert [o.cloid for o in snaps[3].orders] == ["bid"]
    (ack,) = of(events, OrderAck)
    assert ack.ts_ns >= snaps[2].ts_ns and ack.ts_ns % BLOCK == MS  # after the commit
    assert ex.stats.blocks == 1


def test_answers_and_fills_leave_at_the_block_time():
    ex = hl([book(0), book(10 * S)], order_latency=None)
    ex.submit(
        [Place(cloid="ioc", side=Side.BUY, price=101.0, size=0.2, post_only=False, request_id=1)],
        1 * S + 5 * MS,
    )
    events = drain(ex)
    (fill,) = of(events, Fill)
    (ack,) = of(events, OrderAck)
    assert fill.ts_ns % BLOCK == 0 and ack.ts_ns % BLOCK == 0


def test_a_snapshot_is_stamped_on_the_server_clock_either_side_of_the_blocks():
    for skew in (-500.0, 500.0):
        ex = hl([book(0), book(10 * S)], server_skew_ms=skew, order_latency=None)
        ex.submit([RequestSnapshot(request_id=1)], 1 * S)
        (snap,) = of(drain(ex), VenueSnapshot)
        assert snap.exchange_ts_ns - snap.ts_ns == int(skew * MS)


def test_an_action_whose_block_comes_after_its_deadline_is_refused_and_does_nothing():
    # 400 ms of entry latency against a 300 ms deadline.
    from market_maker.venues import LatencyModel

    ex = hl(
        [book(0), book(10 * S)], order_latency=LatencyModel(base_ms=400.0), request_expiry_s=0.3
    )
    ex.submit([Place(cloid="bid", side=Side.BUY, price=99.0, size=0.2, request_id=1)], 1 * S)
    events = drain(ex)
    (ack,) = of(events, OrderAck)
    assert ack.status == AckStatus.REJECTED and ack.reason == "Action already expired"
    assert ex.open_orders() == 0 and ex.stats.expired == 1


def test_the_first_in_first_out_profile_is_unchanged():
    ex = exchange([book(0), book(10 * S)])
    ex.submit(
        [
            Place(cloid="bid", side=Side.BUY, price=99.0, size=0.2, request_id=1),
            RequestSnapshot(request_id=2),
        ],
        1 * S,
    )
    (snap,) = of(drain(ex), VenueSnapshot)
    assert [o.cloid for o in snap.orders] == ["bid"] and ex.stats.blocks == 0
