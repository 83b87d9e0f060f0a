import itertools

import pytest

from market_maker.config import OrdersConfig
from market_maker.model import (
    AckStatus,
    Cancel,
    Fill,
    Instrument,
    Modify,
    OpenOrder,
    OrderAck,
    Place,
    Side,
    VenueSnapshot,
)
from market_maker.orders import OrderManager, OrderState
from market_maker.risk import PositionSizer

INST = Instrument(symbol="BTC", tick_size=0.1, lot_size=0.001, min_notional=0.0)
LOT = 0.001


EXACT = {
    "price_tolerance_ticks": 0,
    "low_budget_tolerance_bps": 0.0,
    "queue_tolerance_bps": 0.0,
    "depth_tolerance_fraction": 0.0,
}
"""Every order kept only at its wanted price: the mechanics below move orders by a tick."""


def manager(**config) -> OrderManager:
    return OrderManager(PositionSizer(INST), OrdersConfig(**(EXACT | config)))


def ack(m, action, status=AckStatus.ACCEPTED, filled=None, request_id=True):
    rid = action.request_id if request_id else None
    return m.on_ack(
        OrderAck(ts_ns=0, cloid=action.cloid, status=status, request_id=rid, filled_size=filled)
    )


_seq = iter(range(1, 1_000_000))


def fill(m, cloid, lots, side=Side.BUY, fill_id=None, price=100.0, fee=0.0, ets=None):
    return m.on_fill(
        Fill(
            ts_ns=0,
            cloid=cloid,
            price=price,
            size=lots * LOT,
            side=side,
            fill_id=fill_id or f"f{next(_seq)}",
            fee=fee,
            exchange_ts_ns=ets,
        )
    )


def resting(m, bids=(), asks=(), max_lots=100):
    """Place and acknowledge; returns the actions."""
    actions = m.plan(tuple(bids), tuple(asks), max_lots=max_lots, ts_ns=0)
    for a in actions:
        ack(m, a)
    return actions


# ----- planning ---------------------------------------------------------------------------


def test_plan_places_wanted_quotes_and_is_idempotent():
    m = manager()
    actions = m.plan(((1000, 5),), ((1002, 5),), max_lots=100, ts_ns=0)
    assert [type(a) for a in actions] == [Place, Place]
    assert actions[0].side is Side.BUY and actions[0].price == 100.0 and actions[0].size == 0.005
    assert len({a.request_id for a in actions}) == 2
    assert m.plan(((1000, 5),), ((1002, 5),), max_lots=100, ts_ns=1) == []
    for a in actions:
        ack(m, a)
    assert m.plan(((1000, 5),), ((1002, 5),), max_lots=100, ts_ns=2) == []


def test_orders_within_tolerance_are_kept():
    m = manager(price_tolerance_ticks=1, size_tolerance=0.2)
    resting(m, bids=((1000, 10),))
    assert m.plan(((1001, 9),), (), max_lots=100, ts_ns=1) == []
    assert len(m.plan(((1002, 10),), (), max_lots=100, ts_ns=2)) == 1


def test_reprice_is_one_modify_to_a_fresh_cloid_counting_old_plus_new_until_answered():
    m = manager()
    (place,) = resting(m, bids=((1000, 5),))
    (modify,) = m.plan(((999, 8),), (), max_lots=100, ts_ns=1)
    assert isinstance(modify, Modify) and modify.cloid == place.cloid and modify.size == 0.008
    assert modify.new_cloid and modify.new_cloid != place.cloid
    # The old 5 can fill before the modify lands, and then the new 8 rests in full.
    assert m.pending_exposure_lots() == (13, 0)
    assert m.plan(((999, 8),), (), max_lots=100, ts_ns=2) == []  # already on its way
    assert m.orders[place.cloid].state is OrderState.MODIFYING
    ack(m, modify, filled=0.0)
    assert place.cloid not in m.orders
    assert m.orders[modify.new_cloid].state is OrderState.RESTING
    assert m.pending_exposure_lots() == (8, 0)


def test_without_modify_a_reprice_is_cancel_then_place():
    m = manager(use_modify=False)
    resting(m, bids=((1000, 5),))
    actions = m.plan(((999, 5),), (), max_lots=100, ts_ns=1)
    assert [type(a).__name__ for a in actions] == ["Cancel", "Place"]


def test_when_capacity_is_tight_cancel_first_and_replace_after_the_ack():
    m = manager()
    resting(m, bids=((1000, 5),), max_lots=5)
    (cancel,) = m.plan(((999, 5),), (), max_lots=5, ts_ns=1)
    assert isinstance(cancel, Cancel)  # no room for a modify's old + new
    assert m.pending_exposure_lots() == (5, 0)  # still counted until the cancel is answered
    assert m.plan(((999, 5),), (), max_lots=5, ts_ns=2) == []
    ack(m, cancel, AckStatus.CANCELED, filled=0.0)
    (replacement,) = m.plan(((999, 5),), (), max_lots=5, ts_ns=3)
    assert isinstance(replacement, Place) and replacement.price == 99.9


def test_places_are_cut_to_the_room_left_by_position_and_pending():
    m = manager()
    fill(m, "ext", 7, Side.BUY)  # an external fill: position 7 lots
    actions = m.plan(((1000, 5),), ((1002, 5),), max_lots=10, ts_ns=0)
    bid = next(a for a in actions if a.side is Side.BUY)
    assert bid.size == pytest.approx(0.003)  # Q - q = 3 lots


def test_reduce_only_sizes_the_reducing_side_so_it_cannot_flip_the_position():
    m = manager()
    fill(m, "ext", 25, Side.BUY)
    actions = m.plan(((990, 20),), ((1010, 45),), max_lots=20, ts_ns=0, reduce_only=True)
    assert [(type(a), a.side, round(a.size / LOT)) for a in actions] == [(Place, Side.SELL, 25)]


def test_a_shrinking_limit_cancels_kept_orders_from_the_outside_in():
    m = manager()
    actions = resting(m, bids=((1000, 5), (990, 5)), max_lots=20)
    (cancel,) = m.plan(((1000, 5), (990, 5)), (), max_lots=6, ts_ns=1)
    assert isinstance(cancel, Cancel) and cancel.cloid == actions[1].cloid


def test_budget_sends_cancels_of_both_sides_before_any_place_and_replans_the_rest():
    m = manager(use_modify=False)
    resting(m, bids=((1000, 5), (999, 5)), asks=((1010, 5), (1011, 5)))
    limited = m.plan(((990, 5), (989, 5)), ((1020, 5), (1021, 5)), max_lots=100, ts_ns=1, budget=4)
    assert [type(a) for a in limited] == [Cancel] * 4
    assert {a.cloid for a in limited} == {o.cloid for o in m.orders.values()}
    rest = m.plan(((990, 5), (989, 5)), ((1020, 5), (1021, 5)), max_lots=100, ts_ns=2, budget=2)
    # Both sides waited: one best level each (the side that went first last time goes second).
    assert sorted((a.side.value, a.price) for a in rest) == [("buy", 99.0), ("sell", 102.0)]
    assert all(type(a) is Place for a in rest)
    rest = m.plan(((990, 5), (989, 5)), ((1020, 5), (1021, 5)), max_lots=100, ts_ns=3, budget=9)
    assert [type(a) for a in rest] == [Place, Place]
    assert m.plan(((990, 5), (989, 5)), ((1020, 5), (1021, 5)), max_lots=100, ts_ns=4) == []


def _one_token_cycles(m, cycles=6):
    """Cycles of a one-token budget in which both sides want to move every cycle: the sides
    served, in order."""
    served = []
    bid, ask = 1000, 1010
    for i in range(cycles):
        bid, ask = bid - 3, ask + 3  # both sides re-price every cycle
        actions = m.plan(((bid, 5),), ((ask, 5),), max_lots=100, ts_ns=2 + i, budget=1)
        assert len(actions) == 1
        served.append(m.orders[actions[0].cloid].side)
        for a in actions:
            ack(m, a, filled=0.0)
    return served


@pytest.mark.parametrize("first", [Side.BUY, Side.SELL])
def test_a_one_token_budget_places_both_sides_within_two_cycles_whichever_comes_first(first):
    m = manager()
    other = Side.SELL if first is Side.BUY else Side.BUY
    # One side rests; the other has nothing. Both want a new price: the empty side's place
    # goes before the resting side's re-price.
    if first is Side.BUY:
        resting(m, bids=((1000, 5),))
    else:
        resting(m, asks=((1010, 5),))
    actions = m.plan(((997, 5),), ((1013, 5),), max_lots=100, ts_ns=1, budget=1)
    assert [(type(a), a.side) for a in actions] == [(Place, other)]
    for a in actions:
        ack(m, a)
    rests = {o.side for o in m.orders.values() if o.state is OrderState.RESTING}
    assert rests == {Side.BUY, Side.SELL}
    # Then both re-price every cycle: once both contend they take the one token in turn, so
    # neither waits more than one cycle behind the other.
    served = _one_token_cycles(m, cycles=8)
    assert served[0] is first  # the only side that still had to move
    contended = served[2:]
    assert all(a is not b for a, b in itertools.pairwise(contended))
    assert served.count(Side.BUY) >= 3 and served.count(Side.SELL) >= 3


def test_a_one_token_budget_alternates_the_starting_side_of_a_contended_place():
    m = manager()
    starts = []
    for i in range(4):
        # Both sides empty and wanting one order: one token a cycle.
        actions = m.plan(((1000 - i, 5),), ((1010 + i, 5),), max_lots=100, ts_ns=i, budget=1)
        starts.append(actions[0].side)
        for a in m.cancel_all(i):  # nothing rests: the next cycle contends again
            ack(m, a, AckStatus.CANCELED, filled=0.0)
    assert starts.count(Side.BUY) == starts.count(Side.SELL) == 2


def test_a_one_tick_move_with_a_low_budget_keeps_the_order():
    m = manager(price_tolerance_ticks=0, low_budget_tolerance_bps=40.0, queue_tolerance_bps=0.0)
    (place,) = resting(m, bids=((1000, 5),))
    # 18 of the 20 tokens spent: the order is kept a tick away rather than moved.
    assert m.plan(((1001, 5),), (), max_lots=100, ts_ns=1, budget=2) == []
    assert m.orders[place.cloid].state is OrderState.RESTING
    # With the budget full, the same move is made.
    m2 = manager(price_tolerance_ticks=0, low_budget_tolerance_bps=40.0, queue_tolerance_bps=0.0)
    resting(m2, bids=((1000, 5),))
    (modify,) = m2.plan(((1001, 5),), (), max_lots=100, ts_ns=1, budget=20)
    assert isinstance(modify, Modify)


def test_a_low_budget_never_keeps_an_order_ahead_of_its_wanted_price():
    # The same stretch that keeps a bid one tick below its wanted price does not keep one a
    # tick above it: a stale aggressive quote is the one an informed taker trades against.
    cfg = {"price_tolerance_ticks": 0, "low_budget_tolerance_bps": 40.0, "queue_value_s": 2.0}
    for side in (Side.BUY, Side.SELL):
        m = manager(**cfg, queue_tolerance_bps=40.0)
        levels = ((1000, 5),)
        (place,) = resting(m, **({"bids": levels} if side is Side.BUY else {"asks": levels}))
        ahead = ((999 if side is Side.BUY else 1001, 5),)
        behind = ((1001 if side is Side.BUY else 999, 5),)
        want = (lambda w: (w, ())) if side is Side.BUY else (lambda w: ((), w))
        s = 1_000_000_000
        assert m.plan(*want(behind), max_lots=100, ts_ns=3 * s, budget=1) == []
        (move,) = m.plan(*want(ahead), max_lots=100, ts_ns=3 * s, budget=1)
        assert isinstance(move, Modify) and move.cloid == place.cloid


def test_an_order_that_has_rested_is_kept_further_than_a_new_one():
    cfg = {"price_tolerance_ticks": 1, "queue_tolerance_bps": 40.0, "queue_value_s": 2.0}
    young, old = manager(**cfg), manager(**cfg)
    resting(young, bids=((1000, 5),))
    resting(old, bids=((1000, 5),))
    s = 1_000_000_000
    assert len(young.plan(((1003, 5),), (), max_lots=100, ts_ns=s // 10, budget=20)) == 1
    # After 2 s at the front of its queue it is worth 1 + 4 ticks: a 3-tick move keeps it.
    assert old.plan(((1003, 5),), (), max_lots=100, ts_ns=2 * s, budget=20) == []
    assert len(old.plan(((1006, 5),), (), max_lots=100, ts_ns=2 * s, budget=20)) == 1


def test_an_order_a_print_went_through_is_replaced_at_once_and_still_counted():
    m = manager()
    (place,) = resting(m, bids=((1000, 5),))
    m.on_print(Side.SELL, 999, ts_ns=5)  # a sell below our bid: we traded
    (again,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=6)
    assert isinstance(again, Place) and again.price == 100.0
    # The first one's 5 lots count until its fill (or the venue) says otherwise.
    assert m.pending_exposure_lots() == (10, 0)
    fill(m, place.cloid, 5)
    assert m.pending_exposure_lots() == (5, 0) and m.position_lots == 5


def test_an_unanswered_place_waits_for_its_ack_and_is_then_moved_by_one_modify():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    assert m.plan(((990, 5),), (), max_lots=100, ts_ns=1) == []  # not cancel + place
    ack(m, place)
    (modify,) = m.plan(((990, 5),), (), max_lots=100, ts_ns=2)
    assert isinstance(modify, Modify) and modify.cloid == place.cloid


def test_cancel_all_skips_orders_already_cancelling():
    m = manager()
    actions = m.plan(((1000, 5),), ((1002, 5),), max_lots=100, ts_ns=0)
    cancels = m.cancel_all()
    assert len(cancels) == 2 and m.cancel_all() == []
    assert m.pending_exposure_lots() == (5, 5)
    for a in actions:
        ack(m, a)
    for c in cancels:
        ack(m, c, AckStatus.CANCELED, filled=0.0)
    assert m.pending_exposure_lots() == (0, 0) and not m.orders


def test_worst_case_positions():
    m = manager()
    m.plan(((1000, 5),), ((1002, 7),), max_lots=100, ts_ns=0)
    assert m.worst_case_positions(0.002) == pytest.approx((0.002 - 0.007, 0.002 + 0.005))


# ----- fills ------------------------------------------------------------------------------


def test_fills_are_idempotent_by_fill_id_and_close_filled_orders():
    m = manager()
    (place,) = resting(m, bids=((1000, 5),))
    assert fill(m, place.cloid, 2, fill_id="a", price=100.0)
    assert not fill(m, place.cloid, 2, fill_id="a", price=100.0)
    assert m.counters.duplicate_fills == 1 and m.position_lots == 2
    assert fill(m, place.cloid, 3, fill_id="b", price=99.0, fee=0.01)
    assert place.cloid not in m.orders
    assert m.position_lots == 5
    assert m.cash_usd == pytest.approx(-(0.002 * 100.0 + 0.003 * 99.0) - 0.01)


def test_a_fill_resent_after_thousands_of_other_fills_is_still_a_duplicate():
    """Duplicates are known by the order, not by a memory of the last N fill ids."""
    m = manager()
    (place,) = resting(m, bids=((1000, 10),))
    assert fill(m, place.cloid, 1, fill_id="first")
    # 5,000 fills on 5,000 other orders (each filled and closed; 5,000 > any fixed window).
    for i in range(5_000):
        actions = m.plan(((1000, 9),), ((1010 + i % 7, 1),), max_lots=10_000, ts_ns=i + 1)
        (other,) = [a for a in actions if isinstance(a, Place)]
        ack(m, other)
        assert fill(m, other.cloid, 1, side=Side.SELL)
    before = m.position_lots
    assert not fill(m, place.cloid, 1, fill_id="first")
    assert m.position_lots == before and m.counters.duplicate_fills == 1


def test_duplicates_of_late_and_unknown_fills_are_recognised():
    m = manager()
    (place,) = resting(m, bids=((1000, 2),))
    assert fill(m, place.cloid, 2, fill_id="a")  # fills and closes it
    assert place.cloid not in m.orders
    assert not fill(m, place.cloid, 2, fill_id="a")  # the order is closed: still a duplicate
    assert fill(m, "0xnotours", 3, side=Side.SELL, fill_id="x")
    assert not fill(m, "0xnotours", 3, side=Side.SELL, fill_id="x")
    assert m.position_lots == 2 - 3
    assert m.counters.duplicate_fills == 2 and m.counters.unknown_fills == 1
    assert fill(m, place.cloid, 1, fill_id="b")  # a genuine late fill past the order's size
    assert m.counters.overfills == 1 and m.needs_reconcile


def test_average_fill_price():
    m = manager()
    (place,) = m.plan(((1000, 10),), (), max_lots=100, ts_ns=0)
    fill(m, place.cloid, 2, price=100.0)
    fill(m, place.cloid, 6, price=99.0)
    order = m.orders[place.cloid]
    assert order.average_fill_price(0.001) == pytest.approx((2 * 100 + 6 * 99) / 8)
    assert order.remaining_lots == 2


def test_a_fill_before_the_place_ack_is_exact():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    fill(m, place.cloid, 2)
    assert m.pending_exposure_lots() == (3, 0) and m.position_lots == 2
    ack(m, place)
    assert m.orders[place.cloid].state is OrderState.RESTING
    assert m.pending_exposure_lots() == (3, 0)


def test_unknown_fill_is_applied_counted_and_flags_reconciliation():
    m = manager()
    assert fill(m, "0xdead", 3, Side.SELL)
    assert m.position_lots == -3
    assert m.counters.unknown_fills == 1 and m.needs_reconcile


# ----- the races: exposure is released only by evidence -------------------------------------


def test_fills_reported_after_the_cancel_ack_stay_reserved_until_they_arrive():
    """The probe from the issue: with Q = 10, a 10-lot bid that filled 6 before the cancel
    landed. Freeing all of it on the cancel ack let the replacement rest on top (16 lots)."""
    m = manager()
    (place,) = resting(m, bids=((1000, 10),), max_lots=10)
    (cancel,) = m.plan(((990, 10),), (), max_lots=10, ts_ns=1)
    assert isinstance(cancel, Cancel)
    ack(m, cancel, AckStatus.CANCELED, filled=0.006)  # the venue: it had filled 6
    assert m.orders[place.cloid].state is OrderState.SETTLING
    assert m.pending_exposure_lots() == (6, 0)
    (replacement,) = m.plan(((990, 10),), (), max_lots=10, ts_ns=2)
    assert round(replacement.size / LOT) == 4  # only what is truly free
    fill(m, place.cloid, 6)
    assert place.cloid not in m.orders and m.counters.settled_by_fills == 1
    ack(m, replacement)
    fill(m, replacement.cloid, 4)
    assert m.position_lots == 10  # never past Q


def test_without_the_venues_filled_size_the_whole_remainder_stays_reserved():
    m = manager()
    resting(m, bids=((1000, 10),), max_lots=10)
    (cancel,) = m.cancel_all()
    ack(m, cancel, AckStatus.CANCELED, filled=None)
    assert m.pending_exposure_lots() == (10, 0)
    assert m.plan(((990, 10),), (), max_lots=10, ts_ns=2) == []
    assert m.oldest_wait_ns() is not None  # the engine asks for a snapshot after a while


def test_a_late_fill_of_a_modified_order_counts_against_the_old_leg_not_the_new():
    m = manager()
    (place,) = resting(m, bids=((1000, 5),), max_lots=20)
    (modify,) = m.plan(((999, 5),), (), max_lots=20, ts_ns=1)
    ack(m, modify, AckStatus.ACCEPTED, filled=0.003)  # the old leg had filled 3 first
    assert m.pending_exposure_lots() == (3 + 5, 0)
    fill(m, place.cloid, 3)
    assert m.orders[modify.new_cloid].remaining_lots == 5  # the new leg is untouched
    assert m.pending_exposure_lots() == (5, 0) and place.cloid not in m.orders


def test_a_modify_whose_new_leg_is_refused_settles_the_old_leg():
    m = manager()
    (place,) = resting(m, bids=((1000, 5),))
    (modify,) = m.plan(((999, 5),), (), max_lots=100, ts_ns=1)
    ack(m, modify, AckStatus.CANCELED, filled=0.001)
    assert modify.new_cloid not in m.orders
    assert m.orders[place.cloid].state is OrderState.SETTLING
    assert m.pending_exposure_lots() == (1, 0)


def test_a_refused_modify_leaves_the_old_order_live():
    m = manager()
    (place,) = resting(m, bids=((1000, 5),))
    (modify,) = m.plan(((999, 5),), (), max_lots=100, ts_ns=1)
    assert ack(m, modify, AckStatus.REJECTED) is True  # the venue refused us: storm material
    order = m.orders[place.cloid]
    assert order.state is OrderState.RESTING and order.price_ticks == 1000
    assert modify.new_cloid not in m.orders
    assert (m.counters.rejections, m.counters.refusals, m.counters.race_rejections) == (0, 1, 0)


def test_races_are_counted_apart_from_refusals():
    m = manager()
    resting(m, bids=((1000, 5),))
    (cancel,) = m.cancel_all()
    assert ack(m, cancel, AckStatus.NOT_FOUND) is False  # it had filled: a race
    (place2,) = m.plan(((990, 5),), (), max_lots=100, ts_ns=2)
    refused = OrderAck(
        ts_ns=0,
        cloid=place2.cloid,
        status=AckStatus.REJECTED,
        reason="Post only order would have immediately matched, bbo was 99.0@99.1",
        request_id=place2.request_id,
    )
    assert m.on_ack(refused) is False  # the market moved: a race
    assert (m.counters.race_rejections, m.counters.rejections, m.counters.refusals) == (2, 0, 0)


def test_a_cancel_refused_as_not_found_keeps_the_remainder_until_fills_settle_it():
    m = manager()
    (place,) = resting(m, bids=((1000, 5),))
    (cancel,) = m.cancel_all()
    ack(m, cancel, AckStatus.NOT_FOUND)  # it filled a moment before; the fills are on the way
    assert m.pending_exposure_lots() == (5, 0)
    fill(m, place.cloid, 5)
    assert not m.orders and m.position_lots == 5


def test_requests_are_told_apart_by_id_when_a_modify_and_a_cancel_are_both_refused():
    """The adversarial case from the issue: a modify refusal and a cancel refusal for one cloid
    could not be told apart, and the engine lost count of what could still fill."""
    m = manager()
    (place,) = resting(m, bids=((1000, 10),), max_lots=30)
    (modify,) = m.plan(((999, 10),), (), max_lots=30, ts_ns=1)
    (cancel_new,) = m.cancel_all()  # cancels the modify's new leg
    assert cancel_new.cloid == modify.new_cloid
    # Answers arrive in reverse: the cancel of the new leg is refused (not yet placed when it
    # arrived? no: rate limited), then the modify is refused (nothing changed).
    ack(m, cancel_new, AckStatus.REJECTED)
    ack(m, modify, AckStatus.REJECTED)
    assert m.orders[place.cloid].state is OrderState.RESTING
    assert modify.new_cloid not in m.orders
    assert m.pending_exposure_lots() == (10, 0)


def test_statuses_compare_by_value_and_an_unknown_status_frees_nothing():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    m.on_ack(OrderAck(ts_ns=0, cloid=place.cloid, status="accepted", request_id=place.request_id))
    assert m.orders[place.cloid].state is OrderState.RESTING
    (cancel,) = m.cancel_all()
    m.on_ack(
        OrderAck(ts_ns=0, cloid=place.cloid, status="cancelled?", request_id=cancel.request_id)
    )
    assert m.pending_exposure_lots() == (5, 0)
    assert m.counters.unknown_statuses == 1 and m.needs_reconcile


def test_an_answer_without_a_request_id_answers_the_oldest_request_on_its_cloid():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    (cancel,) = m.cancel_all()
    ack(m, place, AckStatus.ACCEPTED, request_id=False)  # the place's answer
    assert m.orders[place.cloid].state is OrderState.CANCELLING
    ack(m, cancel, AckStatus.CANCELED, filled=0.0, request_id=False)
    assert not m.orders


def test_rejected_place_is_counted_and_frees_its_exposure():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    assert ack(m, place, AckStatus.REJECTED) is True
    assert place.cloid not in m.orders and m.counters.rejections == 1


def test_a_place_refused_after_its_cancel_was_sent_leaves_no_ghost():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    (cancel,) = m.cancel_all()
    ack(m, place, AckStatus.REJECTED)
    ack(m, cancel, AckStatus.NOT_FOUND)
    assert not m.orders and m.pending_exposure_lots() == (0, 0)
    assert m.counters.late_acks == 1


def test_unknown_and_late_acks_are_counted():
    m = manager()
    assert m.on_ack(OrderAck(ts_ns=0, cloid="nope", status=AckStatus.ACCEPTED)) is False
    assert m.counters.unknown_acks == 1 and m.needs_reconcile
    (place,) = resting(m, bids=((1000, 5),))
    fill(m, place.cloid, 5)
    assert m.on_ack(OrderAck(ts_ns=0, cloid=place.cloid, status=AckStatus.NOT_FOUND)) is False
    assert m.counters.late_acks == 1


# ----- reconciliation ---------------------------------------------------------------------


def snapshot(m, position_lots, orders=(), ets=1_000, request=None):
    return m.on_snapshot(
        VenueSnapshot(
            ts_ns=0,
            exchange_ts_ns=ets,
            position=position_lots * LOT,
            orders=tuple(orders),
            request_id=request.request_id if request is not None else None,
        )
    )


def test_a_snapshot_settles_a_reserved_remainder_and_fills_it_included_are_not_counted_twice():
    m = manager()
    (place,) = resting(m, bids=((1000, 10),), max_lots=10)
    (cancel,) = m.cancel_all()
    ack(m, cancel, AckStatus.CANCELED)  # filled size not given
    request = m.request_snapshot(0)
    snapshot(m, 4, request=request)  # the venue: 4 lots filled before the cancel
    assert not m.orders and m.position_lots == 4 and m.counters.settled_by_snapshot == 1
    # The report of those 4 arrives late, stamped on any clock: the snapshot held them.
    assert not fill(m, place.cloid, 4, ets=5_000)
    assert m.position_lots == 4 and m.counters.fills_in_snapshot == 1
    # A fill of an order we never knew: the adopted snapshot may hold it or not. Reserved on
    # its side (never lost from the worst case) until a snapshot asked after it says.
    fill(m, "other", 1)
    assert m.position_lots == 4 and m.position_unsure and m.needs_reconcile
    assert m.pending_exposure_lots() == (1, 0)
    snapshot(m, 5, request=m.request_snapshot(0))
    assert m.position_lots == 5 and not m.position_unsure


def test_a_snapshot_keeps_the_fills_it_does_not_show_whatever_their_stamps():
    """An order resting since before the request: its fill that arrived after the request (on
    either side of the snapshot's answer) moves the position only where the venue's count of
    the order does not already hold it. No timestamp is compared."""
    m = manager()
    (place,) = resting(m, bids=((1000, 10),), max_lots=10)
    fill(m, place.cloid, 3, ets=10_000)
    request = m.request_snapshot(0)
    fill(m, place.cloid, 2, ets=500)  # after the request; its stamp is behind the snapshot's
    shown = OpenOrder(cloid=place.cloid, side=Side.BUY, price=100.0, size=0.007, filled_size=0.003)
    snapshot(m, 3, [shown], ets=1_000, request=request)
    assert m.position_lots == 5 and m.counters.position_corrections == 0
    fill(m, place.cloid, 1, ets=1)  # later still: beyond the venue's 3 as well
    assert m.position_lots == 6


def test_a_fill_reported_while_a_snapshot_was_on_its_way_is_reserved_if_the_count_could_hold_it():
    """The venue's count of an order holds 1 lot; the 1 lot reported to us since the request
    is either that one, or a later one while the one counted was lost (the state machine
    found the second: position 2, the engine 1). Presumed held, reserved on its side, and a
    snapshot asked for after it decides."""
    m = manager()
    (place,) = resting(m, bids=((1000, 10),), max_lots=10)
    request = m.request_snapshot(0)
    fill(m, place.cloid, 1, ets=1_000)  # after the request, at the snapshot's own stamp
    shown = OpenOrder(cloid=place.cloid, side=Side.BUY, price=100.0, size=0.009, filled_size=0.001)
    snapshot(m, 1, [shown], ets=1_000, request=request)
    assert m.position_lots == 1 and m.position_unsure and m.needs_reconcile
    assert m.pending_exposure_lots() == (10, 0)  # 9 resting and the 1 reserved
    later = OpenOrder(cloid=place.cloid, side=Side.BUY, price=100.0, size=0.008, filled_size=0.002)
    snapshot(m, 2, [later], ets=2_000, request=m.request_snapshot(0))
    assert m.position_lots == 2 and not m.position_unsure and not m.needs_reconcile


def test_a_snapshot_that_shows_a_fill_still_on_its_way_does_not_count_it_twice():
    m = manager()
    (place,) = resting(m, bids=((1000, 10),), max_lots=10)
    request = m.request_snapshot(0)
    shown = OpenOrder(cloid=place.cloid, side=Side.BUY, price=100.0, size=0.006, filled_size=0.004)
    snapshot(m, 4, [shown], ets=1, request=request)  # stamped long before the fill's stamp
    assert m.position_lots == 4
    assert not fill(m, place.cloid, 4, ets=900_000)  # the report: already held
    assert m.position_lots == 4 and m.counters.fills_in_snapshot == 1
    assert fill(m, place.cloid, 1) and m.position_lots == 5


def test_a_snapshot_adopts_the_venues_position_when_a_fill_was_lost():
    m = manager()
    fill(m, "x", 3, ets=500)
    snapshot(m, 7, ets=1_000)
    assert m.position_lots == 7
    snapshot(m, 7, ets=2_000)  # the 4 lots never arrived: a real correction
    assert m.counters.position_corrections == 1


def test_a_snapshot_closes_orders_the_venue_no_longer_holds_and_restores_lost_answers():
    m = manager()
    gone, held = resting(m, bids=((1000, 5), (999, 5)))
    assert len(m.cancel_all(ts_ns=0)) == 2
    # Both cancel answers are lost. The venue holds one order still (its cancel was refused).
    # A snapshot asked for settle_timeout_s (2 s) later shows what became of them.
    request = m.request_snapshot(2_000_000_000)
    snapshot(
        m,
        1,
        [OpenOrder(cloid=held.cloid, side=Side.BUY, price=99.9, size=0.004, filled_size=0.001)],
        request=request,
    )
    assert gone.cloid not in m.orders
    order = m.orders[held.cloid]
    assert order.state is OrderState.RESTING and order.size_lots == 5
    assert m.pending_exposure_lots() == (5, 0)  # its one fill still on its way counts too
    assert m.position_lots == 1 and m.counters.lost_requests == 2


def test_a_snapshot_asked_for_while_a_cancel_is_on_its_way_changes_neither_state_nor_exposure():
    """Rule 1: the venue may answer the snapshot before the cancel's block commits, or after.
    Either way the order keeps its exposure until the cancel's own answer."""
    m = manager()
    (place,) = resting(m, bids=((1000, 5),))
    (cancel,) = m.cancel_all(ts_ns=0)
    request = m.request_snapshot(100)
    snapshot(m, 0, [], request=request)  # the cancel committed before the snapshot: not shown
    assert m.orders[place.cloid].state is OrderState.CANCELLING
    assert m.pending_exposure_lots() == (5, 0)
    ack(m, cancel, AckStatus.CANCELED, filled=0.0)
    assert place.cloid not in m.orders and m.pending_exposure_lots() == (0, 0)


def test_a_snapshot_that_misses_a_place_on_its_way_never_frees_its_exposure():
    """The 2x case from the issue: a snapshot that did not see a place closed it and freed its
    exposure, and the engine quoted the same room again."""
    m = manager()
    (place,) = m.plan(((1000, 10),), (), max_lots=10, ts_ns=0)
    assert m.creating_in_flight(10)  # the engine would not ask now; a venue answers anyway
    request = m.request_snapshot(10)
    snapshot(m, 0, [], request=request)
    assert m.counters.deferred_snapshots == 1 and m.needs_reconcile
    assert m.orders[place.cloid].state is OrderState.PLACING
    assert m.pending_exposure_lots() == (10, 0)
    assert m.plan(((1000, 10),), (), max_lots=10, ts_ns=20) == []  # no room: nothing doubled
    ack(m, place)
    assert m.orders[place.cloid].state is OrderState.RESTING


def test_a_snapshot_that_misses_a_modify_on_its_way_keeps_both_legs_exposure():
    """The modify case from the issue: 30 lots rested on a 20-lot limit while the engine
    counted 20. The old leg can fill before the modify lands, so the new leg is cut to the room
    it leaves; a snapshot showing the old leg only (the modify's block had not committed) keeps
    both legs counted until the modify's own answer."""
    m = manager()
    (place,) = resting(m, bids=((1000, 10),), max_lots=20)
    (modify,) = m.plan(((999, 20),), (), max_lots=20, ts_ns=1)
    assert isinstance(modify, Modify) and modify.size == 0.01  # 20 - the old leg's 10
    request = m.request_snapshot(10)
    shown = OpenOrder(cloid=place.cloid, side=Side.BUY, price=100.0, size=0.01)
    snapshot(m, 0, [shown], request=request)
    assert m.pending_exposure_lots() == (20, 0)  # old 10 + new 10: the limit, not past it
    assert m.orders[place.cloid].state is OrderState.MODIFYING
    assert m.plan(((999, 20),), (), max_lots=20, ts_ns=20) == []
    ack(m, modify, filled=0.0)
    assert m.pending_exposure_lots() == (10, 0)


def test_a_snapshot_that_misses_an_ioc_on_its_way_keeps_the_ioc_and_its_fill():
    """The IOC case from the issue: the snapshot closed an IOC in flight and its fill, stamped
    in the snapshot's millisecond, was skipped."""
    m = manager()
    fill(m, "inherited", 10)  # long 10
    snapshot(m, 10)
    ioc = m.place_ioc(Side.SELL, 990, 9, ts_ns=0)
    request = m.request_snapshot(10)
    snapshot(m, 1, [], request=request)  # the IOC's block committed before the snapshot
    assert m.counters.deferred_snapshots == 1 and m.position_lots == 10
    fill(m, ioc.cloid, 9, side=Side.SELL, ets=5)
    ack(m, ioc, AckStatus.CANCELED, filled=0.009)
    assert m.position_lots == 1 and not m.orders
    later = m.request_snapshot(20)
    snapshot(m, 1, [], request=later)
    assert m.position_lots == 1 and m.counters.position_corrections == 0


def test_a_request_is_taken_as_lost_only_by_a_snapshot_asked_for_settle_timeout_after_it():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    request = m.request_snapshot(1_999_999_999)
    snapshot(m, 0, [], request=request)
    assert m.counters.lost_requests == 0 and place.cloid in m.orders
    request = m.request_snapshot(2_000_000_000)
    snapshot(m, 0, [], request=request)
    assert m.counters.lost_requests == 1 and place.cloid not in m.orders


def test_a_fill_re_sent_under_another_id_asks_for_a_snapshot_which_takes_it_back():
    m = manager()
    (place,) = resting(m, bids=((1000, 10),), max_lots=10)
    fill(m, place.cloid, 3, fill_id="a", ets=1_000)
    assert not m.needs_reconcile
    fill(m, place.cloid, 3, fill_id="b", ets=1_000)  # the same trade under another id
    assert m.position_lots == 6 and m.needs_reconcile and m.counters.suspect_duplicates == 1
    request = m.request_snapshot(0)
    shown = OpenOrder(cloid=place.cloid, side=Side.BUY, price=100.0, size=0.007, filled_size=0.003)
    snapshot(m, 3, [shown], request=request)
    assert m.position_lots == 3 and m.counters.overcounted_fills == 1
    assert m.pending_exposure_lots() == (7, 0)
    fill(m, place.cloid, 2, fill_id="c")
    assert m.position_lots == 5


def test_a_not_found_answer_below_the_fills_received_keeps_the_fills_in_flight_reserved():
    m = manager()
    (place,) = resting(m, bids=((1000, 10),), max_lots=10)
    fill(m, place.cloid, 3)
    (cancel,) = m.cancel_all()
    ack(m, cancel, AckStatus.NOT_FOUND, filled=0.002)  # below the 3 we had: stale
    assert m.counters.untrusted_answers == 1 and m.needs_reconcile
    assert m.pending_exposure_lots() == (7, 0)  # the whole remainder stays reserved


def test_every_state_change_is_a_row_of_the_transition_table():
    from market_maker.orders import TRANSITIONS, OrderState, Trigger

    assert (OrderState.CLOSED, Trigger.ACCEPTED) not in TRANSITIONS
    assert all(new is not OrderState.PLACING for new in TRANSITIONS.values())
    m = manager()
    (place,) = resting(m, bids=((1000, 5),))
    (cancel,) = m.cancel_all()
    ack(m, cancel, AckStatus.CANCELED, filled=0.0)
    before = m.counters.illegal_moves
    m.on_ack(OrderAck(ts_ns=0, cloid=place.cloid, status=AckStatus.ACCEPTED, request_id=-1))
    assert m.counters.illegal_moves == before  # a late "open" for a closed order: late ack
    assert m.counters.late_acks == 1


def test_a_snapshot_cancels_orders_we_do_not_know_and_ignores_orders_placed_after_it():
    m = manager()
    request = m.request_snapshot(0)
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=1)  # sent after the request
    actions = snapshot(
        m, 0, [OpenOrder(cloid="0xold", side=Side.SELL, price=101.0, size=0.003)], request=request
    )
    assert [(type(a), a.cloid) for a in actions] == [(Cancel, "0xold")]
    assert m.counters.orphans_cancelled == 1
    assert m.orders[place.cloid].state is OrderState.PLACING
    assert m.pending_exposure_lots() == (5, 3)  # the orphan counts until its cancel lands


def test_a_position_adopted_from_the_venue_is_booked_at_its_mark_not_as_a_windfall():
    m = manager()
    m.on_snapshot(VenueSnapshot(ts_ns=0, exchange_ts_ns=1, position=0.004, mark_price=100.0))
    assert m.position_lots == 4
    assert m.cash_usd == pytest.approx(-0.4)  # worth 0.4 at the mark: PnL unchanged


def test_an_unusable_snapshot_changes_nothing_and_asks_again():
    m = manager()
    fill(m, "x", 3, ets=500)
    m.on_snapshot(VenueSnapshot(ts_ns=0, exchange_ts_ns=1_000, position=float("nan")))
    assert m.counters.bad_snapshots == 1 and m.needs_reconcile
    assert fill(m, "x", 2, ets=900)  # not taken as included in a snapshot that was refused
    assert m.position_lots == 5


# ----- refusals ---------------------------------------------------------------------------


def test_rejection_backoff_doubles_and_is_capped():
    from market_maker.orders import rejection_backoff_s

    assert [rejection_backoff_s(n, 0.1, 1.0) for n in range(6)] == [0.0, 0.1, 0.2, 0.4, 0.8, 1.0]
    assert rejection_backoff_s(10_000, 0.1, 5.0) == 5.0  # no overflow


def test_a_refused_side_holds_new_orders_but_still_cancels_and_the_other_side_quotes():
    m = manager(reject_backoff_s=1.0, reject_backoff_max_s=8.0)
    (bid, ask) = m.plan(((1000, 5),), ((1010, 5),), max_lots=100, ts_ns=0)
    ack(m, bid, AckStatus.REJECTED)  # reason not a race: the venue refused us
    ack(m, ask)
    assert m.backoff_until(Side.BUY) == 1_000_000_000
    # Within the backoff: no new bid; the ask side is free to move.
    actions = m.plan(((1000, 5),), ((1011, 5),), max_lots=100, ts_ns=500_000_000)
    assert [type(a) for a in actions] == [Modify] and not m.plan_complete
    for a in actions:
        ack(m, a)
    # After it: the bid goes out again; refused again, the wait doubles.
    (again,) = m.plan(((1000, 5),), ((1011, 5),), max_lots=100, ts_ns=1_000_000_001)
    assert isinstance(again, Place) and again.side is Side.BUY
    ack(m, again, AckStatus.REJECTED)
    assert m.backoff_until(Side.BUY) == 2_000_000_000  # ack ts 0 + 2 s
    assert m.counters.backoffs == 2


def test_a_refused_place_never_delays_cancelling_everything():
    m = manager(reject_backoff_s=5.0)
    (bid, ask) = m.plan(((1000, 5),), ((1010, 5),), max_lots=100, ts_ns=0)
    ack(m, bid)
    ack(m, ask)
    (again,) = m.plan(((1000, 5), (999, 5)), ((1010, 5),), max_lots=100, ts_ns=1)
    ack(m, again, AckStatus.REJECTED)  # the bid side is now backing off for 5 s
    cancels = m.cancel_all(ts_ns=2)
    assert {c.cloid for c in cancels} == {bid.cloid, ask.cloid}  # a halt cancels at once
    ack(m, cancels[0], AckStatus.REJECTED)  # the venue refuses a cancel...
    assert all(c.cloid != cancels[0].cloid for c in m.cancel_all(ts_ns=3))  # ...retry waits
