"""Order manager: our orders, their exposure, and the fewest actions to reach wanted quotes.

Every order is tracked by client order id (cloid) in integer ticks and lots, and moves only
through the transition table of ``orders/state.py`` (``_apply`` is its one writer). **Exposure
is released only by evidence.** An order counts everything it could still fill:

- being placed, resting, or with a cancel or modify in flight: its whole remaining size;
- gone from the venue (``SETTLING``): the fills the venue says it made whose reports have not
  arrived (``filled_size`` on the cancel's answer minus the fills received), or, when the venue
  did not say, the whole remainder until a snapshot settles it.

A modify is a cancel-replace: the old order settles like a cancelled one and the new leg is a
fresh order with its own cloid, so a late fill of the old leg is counted against the old leg,
never the new one. ``plan`` never lets a side's exposure exceed ``Q - q`` for bids (``Q + q``
for asks), so no sequence of fills, in any delivery order, takes the position past the limit.

Every request carries an id and every answer names one (or is matched to the oldest open
request on its cloid), so a refused modify and a refused cancel on one order are never
confused. A ``VenueSnapshot`` is evidence only about what the venue had answered when it was
asked for (``orders/reconcile.py``): orders with a request still on its way keep their state
and exposure, and the snapshot's position is read against each order's own cumulative fill,
never against a timestamp from another clock. Before asking, the engine lets every place and
modify on its way be answered (``creating_in_flight``), so that a snapshot can always tell
an order that has not reached the venue from one that traded and went. A request is taken as
lost only by a snapshot asked for ``settle_timeout_s`` after it was sent (by then the venue has
done it or refused it as expired). Unknown, duplicate or unusable messages are counted and ask
for reconciliation; they never raise and never free exposure.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import msgspec

from market_maker.config import OrdersConfig
from market_maker.model import (
    AckStatus,
    Action,
    Cancel,
    Fill,
    Modify,
    OpenOrder,
    OrderAck,
    Place,
    RequestSnapshot,
    Side,
    VenueSnapshot,
)
from market_maker.orders.planner import SidePlan, alternate, clip_to_room, decide
from market_maker.orders.reconcile import read_snapshot
from market_maker.orders.state import ALL_LOTS, TRANSITIONS, OrderState, TrackedOrder, Trigger
from market_maker.risk.sizing import PositionSizer

__all__ = ["OrderCounters", "OrderManager", "rejection_backoff_s"]

# Enum members as module constants: attribute access on an Enum class is slow in 3.11.
_BUY = Side.BUY
_SELL = Side.SELL
_PLACING = OrderState.PLACING
_RESTING = OrderState.RESTING
_SETTLING = OrderState.SETTLING
_CLOSED = OrderState.CLOSED
_MOVES = TRANSITIONS

# Statuses by value: an AckStatus member and its plain string are the same key.
_ACCEPTED, _REJECTED, _CANCELED, _NOT_FOUND = 0, 1, 2, 3
_STATUS = {
    AckStatus.ACCEPTED.value: _ACCEPTED,
    AckStatus.REJECTED.value: _REJECTED,
    AckStatus.CANCELED.value: _CANCELED,
    AckStatus.NOT_FOUND.value: _NOT_FOUND,
}

_RECENT = 4096  # closed orders (with their fill ids) remembered for late or duplicate messages
_PLACE, _CANCEL, _MODIFY = 0, 1, 2


def rejection_backoff_s(refusals: int, base_s: float, cap_s: float) -> float:
    """How long to hold new orders on a side after ``refusals`` refusals in a row:
    ``base_s * 2**(refusals - 1)``, capped at ``cap_s``; 0 before the first."""
    if refusals <= 0:
        return 0.0
    return min(cap_s, base_s * 2.0 ** min(refusals - 1, 60))


class _Request(msgspec.Struct):
    kind: int
    cloid: str
    new_cloid: str
    sent_ns: int


class OrderCounters(msgspec.Struct, kw_only=True):
    """What the order manager saw; anomalies are counted here, never raised."""

    fills: int = 0
    duplicate_fills: int = 0
    suspect_duplicates: int = 0
    """Fills with another id but the same order, venue time, price and size as one already
    booked: booked, and a snapshot asked for to tell a re-sent fill from a second one."""
    overcounted_fills: int = 0
    """Orders whose fills reported before a snapshot's request exceeded the venue's own count
    of the order (a fill re-sent under another id): the excess was taken back."""
    backoffs: int = 0
    """Times a side's new orders were held after a refusal (exponential, per side)."""
    unknown_fills: int = 0
    bad_fills: int = 0
    late_fills: int = 0
    """Fills for an order already closed."""
    fills_in_snapshot: int = 0
    """Fills an adopted snapshot's position already held when their report arrived."""
    overfills: int = 0
    """Fills beyond what the venue said the order filled, or beyond its size."""
    unknown_acks: int = 0
    late_acks: int = 0
    unknown_statuses: int = 0
    untrusted_answers: int = 0
    """Answers whose filled size was below the fills already reported: not believed."""
    illegal_moves: int = 0
    """Messages that asked an order for a move its transition table does not have."""
    rejections: int = 0
    """New orders refused (toward the kill switch's rejection storm)."""
    refusals: int = 0
    """Modifies and cancels refused with nothing changed (also toward the storm)."""
    race_rejections: int = 0
    """Refusals that are races with the market: not found (filled or gone), post only."""
    settled_by_fills: int = 0
    """Orders gone from the venue whose last outstanding fill arrived."""
    settled_by_snapshot: int = 0
    snapshots: int = 0
    stale_snapshots: int = 0
    bad_snapshots: int = 0
    deferred_snapshots: int = 0
    """Snapshots that could not tell an order on its way from one that traded: not applied."""
    position_corrections: int = 0
    """Snapshots whose position differed from our fills by more than the fills then in
    flight (a lost or phantom fill), counted once those fills have had until the next one."""
    orders_closed_by_snapshot: int = 0
    """Orders we thought live that the venue no longer held."""
    orders_restored_by_snapshot: int = 0
    """Orders we thought gone (or not yet placed) that the venue held."""
    orphans_cancelled: int = 0
    """Orders at the venue we did not know (an earlier process, a lost answer)."""
    lost_requests: int = 0
    """Requests unanswered when a snapshot asked for ``settle_timeout_s`` after them came."""


class OrderManager:
    """Tracks orders and position; turns wanted quotes into place/modify/cancel actions."""

    def __init__(
        self, sizer: PositionSizer, config: OrdersConfig, *, cloid_prefix: int = 0
    ) -> None:
        self.sizer = sizer
        self.config = config
        self.orders: dict[str, TrackedOrder] = {}
        """Orders that are not closed, by cloid."""
        self.position_lots = 0
        self.cash_usd = 0.0
        self.fees_usd = 0.0
        self.maker_volume_usd = 0.0
        self.counters = OrderCounters()
        self.needs_reconcile = False
        """Something only a venue snapshot can settle (the engine asks for one)."""
        self._lost_after_ns = int(config.settle_timeout_s * 1e9)
        self._next_id = cloid_prefix << 64
        self._next_request = 0
        self._requests: dict[int, _Request] = {}
        self._snapshot_request: int | None = None
        self._snapshot_sent_ns = 0
        self._snapshot_asks: dict[int, int] = {}  # snapshot request id -> when it was sent
        self._adopted = 0  # request id of the last snapshot adopted
        self._unsure: list[tuple[int, Side, int]] = []
        """``(mark, side, lots)`` of fills of orders we never knew, reported after the last
        adopted snapshot: it may hold them or not (no clock can say). Not in the position;
        reserved as exposure on their side until a snapshot asked after them decides."""
        self._unexplained = 0  # lots the last snapshot added that no late fill has explained
        self._closed: OrderedDict[str, TrackedOrder] = OrderedDict()
        self._recent_closes: dict[str, TrackedOrder] = {}
        """Closed since the last adopted snapshot was asked for: the next one reads them."""
        self._refusals = {_BUY: 0, _SELL: 0}
        self._backoff_until = {_BUY: 0, _SELL: 0}
        # Bumped whenever an order on that side changes; plans and exposure sums are cached
        # against them, so a cycle in which nothing changed costs two tuple comparisons.
        self._buy_version = 0
        self._sell_version = 0
        self._last_bids: tuple[object, ...] = ()
        self._last_asks: tuple[object, ...] = ()
        self._first_side = _BUY
        """The side that takes the first contended token of the next short budget."""
        self.plan_complete = True
        """False while the request budget (or a snapshot's wait) has held back part of the
        last plan."""
        self._exposure_key = (-1, -1)
        self._exposure: tuple[int, int, int, int] = (0, 0, 0, 0)

    # ----- the one writer of order states -------------------------------------------------

    def _apply(self, order: TrackedOrder, trigger: Trigger) -> bool:
        """Move ``order`` by ``trigger`` through the transition table; False (counted) when the
        table has no such move, which leaves the order as it was."""
        new = _MOVES.get((order.state, trigger))
        if new is None:
            self.counters.illegal_moves += 1
            self.needs_reconcile = True
            return False
        if new is not order.state:
            order.state = new
            if new is _CLOSED:
                self._closing(order)
            self._touch(order.side)
        return True

    def _closing(self, order: TrackedOrder) -> None:
        order.closed_mark = self._next_request
        if self.orders.pop(order.cloid, None) is not None:
            self._recent_closes[order.cloid] = order
            if len(self._recent_closes) > _RECENT:
                del self._recent_closes[next(iter(self._recent_closes))]
        self._remember_closed(order)

    def _remember_closed(self, order: TrackedOrder) -> None:
        self._closed[order.cloid] = order
        if len(self._closed) > _RECENT:
            self._closed.popitem(last=False)

    # ----- exposure -----------------------------------------------------------------------

    @property
    def position(self) -> float:
        return self.sizer.lots_to_size(self.position_lots)

    @property
    def fills(self) -> int:
        return self.counters.fills

    def _touch(self, side: Side) -> None:
        if side is _BUY:
            self._buy_version += 1
        else:
            self._sell_version += 1

    def _exposures(self) -> tuple[int, int, int, int]:
        """``(bids, asks, committed bids, committed asks)`` in lots, cached until a change.

        Committed exposure belongs to orders that are no longer live (a cancel or modify in
        flight, or gone and settling): ``plan`` cannot reuse it, so strategies size around it.
        """
        key = (self._buy_version, self._sell_version)
        if key == self._exposure_key:
            return self._exposure
        bids = asks = cbids = casks = 0
        for _, side, lots in self._unsure:
            if side is _BUY:
                bids += lots
                cbids += lots
            else:
                asks += lots
                casks += lots
        for o in self.orders.values():
            lots = o.exposure_lots
            if o.side is _BUY:
                bids += lots
                if o.committed:
                    cbids += lots
            else:
                asks += lots
                if o.committed:
                    casks += lots
        self._exposure = (bids, asks, cbids, casks)
        self._exposure_key = key
        return self._exposure

    @property
    def position_unsure(self) -> bool:
        """Fills whose place in the venue's count no snapshot could tell (an earlier process's
        orders; fills reported while a snapshot was on its way) are reserved, until a snapshot
        asked for after them decides."""
        return bool(self._unsure)

    def pending_exposure_lots(self) -> tuple[int, int]:
        """``(bid_lots, ask_lots)`` that could still fill."""
        bids, asks, _, _ = self._exposures()
        return bids, asks

    def pending_exposure(self) -> tuple[float, float]:
        """``(bids, asks)`` in contracts that could still fill."""
        bids, asks, _, _ = self._exposures()
        return self.sizer.lots_to_size(bids), self.sizer.lots_to_size(asks)

    def committed_exposure(self) -> tuple[float, float]:
        """``(bids, asks)`` in contracts held by orders no longer live (cancelling, settling)."""
        _, _, bids, asks = self._exposures()
        return self.sizer.lots_to_size(bids), self.sizer.lots_to_size(asks)

    def worst_case_positions(self, q: float) -> tuple[float, float]:
        """``(q - pending asks, q + pending bids)``: the position range fills could reach."""
        bids, asks = self.pending_exposure()
        return q - asks, q + bids

    def has_live(self) -> bool:
        """Whether any order is live: one ``cancel_all`` would cancel (or retry, once its
        side's backoff is over)."""
        return any(o.live for o in self.orders.values())

    def live_orders(self) -> int:
        """Orders resting at the venue or about to (not cancelling, not settling)."""
        return sum(1 for o in self.orders.values() if o.state is not _SETTLING)

    def settling_orders(self) -> int:
        return sum(1 for o in self.orders.values() if o.state is _SETTLING)

    def oldest_wait_ns(self) -> int | None:
        """Since when the oldest unanswered request or unsettled order has been waiting."""
        oldest = None
        for r in self._requests.values():
            if oldest is None or r.sent_ns < oldest:
                oldest = r.sent_ns
        for o in self.orders.values():
            if o.state is _SETTLING and (oldest is None or o.since_ns < oldest):
                oldest = o.since_ns
        return oldest

    # ----- fills --------------------------------------------------------------------------

    def on_fill(self, fill: Fill) -> bool:
        """Apply a fill; True when it moved the position (False for a duplicate, an unusable
        one, or one an adopted snapshot's position already held).

        Duplicates are recognised per order: each order (live, or among the last closed ones)
        keeps the ids of its fills. A fill moves the position only beyond the lots of its order
        that an adopted snapshot already holds.
        """
        c = self.counters
        fid = fill.fill_id
        cloid = fill.cloid
        order = self.orders.get(cloid)
        closed = self._closed.get(cloid) if order is None else None
        known = order if order is not None else closed
        if known is not None and fid in known.fills:
            c.duplicate_fills += 1
            return False
        sizer = self.sizer
        lots = sizer.nearest_lots(fill.size) if sizer.size_ok(fill.size) else 0
        if lots <= 0 or not sizer.price_ok(fill.price):
            c.bad_fills += 1  # unusable numbers: the position is reconciled from the venue
            self.needs_reconcile = True
            return False
        if known is None:
            # Not ours as far as we know (an earlier process's order, or one forgotten): book
            # it as the venue says and let a snapshot confirm. Remember its id.
            c.unknown_fills += 1
            self.needs_reconcile = True
            known = TrackedOrder(
                cloid=cloid,
                side=fill.side,
                price_ticks=0,
                size_lots=ALL_LOTS,  # a record of fills only: no size to overfill
                state=_CLOSED,
                created_ts_ns=fill.ts_ns,
                confirmed_mark=self._next_request,
                closed_mark=self._next_request,
            )
            self._recent_closes[cloid] = known
            self._remember_closed(known)
            if self._adopted:
                # A snapshot was adopted: it may hold this fill already. Reserve it instead.
                known.in_snapshot_lots = ALL_LOTS
        elif closed is not None:
            c.late_fills += 1
            if self._adopted > closed.closed_mark:
                # Closed before a snapshot we adopted was asked for: that snapshot holds it.
                closed.in_snapshot_lots = ALL_LOTS
        side = known.side
        moved = self._book(known, fid, lots, fill)
        if moved < lots and (order is not None or known.place_request == 0):
            # A snapshot counted fills of this order whose reports we had not seen, and it can
            # still trade (or was never ours): this one may be one of them (late) or a new one
            # (that one lost). No clock can say: the lots are reserved, and the venue's count
            # in the next snapshot settles them. A closed order of ours cannot fill again.
            self._unsure.append((self._next_request, side, lots - moved))
            self.needs_reconcile = True
        if known.confirmed_mark < 0:
            known.confirmed_mark = self._next_request
        if order is not None:
            order.last_fill_ts_ns = fill.ts_ns
            self._after_fill(order)
        elif known.filled_lots > (
            known.final_lots if known.final_lots is not None else known.size_lots
        ):
            c.overfills += 1
            self.needs_reconcile = True
        notional = fill.price * lots * sizer.lot_size
        if moved:
            signed = moved if side is _BUY else -moved
            self.position_lots += signed
            moved_value = fill.price * moved * sizer.lot_size
            self.cash_usd += -moved_value if side is _BUY else moved_value
        if moved < lots:
            c.fills_in_snapshot += 1
            held = lots - moved
            self._unexplained -= held if side is _BUY else -held
        self.cash_usd -= fill.fee
        self.fees_usd += fill.fee
        self.maker_volume_usd += notional
        c.fills += 1
        self._touch(side)
        return moved > 0

    def _book(self, order: TrackedOrder, fid: str, lots: int, fill: Fill) -> int:
        """Add the fill to ``order``; returns the lots that move the position (those beyond
        what an adopted snapshot already holds of it)."""
        ets = fill.exchange_ts_ns if fill.exchange_ts_ns is not None else -1
        price = fill.price
        if ets >= 0:
            for _, other_lots, other_ets, other_price in order.fills.values():
                if other_ets == ets and other_lots == lots and other_price == price:
                    # Another id, the same trade? Or a second trade alike: only the venue's
                    # count of the order can say. Booked; a snapshot settles it.
                    self.counters.suspect_duplicates += 1
                    self.needs_reconcile = True
                    break
        before = order.filled_lots
        after = before + lots
        order.filled_lots = after
        order.fills[fid] = (self._next_request, lots, ets, price)
        order.fill_value += price * lots * self.sizer.lot_size
        held = order.in_snapshot_lots
        if held <= before:
            return lots
        return after - held if after > held else 0

    def _after_fill(self, order: TrackedOrder) -> None:
        """Close an order once no further fill is possible."""
        filled = order.filled_lots
        if order.state is _SETTLING:
            final = order.final_lots if order.final_lots is not None else order.size_lots
            if filled >= final:
                if filled > final:
                    self.counters.overfills += 1
                    self.needs_reconcile = True
                self.counters.settled_by_fills += 1
                self._apply(order, Trigger.DONE)
        elif filled >= order.size_lots:
            if filled > order.size_lots:
                self.counters.overfills += 1
                self.needs_reconcile = True
            self._apply(order, Trigger.DONE)

    def on_print(self, aggressor: Side, price_ticks: int, ts_ns: int) -> None:
        """A market trade at ``price_ticks``: an acknowledged order of ours it went through
        (a sell below our bid, a buy above our ask) has traded, whatever its fill's report
        says yet (price priority). Marked, so the plan replaces its level at once."""
        for o in self.orders.values():
            if (
                o.side is not aggressor
                and o.acked
                and o.traded_through_ns < 0
                and o.live
                and (o.price_ticks > price_ticks if o.side is _BUY else o.price_ticks < price_ticks)
            ):
                o.traded_through_ns = ts_ns
                self._touch(o.side)

    # ----- acknowledgements ---------------------------------------------------------------

    def on_ack(self, ack: OrderAck) -> bool:
        """Apply an answer; True when a new order was refused (for the kill switch)."""
        c = self.counters
        status = _STATUS.get(ack.status)
        rid = ack.request_id
        request = self._requests.pop(rid, None) if rid is not None else None
        if request is None and rid is None:
            request = self._oldest_request(ack.cloid)
        if request is None:
            return self._on_update(ack, status)
        self._answered(request, self._next_request)
        if status is None:
            # Keep everything reserved; a snapshot will say what happened.
            c.unknown_statuses += 1
            self.needs_reconcile = True
            return False
        if request.kind == _PLACE:
            return self._on_place_answer(request.cloid, status, ack)
        old = self.orders.get(request.cloid)
        if old is None:
            c.late_acks += 1  # e.g. a cancel refused because the order had just filled
        if request.kind == _CANCEL:
            return old is not None and self._on_cancel_answer(old, status, ack)
        new = self.orders.get(request.new_cloid)
        if status == _ACCEPTED:
            if new is not None:
                self._heard(new)
                new.acked = True
                self._apply(new, Trigger.ACCEPTED)
            if old is not None:
                self._settle(old, ack.filled_size, ack.ts_ns)
            return False
        if new is not None:
            self._apply(new, Trigger.REJECTED)  # the new leg was never placed
        if old is not None:
            if status == _REJECTED:
                # Nothing changed at the venue: it refused us (rate limit, margin, ...).
                c.refusals += 1
                self._refused(old.side, ack.ts_ns)
                self._apply(old, Trigger.REFUSED)
                return True
            if status == _NOT_FOUND:  # CANCELED: old leg cancelled, new one refused
                c.race_rejections += 1
            self._settle(old, ack.filled_size, ack.ts_ns)
        return False

    def _answered(self, request: _Request, mark: int) -> None:
        """``request`` is answered (or taken as lost) at request counter ``mark``."""
        for cloid in (request.cloid, request.new_cloid):
            if not cloid:
                continue
            order = self.orders.get(cloid) or self._recent_closes.get(cloid)
            if order is None:
                continue
            if order.open_requests > 0:
                order.open_requests -= 1
            order.answer_mark = mark
            if request.kind == _PLACE or cloid == request.new_cloid:
                order.created_mark = mark

    def _heard(self, order: TrackedOrder) -> None:
        """Evidence that the venue holds (or held) ``order``."""
        if order.confirmed_mark < 0:
            order.confirmed_mark = self._next_request

    def _oldest_request(self, cloid: str) -> _Request | None:
        """The oldest open request naming ``cloid`` (a modify names the order it replaces; an
        update about its new leg is an order update, not the modify's answer)."""
        for rid, r in self._requests.items():
            if r.cloid == cloid:
                del self._requests[rid]
                return r
        return None

    def _on_place_answer(self, cloid: str, status: int, ack: OrderAck) -> bool:
        order = self.orders.get(cloid)
        if order is None:
            self.counters.late_acks += 1
            return False
        if status == _ACCEPTED:
            self._heard(order)
            order.acked = True
            self._apply(order, Trigger.ACCEPTED)
            self._refusals[order.side] = 0
            return False
        if status == _CANCELED:
            self._heard(order)
            self._settle(order, ack.filled_size, ack.ts_ns)  # it rested, then was cancelled
            return False
        # Refused: the order never rested, so it can never fill.
        self._refused(order.side, ack.ts_ns)
        if order.filled_lots > 0:
            self.needs_reconcile = True  # fills for an order the venue says never rested
            self._settle(order, None, ack.ts_ns)
        else:
            self._apply(order, Trigger.REJECTED)
        if ack.reason[:9].lower() == "post only":
            # The market moved to our price while the order travelled: a race, not the venue
            # refusing us (Hyperliquid: "Post only order would have immediately matched, ...").
            self.counters.race_rejections += 1
            return False
        self.counters.rejections += 1
        return True

    def _refused(self, side: Side, ts_ns: int) -> None:
        """A new order on ``side`` was refused: hold that side's new orders for a while."""
        n = self._refusals[side] + 1
        self._refusals[side] = n
        cfg = self.config
        wait = rejection_backoff_s(n, cfg.reject_backoff_s, cfg.reject_backoff_max_s)
        self._backoff_until[side] = ts_ns + int(wait * 1e9)
        self.counters.backoffs += 1

    def backoff_until(self, side: Side) -> int:
        """Until when (ns) new orders on ``side`` are held after refusals (0: not held)."""
        return self._backoff_until[side]

    def _on_cancel_answer(self, order: TrackedOrder, status: int, ack: OrderAck) -> bool:
        """True when the venue refused the cancel (it counts toward a refusal storm)."""
        if status == _CANCELED:
            self._heard(order)
            self._settle(order, ack.filled_size, ack.ts_ns)
            return False
        if status == _NOT_FOUND:
            # Gone already (filled, or cancelled before): its fills may still be on the way.
            self.counters.race_rejections += 1
            self._settle(order, ack.filled_size, ack.ts_ns)
            return False
        # Refused (or a status that makes no sense for a cancel): it may still rest.
        # Keep it live so the next plan cancels it again; a snapshot settles doubt.
        self._apply(order, Trigger.REFUSED)
        if status != _REJECTED:
            self.needs_reconcile = True
            self.counters.race_rejections += 1
            return False
        self.counters.refusals += 1
        order.cancel_refused += 1
        self._refused(order.side, ack.ts_ns)  # the retry waits too: no hammering
        return True

    def _on_update(self, ack: OrderAck, status: int | None) -> bool:
        """An answer to no open request: a venue-side order update, or a stray message."""
        c = self.counters
        order = self.orders.get(ack.cloid)
        if order is None:
            if ack.cloid in self._closed:
                c.late_acks += 1
            else:
                c.unknown_acks += 1
                self.needs_reconcile = True
            return False
        if status is None:
            c.unknown_statuses += 1
            self.needs_reconcile = True
        elif status in (_CANCELED, _NOT_FOUND):
            # The venue cancelled it (margin, self-trade, dead man's switch) or reports the
            # cancel's fill size on its order-status stream.
            self._heard(order)
            if order.state is _SETTLING:
                if order.final_lots is None and self._believed(order, ack.filled_size):
                    order.final_lots = self.sizer.nearest_lots(ack.filled_size)  # type: ignore[arg-type]
                    self._touch(order.side)
                    self._after_fill(order)
            else:
                self._settle(order, ack.filled_size, ack.ts_ns)
        elif status == _ACCEPTED:
            self._heard(order)
            order.acked = True
            self._apply(order, Trigger.ACCEPTED)
        else:
            c.late_acks += 1
        return False

    def _believed(self, order: TrackedOrder, filled_size: float | None) -> bool:
        """A usable filled size that is not below the fills already reported to us."""
        if filled_size is None or not (math.isfinite(filled_size) and filled_size >= 0.0):
            return False
        if self.sizer.nearest_lots(filled_size) < order.filled_lots:
            # The venue says less than we have had: a stale figure. Believing it would free
            # the reservation of fills still on their way; a snapshot settles it.
            self.counters.untrusted_answers += 1
            self.needs_reconcile = True
            return False
        return True

    def _settle(self, order: TrackedOrder, filled_size: float | None, ts_ns: int) -> None:
        """The order is off the book: wait for the fills the venue says it made."""
        if self._believed(order, filled_size):
            order.final_lots = self.sizer.nearest_lots(filled_size)  # type: ignore[arg-type]
        if not self._apply(order, Trigger.GONE):
            return
        order.since_ns = ts_ns
        self._touch(order.side)
        self._after_fill(order)

    # ----- reconciliation -----------------------------------------------------------------

    def creating_in_flight(self, ts_ns: int) -> bool:
        """A place or modify is on its way and not yet taken as lost: a snapshot asked for now
        could not tell whether it reached the venue (and traded), so the engine waits."""
        lost_after = self._lost_after_ns
        return any(
            r.kind != _CANCEL and ts_ns - r.sent_ns < lost_after for r in self._requests.values()
        )

    def request_snapshot(self, ts_ns: int) -> RequestSnapshot:
        """A request for the venue's snapshot."""
        rid = self._new_request(-1, "", "", ts_ns, track=False)
        self._snapshot_request = rid
        self._snapshot_sent_ns = ts_ns
        self._snapshot_asks[rid] = ts_ns
        if len(self._snapshot_asks) > 64:  # answers that never came
            del self._snapshot_asks[next(iter(self._snapshot_asks))]
        return RequestSnapshot(request_id=rid)

    def snapshot_in_flight(self, ts_ns: int, timeout_ns: int) -> bool:
        return self._snapshot_request is not None and ts_ns - self._snapshot_sent_ns < timeout_ns

    def on_snapshot(self, snap: VenueSnapshot, *, mark: float = math.nan) -> list[Action]:
        """Adopt what the venue's snapshot proves; returns cancels for orders at the venue we
        do not know. A snapshot without a request id is taken as asked for now.

        A position the venue reports beyond our fills is booked at ``snap.mark_price`` (or
        ``mark``, the engine's mid), so PnL starts from it rather than counting it as free.
        """
        c = self.counters
        rid = snap.request_id
        if rid is None:  # unsolicited: taken as asked for now
            rid = self._new_request(-1, "", "", snap.ts_ns, track=False)
        if rid <= self._adopted:
            c.stale_snapshots += 1
            return []
        if not self.sizer.position_ok(snap.position):
            c.bad_snapshots += 1  # unusable: change nothing, ask again
            self.needs_reconcile = True
            return []
        c.snapshots += 1
        if rid == self._snapshot_request or snap.request_id is None:
            self._snapshot_request = None
        asked_ns = self._snapshot_asks.pop(rid, snap.ts_ns)
        self._presume_lost(rid, asked_ns)
        reading = read_snapshot(
            position=snap.position,
            venue_orders=snap.orders,
            orders=[*self.orders.values(), *self._recent_closes.values()],
            rid=rid,
            sizer=self.sizer,
        )
        if reading.ambiguous:
            c.deferred_snapshots += 1
            self.needs_reconcile = True
            return self._cancel_unknown(reading.unknown, snap.ts_ns)
        sizer = self.sizer
        for order, extra in reading.overcounted:
            c.overcounted_fills += 1
            order.taken_back_lots += extra
            order.filled_lots -= extra
            self._touch(order.side)
        for order, lots in reading.included:
            order.in_snapshot_lots = lots
        for order, held in reading.held:
            if order.state is _SETTLING:
                c.orders_restored_by_snapshot += 1
            elif order.state is _PLACING:
                c.orders_restored_by_snapshot += 1  # its place's answer was lost
            self._heard(order)
            order.acked = True
            order.final_lots = None
            order.size_lots = sizer.nearest_lots(held.filled_size) + sizer.nearest_lots(held.size)
            self._apply(order, Trigger.HELD)
            self._touch(order.side)
            self._after_fill(order)
        for order in reading.missing:
            if order.state is _SETTLING:
                c.settled_by_snapshot += 1
            else:
                c.orders_closed_by_snapshot += 1
            self._apply(order, Trigger.MISSING)

        # The position the snapshot proves.
        if self._unexplained:
            c.position_corrections += 1
        diff = reading.position_lots - self.position_lots
        self._unexplained = diff
        if diff:
            price = snap.mark_price if snap.mark_price is not None else mark
            if price > 0.0 and math.isfinite(price):
                self.cash_usd -= diff * sizer.lot_size * price
            self.position_lots = reading.position_lots
            self._buy_version += 1
            self._sell_version += 1
        self._adopted = rid
        if self._unsure:  # decided by this snapshot: it was asked for after them
            self._unsure = [u for u in self._unsure if u[0] >= rid]
            self._buy_version += 1
            self._sell_version += 1
        for side, lots in reading.unsure:
            self._unsure.append((self._next_request, side, lots))
            self._touch(side)
        self._recent_closes = {k: o for k, o in self._recent_closes.items() if o.closed_mark >= rid}
        self.needs_reconcile = bool(reading.unsure)  # a snapshot asked for now decides them
        return self._cancel_unknown(reading.unknown, snap.ts_ns)

    def _presume_lost(self, rid: int, asked_ns: int) -> None:
        """Requests sent ``settle_timeout_s`` or more before snapshot ``rid`` was asked for:
        the venue has done them or refused them as expired by then, so the snapshot shows
        what became of them; an answer still missing was lost."""
        lost_after = self._lost_after_ns
        for r in [r for r, req in self._requests.items() if r < rid]:
            req = self._requests[r]
            if asked_ns - req.sent_ns >= lost_after:
                del self._requests[r]
                self.counters.lost_requests += 1
                self._answered(req, rid - 1)

    def _cancel_unknown(self, held_orders: list[OpenOrder], ts: int) -> list[Action]:
        """Orders at the venue that we do not know: track them and cancel them before they
        trade. Their fills so far are in the snapshot's position."""
        actions: list[Action] = []
        sizer = self.sizer
        for held in held_orders:
            if held.cloid in self.orders:
                continue
            self.counters.orphans_cancelled += 1
            filled = sizer.nearest_lots(held.filled_size)
            order = TrackedOrder(
                cloid=held.cloid,
                side=held.side,
                price_ticks=sizer.nearest_ticks(held.price),
                size_lots=filled + sizer.nearest_lots(held.size),
                filled_lots=filled,
                in_snapshot_lots=filled,
                state=_RESTING,
                acked=True,
                created_ts_ns=ts,
                since_ns=ts,
                confirmed_mark=self._next_request,
                created_mark=self._next_request,
            )
            forgotten = self._closed.pop(held.cloid, None)
            self._recent_closes.pop(held.cloid, None)
            # The venue's count of its fills is in the position; ours are only those reported
            # to us, so a report still on its way is recognised as held when it comes.
            order.filled_lots = 0
            if forgotten is not None:
                order.fills = forgotten.fills
                order.filled_lots = forgotten.filled_lots
            self.orders[held.cloid] = order
            self._touch(held.side)
            actions.append(self._cancel(order, ts))
        return actions

    # ----- planning -----------------------------------------------------------------------

    def _new_cloid(self) -> str:
        self._next_id += 1
        return f"0x{self._next_id:032x}"

    def _new_request(
        self, kind: int, cloid: str, new_cloid: str, ts_ns: int, *, track: bool = True
    ) -> int:
        self._next_request += 1
        rid = self._next_request
        if track:
            self._requests[rid] = _Request(kind, cloid, new_cloid, ts_ns)
        return rid

    def _cancel(self, order: TrackedOrder, ts_ns: int) -> Cancel:
        self._apply(order, Trigger.CANCEL_SENT)
        order.since_ns = ts_ns
        order.open_requests += 1
        rid = self._new_request(_CANCEL, order.cloid, "", ts_ns)
        return Cancel(cloid=order.cloid, request_id=rid)

    def cancel_all(self, ts_ns: int = 0) -> list[Action]:
        """Cancel every live order (those already cancelling or settling are left alone; a
        cancel the venue refused is retried once its side's backoff is over)."""
        actions: list[Action] = [
            self._cancel(o, ts_ns)
            for o in list(self.orders.values())
            if o.live and (o.cancel_refused == 0 or ts_ns >= self._backoff_until[o.side])
        ]
        if actions:
            self._buy_version += 1
            self._sell_version += 1
        return actions

    def cancel_side(self, side: Side, ts_ns: int) -> list[Action]:
        """Cancel every live order on ``side`` (an escalation making room for itself)."""
        actions: list[Action] = [
            self._cancel(o, ts_ns)
            for o in list(self.orders.values())
            if o.live and o.side is side and o.cancel_refused == 0
        ]
        return actions

    def plan(
        self,
        bids: tuple[tuple[int, int], ...],
        asks: tuple[tuple[int, int], ...],
        *,
        max_lots: int,
        ts_ns: int,
        budget: int | None = None,
        reduce_only: bool = False,
        hold_new: bool = False,
        reserve: tuple[int, int] = (0, 0),
        touch: tuple[int, int] = (0, 0),
    ) -> list[Action]:
        """Actions that move our orders towards ``bids``/``asks`` (``(ticks, lots)``, best first).

        ``max_lots`` is the position limit ``Q`` in lots. With ``reduce_only`` only the side that
        shrinks ``|q|`` may rest, and never more than ``|q|``, so fills cannot flip the position.
        Wanted levels are cut to what the side's room leaves once its committed exposure is
        counted, so what rests matches what is wanted. ``budget`` caps the number of actions
        (the request rate limit; 0 plans nothing, as if the cycle had been held): cancels of
        both sides go first, then the new orders of a side with nothing resting at its wanted
        levels, then the sides in turn (``_send_within``); whatever ran out is planned again
        next time. The budget left also widens the price tolerance within which a resting
        order is kept (``planner.keep_tolerance_ticks``). ``hold_new`` sends cancels only (a
        snapshot is waiting for places and modifies on their way to be answered). ``reserve``
        keeps ``(bid, ask)`` lots of the room free (for an escalation about to go). ``touch``
        is the market's best bid and ask in ticks: an order it has crossed has traded, and its
        level is placed again without waiting for the fill (``planner.decide``).
        """
        if budget is not None and budget <= 0:
            # Nothing could be sent: the same as a cycle held for the budget (no decision is
            # taken, or remembered, on an empty budget's tolerance).
            return []
        q = self.position_lots
        if reduce_only:
            bid_room = -q if q < 0 else 0
            ask_room = q if q > 0 else 0
        else:
            bid_room = max_lots - q
            ask_room = max_lots + q
        bid_room -= reserve[0]
        ask_room -= reserve[1]
        bid_key = (self._buy_version, bids, bid_room)
        ask_key = (self._sell_version, asks, ask_room)
        plans: list[SidePlan] = []
        burst = self.config.request_burst
        scarcity = 0.0 if budget is None else 1.0 - min(budget, burst) / burst
        if bid_key != self._last_bids:
            plans.append(self._decide(_BUY, bids, bid_room, ts_ns, scarcity, touch))
        if ask_key != self._last_asks:
            plans.append(self._decide(_SELL, asks, ask_room, ts_ns, scarcity, touch))
        actions: list[Action] = []
        done = {_BUY: True, _SELL: True}
        for i, (side, cancels, modifies, places) in enumerate(plans):
            if hold_new or ts_ns < self._backoff_until[side]:
                # Refused lately: nothing new on this side until the wait is over, and a
                # cancel the venue refused is retried only then; the rest is planned again.
                # A snapshot's wait holds new orders the same way, cancels still go.
                waiting = ts_ns < self._backoff_until[side]
                kept = [o for o in cancels if o.cancel_refused == 0 or not waiting]
                if len(kept) != len(cancels) or modifies or places:
                    plans[i] = (side, kept, [], [])
                    done[side] = False
        total = sum(len(c) + len(m) + len(p) for _, c, m, p in plans)
        if total and (budget is None or total <= budget):
            # Everything fits: riskiest first (cancels, then modifies, then places).
            for _, cancels, _, _ in plans:
                actions.extend(self._cancel(o, ts_ns) for o in cancels)
            for _, _, modifies, _ in plans:
                actions.extend(self._modify(o, t, n, ts_ns) for o, t, n in modifies)
            for side, _, _, places in plans:
                actions.extend(self._place(side, t, n, ts_ns) for t, n in places)
        elif total:
            self._send_within(plans, budget or 0, ts_ns, actions, done)
        for side, cancels, modifies, places in plans:
            sent = bool(cancels or modifies or places)
            if side is _BUY:
                if sent:
                    self._buy_version += 1
                self._last_bids = (self._buy_version, bids, bid_room) if done[side] else ()
            else:
                if sent:
                    self._sell_version += 1
                self._last_asks = (self._sell_version, asks, ask_room) if done[side] else ()
        self.plan_complete = done[_BUY] and done[_SELL]
        return actions

    def _decide(
        self,
        side: Side,
        wanted: tuple[tuple[int, int], ...],
        room: int,
        ts_ns: int,
        scarcity: float,
        touch: tuple[int, int],
    ) -> SidePlan:
        bid_exposure, ask_exposure, committed_bids, committed_asks = self._exposures()
        if side is _BUY:
            exposure, committed = bid_exposure, committed_bids
        else:
            exposure, committed = ask_exposure, committed_asks
        wanted = clip_to_room(wanted, room - committed, self.sizer)
        live = [o for o in self.orders.values() if o.side is side and o.live]
        return decide(
            side,
            wanted,
            room,
            live,
            exposure,
            self.config,
            self.sizer,
            now_ns=ts_ns,
            scarcity=scarcity,
            touch=touch,
        )

    def _send_within(
        self,
        plans: list[SidePlan],
        budget: int,
        ts_ns: int,
        actions: list[Action],
        done: dict[Side, bool],
    ) -> None:
        """The budget is short. Cancels of both sides first (they reduce risk); a side whose
        cancels could not all go sends nothing new. Then each side's first new order, a side
        with nothing resting (only places to send) before one that re-prices a resting order
        (a modify) before one that already rests at a wanted level; then the rest of both, one
        each in turn. Between equals, and in turn, the side that waited last time goes first,
        so when both need the one token they take it alternately."""
        left = budget
        first = self._first_side
        if len(plans) == 2 and plans[0][0] is not first:
            plans = [plans[1], plans[0]]
        for side, o in alternate([(p[0], p[1]) for p in plans]):
            if left <= 0:
                done[side] = False
                continue
            actions.append(self._cancel(o, ts_ns))
            left -= 1
        # New orders of each side, best level first: modifies (a resting order moved) are the
        # best unmatched levels, places the rest.
        work: list[tuple[Side, list[tuple[TrackedOrder | None, int, int]]]] = []
        ranks: list[int] = []
        for side, _, modifies, places in plans:
            items: list[tuple[TrackedOrder | None, int, int]] = [(o, t, n) for o, t, n in modifies]
            items.extend((None, t, n) for t, n in places)
            if not items:
                continue
            if not done[side]:
                continue  # its cancels come first
            # Live now (its cancels are sent): kept at a wanted level, or about to be moved.
            kept = self._live_count(side) - len(modifies)
            ranks.append(0 if not modifies and kept <= 0 else 1 if kept <= 0 else 2)
            work.append((side, items))
        if len(work) == 2 and ranks[1] < ranks[0]:
            work = [work[1], work[0]]
        heads = [(side, items[0]) for side, items in work]
        tails = alternate([(side, items[1:]) for side, items in work])
        waiting: set[Side] = set()
        for side, (moved, ticks, size) in heads + tails:
            if left <= 0:
                done[side] = False
                waiting.add(side)
                continue
            if moved is not None:
                actions.append(self._modify(moved, ticks, size, ts_ns))
            else:
                actions.append(self._place(side, ticks, size, ts_ns))
            left -= 1
        waiting.update(side for side in (_BUY, _SELL) if not done[side])
        if len(waiting) == 1:
            # One side waits: it goes first next time.
            self._first_side = next(iter(waiting))
        elif waiting:
            # Both wait: the one that went first this time goes second next time.
            self._first_side = _SELL if first is _BUY else _BUY

    def _live_count(self, side: Side) -> int:
        return sum(1 for o in self.orders.values() if o.side is side and o.live)

    def _modify(self, o: TrackedOrder, ticks: int, size: int, ts_ns: int) -> Modify:
        """Replace ``o`` by a fresh order (a new cloid, so late fills of ``o`` stay with ``o``)."""
        new_cloid = self._new_cloid()
        rid = self._new_request(_MODIFY, o.cloid, new_cloid, ts_ns)
        self._apply(o, Trigger.MODIFY_SENT)
        o.since_ns = ts_ns
        o.open_requests += 1
        self._track(new_cloid, o.side, ticks, size, rid, ts_ns)
        sizer = self.sizer
        return Modify(
            cloid=o.cloid,
            new_cloid=new_cloid,
            price=sizer.ticks_to_price(ticks),
            size=sizer.lots_to_size(size),
            request_id=rid,
        )

    def _track(self, cloid: str, side: Side, ticks: int, size: int, rid: int, ts: int) -> None:
        """A new order on its way to the venue, created by request ``rid``."""
        self.orders[cloid] = TrackedOrder(
            cloid=cloid,
            side=side,
            price_ticks=ticks,
            size_lots=size,
            state=_PLACING,
            created_ts_ns=ts,
            place_request=rid,
            open_requests=1,
            since_ns=ts,
        )

    def _place(self, side: Side, ticks: int, size: int, ts_ns: int) -> Place:
        cloid = self._new_cloid()
        rid = self._new_request(_PLACE, cloid, "", ts_ns)
        self._track(cloid, side, ticks, size, rid, ts_ns)
        sizer = self.sizer
        return Place(
            cloid=cloid,
            side=side,
            price=sizer.ticks_to_price(ticks),
            size=sizer.lots_to_size(size),
            request_id=rid,
        )

    def place_ioc(self, side: Side, ticks: int, lots: int, ts_ns: int) -> Place:
        """An immediate-or-cancel order: takes liquidity up to ``ticks`` (escalation)."""
        place = self._place(side, ticks, lots, ts_ns)
        self.orders[place.cloid].ioc = True
        self._touch(side)
        return msgspec.structs.replace(place, post_only=False)

    def ioc_in_flight(self) -> bool:
        return any(o.ioc for o in self.orders.values())
