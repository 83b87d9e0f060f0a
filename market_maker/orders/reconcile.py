"""What a venue snapshot proves, as a pure reading of the snapshot against our orders.

A snapshot answers ``RequestSnapshot(rid)``. The venue guarantees that it is one instant of
its state (each order's cumulative fill is in the position it shows), later than every answer
that reached us before ``rid`` was sent and every fill reported to us before then; it does
**not** guarantee anything about a request still on its way when ``rid`` was sent
(Hyperliquid answers ``info`` at once from committed state, while actions wait for a block),
or sent after it. So:

- an order about which every answer arrived before ``rid`` was sent is *covered*: the snapshot
  decides its state (held: it rests; missing: it is gone);
- an order with a request still unanswered at ``rid`` keeps its state and its exposure until
  its own answer, or a later snapshot, settles it;
- the snapshot's position holds a known share of every order's fills, never guessed from two
  clocks: for an order it shows, the cumulative fill it reports; for an order it does not
  show that had been seen at the venue before ``rid``, all of its fills (it was gone when the
  snapshot was taken);
- an order it does not show that was created before ``rid`` and of which nothing had been
  heard by then, or created after ``rid`` (and not closed without a fill), is *ambiguous*: it
  may not have reached the venue when the snapshot was read, or have traded and gone. The
  engine holds new orders until none is on its way before it asks (``OrderManager.
  creating_in_flight``) and while the snapshot is on its way, so this happens only when a
  venue breaks the rules or answers after ``settle_timeout_s``; such a snapshot settles
  nothing and another is asked for.

Every rule reads request-counter marks (when something was sent or heard, in our own order of
events), never a timestamp of the venue's.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from market_maker.model import OpenOrder, Side
from market_maker.orders.state import ALL_LOTS, OrderState, TrackedOrder
from market_maker.risk.sizing import PositionSizer

__all__ = ["Reading", "covered", "read_snapshot"]

_BUY = Side.BUY
_CLOSED = OrderState.CLOSED


class Reading(msgspec.Struct, kw_only=True):
    """What a snapshot says about our orders and position (nothing applied yet)."""

    position_lots: int
    """The position it proves: its own, plus the fills reported to us that it does not hold."""
    included: list[tuple[TrackedOrder, int]]
    """``(order, lots of its fills the position now holds)`` (``ALL_LOTS``: every fill)."""
    overcounted: list[tuple[TrackedOrder, int]]
    """``(order, lots)`` reported to us before the request that the venue's count of the order
    does not hold: a fill counted twice under two ids."""
    held: list[tuple[TrackedOrder, OpenOrder]]
    """Covered orders it shows resting, with what it says of them."""
    missing: list[TrackedOrder]
    """Covered orders it does not show: gone."""
    ambiguous: list[TrackedOrder]
    """Orders it cannot speak for (see the module docstring): if any, apply nothing."""
    unknown: list[OpenOrder]
    """Orders it shows that we do not track (an earlier process's, a forgotten one, one we
    only know from its fills)."""
    unsure: list[tuple[Side, int]] = []
    """``(side, lots)`` of fills reported since the request that the venue's count of a shown
    order may hold or not: presumed held, and reserved until a later snapshot decides."""


def covered(order: TrackedOrder, rid: int) -> bool:
    """Everything we asked of ``order`` was answered before snapshot request ``rid``."""
    return order.open_requests == 0 and order.answer_mark < rid and order.place_request < rid


def read_snapshot(
    *,
    position: float,
    venue_orders: Iterable[OpenOrder],
    orders: Iterable[TrackedOrder],
    rid: int,
    sizer: PositionSizer,
) -> Reading:
    """Read a snapshot answering request ``rid`` against ``orders`` (our live orders and those
    closed since the last snapshot we adopted was asked for)."""
    shown = {o.cloid: o for o in venue_orders}
    position_lots = sizer.nearest_lots(position)
    included: list[tuple[TrackedOrder, int]] = []
    overcounted: list[tuple[TrackedOrder, int]] = []
    held: list[tuple[TrackedOrder, OpenOrder]] = []
    missing: list[TrackedOrder] = []
    ambiguous: list[TrackedOrder] = []
    unsure: list[tuple[Side, int]] = []
    for order in orders:
        sign = 1 if order.side is _BUY else -1
        venue = shown.get(order.cloid)
        if venue is not None and order.state is _CLOSED and not order.place_request:
            # A fill's record of an order we never knew, and it rests (cancel it): the
            # position holds the venue's count of its fills, not those we received beyond it.
            beyond = order.filled_lots - sizer.nearest_lots(venue.filled_size)
            if beyond > 0:
                position_lots += sign * beyond
            continue
        if venue is not None:
            del shown[order.cloid]
            # Its cumulative fill at the venue: exactly what the position holds of it.
            inside = sizer.nearest_lots(venue.filled_size)
            before = order.filled_before(rid)
            extra = before - inside if before > inside else 0
            if extra:
                overcounted.append((order, extra))
            beyond = order.filled_lots - extra - inside
            if beyond > 0:
                position_lots += sign * beyond
            # Fills reported since the request that fit in the venue's count beyond what we
            # had before it: the ones it counts, or later ones while those it counts were
            # lost. No count can tell, and the two clocks cannot either.
            since = order.filled_lots - before
            room = inside - (before - extra)
            if since > 0 and room > 0:
                unsure.append((order.side, min(since, room)))
            included.append((order, inside))
            if order.state is not _CLOSED and covered(order, rid):
                held.append((order, venue))
            continue
        if order.place_request >= rid and order.place_request:
            # Sent after the request (the engine holds new orders while a snapshot is on its
            # way, so only when that wait ran out): it may have traded and gone before the
            # venue read the position. Only one that never could fill is sure to be outside.
            if order.state is _CLOSED and order.filled_lots == 0:
                continue
            ambiguous.append(order)
            continue
        heard = 0 <= order.confirmed_mark < rid or 0 <= order.created_mark < rid
        if not heard and order.place_request:
            if order.state is _CLOSED and order.filled_lots == 0:
                continue  # refused, or answered with nothing filled: in no position anywhere
            ambiguous.append(order)
            continue
        # It was at the venue (or never got there) before the request and is not shown:
        # gone when the snapshot was taken, so all its fills are in the position.
        included.append((order, ALL_LOTS))
        if order.state is not _CLOSED and covered(order, rid):
            missing.append(order)
    return Reading(
        position_lots=position_lots,
        included=included,
        overcounted=overcounted,
        held=held,
        missing=missing,
        ambiguous=ambiguous,
        unknown=list(shown.values()),
        unsure=unsure,
    )
