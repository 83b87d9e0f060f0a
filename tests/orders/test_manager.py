import pytest

from market_maker.config import OrdersConfig
from market_maker.model import AckStatus, Cancel, Fill, Instrument, Modify, OrderAck, Place, Side
from market_maker.orders import OrderManager, OrderState
from market_maker.risk import PositionSizer

INST = Instrument(symbol="BTC", tick_size=0.1, lot_size=0.001, min_notional=0.0)


def manager(**config) -> OrderManager:
    return OrderManager(PositionSizer(INST), OrdersConfig(**config))


def ack(m, action, status=AckStatus.ACCEPTED):
    return m.on_ack(OrderAck(ts_ns=0, cloid=action.cloid, status=status))


def fill(m, cloid, lots, side=Side.BUY, fill_id="f1", price=100.0, fee=0.0):
    return m.on_fill(
        Fill(
            ts_ns=0,
            cloid=cloid,
            price=price,
            size=lots * 0.001,
            side=side,
            fill_id=fill_id,
            fee=fee,
        )
    )


def test_plan_places_wanted_quotes_and_is_idempotent():
    m = manager()
    actions = m.plan(((1000, 5),), ((1002, 5),), max_lots=100, ts_ns=0)
    assert [type(a) for a in actions] == [Place, Place]
    assert actions[0].side is Side.BUY and actions[0].price == 100.0 and actions[0].size == 0.005
    assert m.plan(((1000, 5),), ((1002, 5),), max_lots=100, ts_ns=1) == []
    for a in actions:
        ack(m, a)
    assert m.plan(((1000, 5),), ((1002, 5),), max_lots=100, ts_ns=2) == []


def test_orders_within_tolerance_are_kept():
    m = manager(price_tolerance_ticks=1, size_tolerance=0.2)
    (place,) = m.plan(((1000, 10),), (), max_lots=100, ts_ns=0)
    ack(m, place)
    assert m.plan(((1001, 9),), (), max_lots=100, ts_ns=1) == []
    assert len(m.plan(((1002, 10),), (), max_lots=100, ts_ns=2)) == 1


def test_reprice_uses_one_modify_and_pending_counts_old_plus_new_until_acked():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    ack(m, place)
    (modify,) = m.plan(((999, 8),), (), max_lots=100, ts_ns=1)
    assert isinstance(modify, Modify) and modify.cloid == place.cloid and modify.size == 0.008
    # The old 5 can fill before the modify lands, and then the new 8 rests in full.
    assert m.pending_exposure_lots() == (13, 0)
    assert m.plan(((999, 8),), (), max_lots=100, ts_ns=2) == []  # already on its way
    assert m.orders[place.cloid].state is OrderState.PENDING_MODIFY
    ack(m, modify)
    assert m.orders[place.cloid].price_ticks == 999
    assert m.pending_exposure_lots() == (8, 0)


def test_without_modify_a_reprice_is_cancel_then_place():
    m = manager(use_modify=False)
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    ack(m, place)
    actions = m.plan(((999, 5),), (), max_lots=100, ts_ns=1)
    assert sorted(type(a).__name__ for a in actions) == ["Cancel", "Place"]


def test_when_capacity_is_tight_cancel_first_and_replace_after_the_ack():
    m = manager(use_modify=False)
    (place,) = m.plan(((1000, 5),), (), max_lots=5, ts_ns=0)
    ack(m, place)
    (cancel,) = m.plan(((999, 5),), (), max_lots=5, ts_ns=1)
    assert isinstance(cancel, Cancel)
    assert m.pending_exposure_lots() == (5, 0)  # still counted until the cancel is acknowledged
    assert m.plan(((999, 5),), (), max_lots=5, ts_ns=2) == []
    ack(m, cancel, AckStatus.CANCELED)
    (replacement,) = m.plan(((999, 5),), (), max_lots=5, ts_ns=3)
    assert isinstance(replacement, Place) and replacement.price == 99.9


def test_places_are_cut_to_the_room_left_by_position_and_pending():
    m = manager()
    fill(m, "ext", 7, Side.BUY, "x1")  # an external fill: position 7 lots
    assert m.position_lots == 7
    actions = m.plan(((1000, 5),), ((1002, 5),), max_lots=10, ts_ns=0)
    bid = next(a for a in actions if a.side is Side.BUY)
    assert bid.size == pytest.approx(0.003)  # Q - q = 3 lots


def test_a_shrinking_limit_cancels_kept_orders_from_the_outside_in():
    m = manager()
    actions = m.plan(((1000, 5), (990, 5)), (), max_lots=20, ts_ns=0)
    for a in actions:
        ack(m, a)
    (cancel,) = m.plan(((1000, 5), (990, 5)), (), max_lots=6, ts_ns=1)
    assert isinstance(cancel, Cancel) and cancel.cloid == actions[1].cloid


def test_fills_are_idempotent_by_fill_id_and_close_filled_orders():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    ack(m, place)
    assert fill(m, place.cloid, 2, fill_id="a", price=100.0)
    assert not fill(m, place.cloid, 2, fill_id="a", price=100.0)
    assert m.duplicate_fills == 1 and m.position_lots == 2
    assert fill(m, place.cloid, 3, fill_id="b", price=99.0, fee=0.01)
    assert place.cloid not in m.orders
    assert m.position_lots == 5
    assert m.cash_usd == pytest.approx(-(0.002 * 100.0 + 0.003 * 99.0) - 0.01)


def test_average_fill_price():
    m = manager()
    (place,) = m.plan(((1000, 10),), (), max_lots=100, ts_ns=0)
    fill(m, place.cloid, 2, fill_id="a", price=100.0)
    fill(m, place.cloid, 6, fill_id="b", price=99.0)
    order = m.orders[place.cloid]
    assert order.average_fill_price(0.001) == pytest.approx((2 * 100 + 6 * 99) / 8)
    assert order.remaining_lots == 2


def test_unknown_fill_is_applied_counted_and_flags_reconciliation():
    m = manager()
    assert fill(m, "0xdead", 3, Side.SELL, "z")
    assert m.position_lots == -3
    assert m.unknown_fills == 1 and m.needs_reconcile


def test_fill_after_the_cancel_ack_is_a_late_fill_not_unknown():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    ack(m, place)
    (cancel,) = m.cancel_all()
    ack(m, cancel, AckStatus.CANCELED)
    fill(m, place.cloid, 1)
    assert (m.late_fills, m.unknown_fills, m.position_lots) == (1, 0, 1)


def test_fills_racing_a_modify_come_off_the_new_size_once_beyond_the_old():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    ack(m, place)
    (modify,) = m.plan(((999, 4),), (), max_lots=100, ts_ns=1)
    fill(m, place.cloid, 3, fill_id="a")  # on the old order
    assert m.pending_exposure_lots() == (2 + 4, 0)
    fill(m, place.cloid, 3, fill_id="b")  # 1 more than the old had left: the new order traded
    assert m.pending_exposure_lots() == (3, 0)
    ack(m, modify)
    assert m.orders[place.cloid].remaining_lots == 3
    assert m.position_lots == 6


def test_modify_is_cut_to_fit_and_cancel_is_used_when_nothing_fits():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=8, ts_ns=0)
    ack(m, place)
    (modify,) = m.plan(((999, 5),), (), max_lots=8, ts_ns=1)
    assert isinstance(modify, Modify) and modify.size == 0.003  # 5 in place + 3 new = 8
    m2 = manager()
    (place2,) = m2.plan(((1000, 5),), (), max_lots=5, ts_ns=0)
    ack(m2, place2)
    actions = m2.plan(((999, 5),), (), max_lots=5, ts_ns=1)
    assert [type(a) for a in actions] == [Cancel]  # no room at all: cancel, replace after ack


def test_rejections_are_counted_and_restore_safe_state():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    assert ack(m, place, AckStatus.REJECTED) is True
    assert place.cloid not in m.orders and m.rejections == 1
    (place2,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=1)
    ack(m, place2)
    (modify,) = m.plan(((999, 5),), (), max_lots=100, ts_ns=2)
    ack(m, modify, AckStatus.REJECTED)
    order = m.orders[place2.cloid]
    assert order.state is OrderState.OPEN and order.price_ticks == 1000
    # A refused modify is a race (the order filled or went), not the venue refusing us.
    assert (m.rejections, m.race_rejections) == (1, 1)


def test_late_acks_for_closed_orders_are_not_unknown():
    m = manager()
    (place,) = m.plan(((1000, 5),), (), max_lots=100, ts_ns=0)
    ack(m, place)
    fill(m, place.cloid, 5)
    (modify_reject,) = [OrderAck(ts_ns=0, cloid=place.cloid, status=AckStatus.REJECTED)]
    assert m.on_ack(modify_reject) is False
    assert (m.late_acks, m.unknown_acks) == (1, 0)


def test_budget_sends_cancels_first_and_replans_the_rest_later():
    m = manager(use_modify=False)
    actions = m.plan(((1000, 5), (999, 5)), (), max_lots=100, ts_ns=0)
    for a in actions:
        ack(m, a)
    limited = m.plan(((990, 5), (989, 5)), (), max_lots=100, ts_ns=1, budget=3)
    assert [type(a) for a in limited] == [Cancel, Cancel, Place]
    rest = m.plan(((990, 5), (989, 5)), (), max_lots=100, ts_ns=2, budget=3)
    assert [type(a) for a in rest] == [Place]
    assert m.plan(((990, 5), (989, 5)), (), max_lots=100, ts_ns=3, budget=3) == []


def test_unknown_ack_is_counted():
    m = manager()
    assert m.on_ack(OrderAck(ts_ns=0, cloid="nope", status=AckStatus.ACCEPTED)) is False
    assert m.unknown_acks == 1


def test_cancel_all_skips_orders_already_cancelling():
    m = manager()
    actions = m.plan(((1000, 5),), ((1002, 5),), max_lots=100, ts_ns=0)
    assert len(m.cancel_all()) == 2
    assert m.cancel_all() == []
    assert m.pending_exposure_lots() == (5, 5)
    for a in actions:
        ack(m, a, AckStatus.CANCELED)
    assert m.pending_exposure_lots() == (0, 0)


def test_worst_case_positions():
    m = manager()
    m.plan(((1000, 5),), ((1002, 7),), max_lots=100, ts_ns=0)
    assert m.worst_case_positions(0.002) == pytest.approx((0.002 - 0.007, 0.002 + 0.005))
