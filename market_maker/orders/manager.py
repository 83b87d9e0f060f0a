"""Order manager: our orders, their exposure, and the fewest actions to reach wanted quotes.

Every order is tracked by client order id (cloid) in integer ticks and lots. **Exposure is
released only by evidence.** An order counts everything it could still fill:

- being placed, resting, or with a cancel or modify in flight: its whole remaining size;
- gone from the venue (``SETTLING``): the fills the venue says it made whose reports have not
  arrived (``filled_size`` on the cancel's answer minus the fills received), or, when the venue
  did not say, the whole remainder until a snapshot settles it.

A modify is a cancel-replace: the old order settles like a cancelled one and the new leg is a
fresh order with its own cloid, so a late fill of the old leg is counted against the old leg,
never the new one. ``plan`` never lets a side's exposure exceed ``Q - q`` for bids (``Q + q``
for asks), so no sequence of fills, in any delivery order, takes the position past the limit.

Every request carries an id and every answer names one (or is matched to the oldest open
request on its cloid, since a venue answers one connection's requests in order), so a refused
modify and a refused cancel on one order are never confused. A ``VenueSnapshot`` is the truth:
it covers every request sent before it was asked for, fills stamped at or before it are already
in its position, and applying it adopts the venue's position, settles or closes the orders the
venue no longer holds and cancels the ones we do not know. Unknown, duplicate or unusable
messages are counted and ask for reconciliation; they never raise and never free exposure.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from enum import IntEnum
from typing import TypeVar

import msgspec

from market_maker.config import OrdersConfig
from market_maker.model import (
    AckStatus,
    Action,
    Cancel,
    Fill,
    Modify,
    OrderAck,
    Place,
    RequestSnapshot,
    Side,
    VenueSnapshot,
)
from market_maker.risk.sizing import PositionSizer

__all__ = ["OrderCounters", "OrderManager", "OrderState", "TrackedOrder", "rejection_backoff_s"]

# Enum members as module constants: attribute access on an Enum class is slow in 3.11.
_BUY = Side.BUY
_SELL = Side.SELL

# Statuses by value: an AckStatus member and its plain string are the same key.
_ACCEPTED, _REJECTED, _CANCELED, _NOT_FOUND = 0, 1, 2, 3
_STATUS = {
    AckStatus.ACCEPTED.value: _ACCEPTED,
    AckStatus.REJECTED.value: _REJECTED,
    AckStatus.CANCELED.value: _CANCELED,
    AckStatus.NOT_FOUND.value: _NOT_FOUND,
}

_RECENT = 4096  # closed orders (with their fill ids) remembered for late or duplicate messages
_FILL_LOG = 65_536  # received fills remembered for adopting a snapshot's position


def rejection_backoff_s(refusals: int, base_s: float, cap_s: float) -> float:
    """How long to hold new orders on a side after ``refusals`` refusals in a row:
    ``base_s * 2**(refusals - 1)``, capped at ``cap_s``; 0 before the first."""
    if refusals <= 0:
        return 0.0
    return min(cap_s, base_s * 2.0 ** min(refusals - 1, 60))


class OrderState(IntEnum):
    PENDING_NEW = 0
    """Place (or a modify's new leg) sent, not yet answered."""
    OPEN = 1
    """Resting at the venue."""
    PENDING_CANCEL = 2
    """A cancel, or a modify replacing it, is in flight."""
    SETTLING = 3
    """Gone from the venue; fills it made may still be on their way."""


_PENDING_NEW = OrderState.PENDING_NEW
_OPEN = OrderState.OPEN
_PENDING_CANCEL = OrderState.PENDING_CANCEL
_SETTLING = OrderState.SETTLING

_PLACE, _CANCEL, _MODIFY = 0, 1, 2
_T = TypeVar("_T")


class TrackedOrder(msgspec.Struct, kw_only=True):
    """One of our orders as we believe it stands (mutable state, integer ticks and lots)."""

    cloid: str
    side: Side
    price_ticks: int
    size_lots: int
    state: OrderState
    created_ts_ns: int
    place_request: int = 0
    """Id of the request that created it (a snapshot asked for later covers it)."""
    since_ns: int = 0
    """When it last entered a waiting state (for the settle timeout)."""
    filled_lots: int = 0
    fill_value: float = 0.0
    last_fill_ts_ns: int | None = None
    final_lots: int | None = None
    """Total filled at the venue once it is gone, when the venue said; None: unknown."""
    cancel_refused: int = 0
    """Times the venue refused to cancel it (its retries wait out the side's backoff)."""
    ioc: bool = False
    """Immediate-or-cancel (an escalation that takes liquidity): never rests, never planned
    over; its exposure counts until the venue says how much it filled."""
    fill_ids: set[str] = msgspec.field(default_factory=set)
    """Ids of the fills booked against it: a re-sent fill is recognised however many other
    fills came between. Bounded by the order itself (every fill is at least one lot)."""

    @property
    def remaining_lots(self) -> int:
        return self.size_lots - self.filled_lots

    @property
    def exposure_lots(self) -> int:
        """Lots that could still move the position."""
        if self.state is _SETTLING and self.final_lots is not None:
            left = self.final_lots - self.filled_lots
        else:
            left = self.size_lots - self.filled_lots
        return left if left > 0 else 0

    @property
    def live(self) -> bool:
        """Resting or about to: an order ``plan`` may keep, modify or cancel."""
        return (self.state is _OPEN or self.state is _PENDING_NEW) and not self.ioc

    def average_fill_price(self, lot_size: float) -> float | None:
        """Volume-weighted price of the fills so far (USD), or None before the first fill."""
        if self.filled_lots <= 0:
            return None
        return self.fill_value / (self.filled_lots * lot_size)


class _Request(msgspec.Struct):
    kind: int
    cloid: str
    new_cloid: str
    sent_ns: int


_SidePlan = tuple[
    Side, list[TrackedOrder], list[tuple[TrackedOrder, int, int]], list[tuple[int, int]]
]
"""``(side, cancels, modifies, places)`` for one side."""


class OrderCounters(msgspec.Struct, kw_only=True):
    """What the order manager saw; anomalies are counted here, never raised."""

    fills: int = 0
    duplicate_fills: int = 0
    backoffs: int = 0
    """Times a side's new orders were held after a refusal (exponential, per side)."""
    unknown_fills: int = 0
    bad_fills: int = 0
    late_fills: int = 0
    """Fills for an order already closed (their position still counts)."""
    fills_in_snapshot: int = 0
    """Fills that arrived after a snapshot that already included them."""
    overfills: int = 0
    """Fills beyond what the venue said the order filled, or beyond its size."""
    unknown_acks: int = 0
    late_acks: int = 0
    unknown_statuses: int = 0
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
    """Requests a snapshot covered whose answer never came."""


def _alternate(lists: list[tuple[Side, list[_T]]]) -> list[tuple[Side, _T]]:
    """``[(side, item)]`` taking one item from each side in turn."""
    out: list[tuple[Side, _T]] = []
    longest = max((len(items) for _, items in lists), default=0)
    for i in range(longest):
        for side, items in lists:
            if i < len(items):
                out.append((side, items[i]))
    return out


class OrderManager:
    """Tracks orders and position; turns wanted quotes into place/modify/cancel actions."""

    def __init__(
        self, sizer: PositionSizer, config: OrdersConfig, *, cloid_prefix: int = 0
    ) -> None:
        self.sizer = sizer
        self.config = config
        self.orders: dict[str, TrackedOrder] = {}
        self.position_lots = 0
        self.cash_usd = 0.0
        self.fees_usd = 0.0
        self.maker_volume_usd = 0.0
        self.counters = OrderCounters()
        self.needs_reconcile = False
        """Something only a venue snapshot can settle (the engine asks for one)."""
        self._next_id = cloid_prefix << 64
        self._next_request = 0
        self._requests: dict[int, _Request] = {}
        self._snapshot_request: int | None = None
        self._snapshot_sent_ns = 0
        self._snapshot_ts = -(1 << 62)
        self._fill_log: deque[tuple[int, int, str]] = deque()
        self._unexplained = 0  # lots the last snapshot added that no late fill has explained
        self._closed: OrderedDict[str, TrackedOrder] = OrderedDict()
        self._refusals = {_BUY: 0, _SELL: 0}
        self._backoff_until = {_BUY: 0, _SELL: 0}
        # Bumped whenever an order on that side changes; plans and exposure sums are cached
        # against them, so a cycle in which nothing changed costs two tuple comparisons.
        self._buy_version = 0
        self._sell_version = 0
        self._last_bids: tuple[object, ...] = ()
        self._last_asks: tuple[object, ...] = ()
        self.plan_complete = True
        """False while the request budget has held back part of the last plan."""
        self._exposure_key = (-1, -1)
        self._exposure: tuple[int, int, int, int] = (0, 0, 0, 0)

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
        for o in self.orders.values():
            lots = o.exposure_lots
            committed = o.state is _PENDING_CANCEL or o.state is _SETTLING or o.ioc
            if o.side is _BUY:
                bids += lots
                if committed:
                    cbids += lots
            else:
                asks += lots
                if committed:
                    casks += lots
        self._exposure = (bids, asks, cbids, casks)
        self._exposure_key = key
        return self._exposure

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
        """Apply a fill; False for a duplicate, an unusable one, or one a snapshot included.

        Duplicates are recognised per order: each order (live, or among the last closed ones)
        keeps the ids of its fills. A fill for an order forgotten long ago is stamped before
        the latest snapshot, whose position already holds it.
        """
        c = self.counters
        fid = fill.fill_id
        cloid = fill.cloid
        order = self.orders.get(cloid)
        closed = self._closed.get(cloid) if order is None else None
        known = order if order is not None else closed
        if known is not None and fid in known.fill_ids:
            c.duplicate_fills += 1
            return False
        sizer = self.sizer
        lots = sizer.nearest_lots(fill.size) if sizer.size_ok(fill.size) else 0
        if lots <= 0 or not sizer.price_ok(fill.price):
            c.bad_fills += 1  # unusable numbers: the position is reconciled from the venue
            self.needs_reconcile = True
            return False
        ets = fill.exchange_ts_ns
        if ets is not None and ets <= self._snapshot_ts:
            # Already in the snapshot we adopted: its position and the orders' fill counts
            # include it. Counting it again would double it.
            c.fills_in_snapshot += 1
            side = known.side if known is not None else fill.side
            self._unexplained -= lots if side is _BUY else -lots
            if known is not None:
                known.fill_ids.add(fid)
            return False
        if order is not None:
            side = order.side
            order.fill_ids.add(fid)
            order.filled_lots += lots
            order.fill_value += fill.price * lots * self.sizer.lot_size
            order.last_fill_ts_ns = fill.ts_ns
            self._after_fill(order)
        elif closed is not None:
            c.late_fills += 1
            side = closed.side
            closed.fill_ids.add(fid)
            closed.filled_lots += lots
            final = closed.final_lots if closed.final_lots is not None else closed.size_lots
            if closed.filled_lots > final:
                c.overfills += 1
                self.needs_reconcile = True
        else:
            # Not ours as far as we know (an earlier process's order, or one forgotten):
            # book it as the venue says and let a snapshot confirm. Remember its id.
            c.unknown_fills += 1
            self.needs_reconcile = True
            side = fill.side
            self._remember_closed(
                TrackedOrder(
                    cloid=cloid,
                    side=side,
                    price_ticks=0,
                    size_lots=lots,
                    state=_SETTLING,
                    created_ts_ns=fill.ts_ns,
                    filled_lots=lots,
                    fill_ids={fid},
                )
            )
        signed = lots if side is _BUY else -lots
        if ets is not None:
            self._fill_log.append((ets, signed, cloid))
            if len(self._fill_log) > _FILL_LOG:
                self._fill_log.popleft()
        notional = fill.price * lots * self.sizer.lot_size
        self.position_lots += signed
        self.cash_usd += -notional if side is _BUY else notional
        self.cash_usd -= fill.fee
        self.fees_usd += fill.fee
        self.maker_volume_usd += notional
        c.fills += 1
        self._touch(side)
        return True

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
                self._close(order)
        elif filled >= order.size_lots:
            if filled > order.size_lots:
                self.counters.overfills += 1
                self.needs_reconcile = True
            self._close(order)

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
            if new is not None and new.state is _PENDING_NEW:
                new.state = _OPEN
                self._touch(new.side)
            if old is not None:
                self._settle(old, ack.filled_size, ack.ts_ns)
            return False
        if new is not None:
            self._close(new)  # the new leg was never placed
        if old is not None:
            if status == _REJECTED:
                # Nothing changed at the venue: it refused us (rate limit, margin, ...).
                c.refusals += 1
                self._refused(old.side, ack.ts_ns)
                if old.state is _PENDING_CANCEL:
                    old.state = _OPEN
                    self._touch(old.side)
                return True
            else:  # CANCELED (old leg cancelled, new one refused) or NOT_FOUND
                if status == _NOT_FOUND:
                    c.race_rejections += 1
                self._settle(old, ack.filled_size, ack.ts_ns)
        return False

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
            if order.state is _PENDING_NEW:
                order.state = _OPEN
                self._touch(order.side)
            self._refusals[order.side] = 0
            return False
        if status == _CANCELED:
            self._settle(order, ack.filled_size, ack.ts_ns)  # it rested, then was cancelled
            return False
        # Refused: the order never rested, so it can never fill.
        self._refused(order.side, ack.ts_ns)
        if order.filled_lots > 0:
            self.needs_reconcile = True  # fills for an order the venue says never rested
            self._settle(order, None, ack.ts_ns)
        else:
            self._close(order)
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
            self._settle(order, ack.filled_size, ack.ts_ns)
            return False
        if status == _NOT_FOUND:
            # Gone already (filled, or cancelled before): its fills may still be on the way.
            self.counters.race_rejections += 1
            self._settle(order, ack.filled_size, ack.ts_ns)
            return False
        # Refused (or a status that makes no sense for a cancel): it may still rest.
        # Keep it live so the next plan cancels it again; a snapshot settles doubt.
        if order.state is _PENDING_CANCEL:
            order.state = _OPEN
            self._touch(order.side)
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
            if order.state is _SETTLING:
                if order.final_lots is None and ack.filled_size is not None:
                    order.final_lots = self.sizer.nearest_lots(ack.filled_size)
                    self._touch(order.side)
                    self._after_fill(order)
            else:
                self._settle(order, ack.filled_size, ack.ts_ns)
        elif status == _ACCEPTED:
            if order.state is _PENDING_NEW:
                order.state = _OPEN
                self._touch(order.side)
        else:
            c.late_acks += 1
        return False

    def _settle(self, order: TrackedOrder, filled_size: float | None, ts_ns: int) -> None:
        """The order is off the book: wait for the fills the venue says it made."""
        order.state = _SETTLING
        order.since_ns = ts_ns
        if filled_size is not None and math.isfinite(filled_size) and filled_size >= 0.0:
            order.final_lots = self.sizer.nearest_lots(filled_size)
        self._touch(order.side)
        self._after_fill(order)

    def _close(self, order: TrackedOrder) -> None:
        if self.orders.pop(order.cloid, None) is not None:
            self._touch(order.side)
        self._remember_closed(order)

    def _remember_closed(self, order: TrackedOrder) -> None:
        self._closed[order.cloid] = order
        if len(self._closed) > _RECENT:
            self._closed.popitem(last=False)

    # ----- reconciliation -----------------------------------------------------------------

    def request_snapshot(self, ts_ns: int) -> RequestSnapshot:
        """A request for the venue's snapshot; it covers every request sent before it."""
        rid = self._new_request(-1, "", "", ts_ns, track=False)
        self._snapshot_request = rid
        self._snapshot_sent_ns = ts_ns
        return RequestSnapshot(request_id=rid)

    def snapshot_in_flight(self, ts_ns: int, timeout_ns: int) -> bool:
        return self._snapshot_request is not None and ts_ns - self._snapshot_sent_ns < timeout_ns

    def on_snapshot(self, snap: VenueSnapshot, *, mark: float = math.nan) -> list[Action]:
        """Adopt the venue's truth; returns cancels for orders at the venue we do not know.

        A position the venue reports beyond our fills is booked at ``snap.mark_price`` (or
        ``mark``, the engine's mid), so PnL starts from it rather than counting it as free.
        """
        c = self.counters
        if snap.exchange_ts_ns <= self._snapshot_ts:
            c.stale_snapshots += 1
            return []
        if not self.sizer.position_ok(snap.position):
            c.bad_snapshots += 1  # unusable: change nothing, ask again
            self.needs_reconcile = True
            return []
        c.snapshots += 1
        rid = snap.request_id
        if (rid is not None and rid == self._snapshot_request) or rid is None:
            self._snapshot_request = None
        sizer = self.sizer
        ts = snap.ts_ns

        # Requests sent before the snapshot was asked for were handled by the venue before it
        # took the snapshot; an answer that has not arrived by now was lost.
        if rid is not None:
            for r in [r for r in self._requests if r < rid]:
                del self._requests[r]
                c.lost_requests += 1
        waiting = {r.cloid for r in self._requests.values()} | {
            r.new_cloid for r in self._requests.values()
        }

        # Fills we have had that the snapshot does not include (stamped after it).
        after = 0
        after_lots: dict[str, int] = {}
        cutoff = snap.exchange_ts_ns
        for ets, signed, cloid in self._fill_log:
            if ets > cutoff:
                after += signed
                after_lots[cloid] = after_lots.get(cloid, 0) + abs(signed)
        while self._fill_log and self._fill_log[0][0] <= cutoff:
            self._fill_log.popleft()

        venue = {o.cloid: o for o in snap.orders}
        for order in list(self.orders.values()):
            covered = order.place_request < rid if rid is not None else order.cloid not in waiting
            if not covered:
                continue
            held = venue.pop(order.cloid, None)
            if held is None:
                if order.state is _SETTLING:
                    c.settled_by_snapshot += 1
                else:
                    c.orders_closed_by_snapshot += 1
                self._close(order)
                continue
            filled = sizer.nearest_lots(held.filled_size)
            order.size_lots = filled + sizer.nearest_lots(held.size)
            order.filled_lots = filled + after_lots.get(order.cloid, 0)
            order.final_lots = None
            if order.state is _SETTLING:
                c.orders_restored_by_snapshot += 1
                order.state = _OPEN
            elif order.state is not _OPEN and order.cloid not in waiting:
                order.state = _OPEN  # the answer was lost; the venue holds it
            self._touch(order.side)
            if order.filled_lots >= order.size_lots:
                self._close(order)

        # The venue's position at the snapshot plus the fills we have had since.
        self._snapshot_ts = cutoff
        position = sizer.nearest_lots(snap.position) + after
        if self._unexplained:
            c.position_corrections += 1
        diff = position - self.position_lots
        self._unexplained = diff
        if diff:
            price = snap.mark_price if snap.mark_price is not None else mark
            if price > 0.0 and math.isfinite(price):
                self.cash_usd -= diff * sizer.lot_size * price
            self.position_lots = position
            self._buy_version += 1
            self._sell_version += 1
        self.needs_reconcile = False

        # Orders at the venue that we do not know: cancel them before they trade.
        actions: list[Action] = []
        for held in venue.values():
            if held.cloid in self.orders:
                continue  # placed after the snapshot was asked for: its answer is on the way
            c.orphans_cancelled += 1
            order = TrackedOrder(
                cloid=held.cloid,
                side=held.side,
                price_ticks=sizer.nearest_ticks(held.price),
                size_lots=sizer.nearest_lots(held.filled_size) + sizer.nearest_lots(held.size),
                filled_lots=sizer.nearest_lots(held.filled_size),
                state=_PENDING_CANCEL,
                created_ts_ns=ts,
                since_ns=ts,
            )
            forgotten = self._closed.pop(held.cloid, None)
            if forgotten is not None:
                order.fill_ids = forgotten.fill_ids
            self.orders[held.cloid] = order
            self._touch(held.side)
            rid_cancel = self._new_request(_CANCEL, held.cloid, "", ts)
            actions.append(Cancel(cloid=held.cloid, request_id=rid_cancel))
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
        order.state = _PENDING_CANCEL
        order.since_ns = ts_ns
        rid = self._new_request(_CANCEL, order.cloid, "", ts_ns)
        return Cancel(cloid=order.cloid, request_id=rid)

    def cancel_all(self, ts_ns: int = 0) -> list[Action]:
        """Cancel every live order (those already cancelling or settling are left alone; a
        cancel the venue refused is retried once its side's backoff is over)."""
        actions: list[Action] = [
            self._cancel(o, ts_ns)
            for o in self.orders.values()
            if o.live and (o.cancel_refused == 0 or ts_ns >= self._backoff_until[o.side])
        ]
        if actions:
            self._buy_version += 1
            self._sell_version += 1
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
    ) -> list[Action]:
        """Actions that move our orders towards ``bids``/``asks`` (``(ticks, lots)``, best first).

        ``max_lots`` is the position limit ``Q`` in lots. With ``reduce_only`` only the side that
        shrinks ``|q|`` may rest, and never more than ``|q|``, so fills cannot flip the position.
        ``budget`` caps the number of actions (the request rate limit): cancels of both sides
        go first, then modifies, then places; whatever ran out is planned again next time.
        """
        q = self.position_lots
        if reduce_only:
            bid_room = -q if q < 0 else 0
            ask_room = q if q > 0 else 0
        else:
            bid_room = max_lots - q
            ask_room = max_lots + q
        bid_key = (self._buy_version, bids, bid_room)
        ask_key = (self._sell_version, asks, ask_room)
        plans = []
        if bid_key != self._last_bids:
            plans.append(self._decide(_BUY, bids, bid_room))
        if ask_key != self._last_asks:
            plans.append(self._decide(_SELL, asks, ask_room))
        actions: list[Action] = []
        done = {_BUY: True, _SELL: True}
        for i, (side, cancels, modifies, places) in enumerate(plans):
            if ts_ns < self._backoff_until[side]:
                # Refused lately: nothing new on this side until the wait is over, and a
                # cancel the venue refused is retried only then; the rest is planned again.
                kept = [o for o in cancels if o.cancel_refused == 0]
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

    def _send_within(
        self,
        plans: list[_SidePlan],
        budget: int,
        ts_ns: int,
        actions: list[Action],
        done: dict[Side, bool],
    ) -> None:
        """The budget is short: cancels of both sides first, then modifies, then places,
        alternating between the sides level by level so neither starves the other."""
        left = budget
        for side, o in _alternate([(p[0], p[1]) for p in plans]):
            if left <= 0:
                done[side] = False
                continue
            actions.append(self._cancel(o, ts_ns))
            left -= 1
        for side, (o, ticks, size) in _alternate([(p[0], p[2]) for p in plans]):
            if left <= 0 or not done[side]:
                done[side] = False
                continue
            actions.append(self._modify(o, ticks, size, ts_ns))
            left -= 1
        for side, (ticks, size) in _alternate([(p[0], p[3]) for p in plans]):
            if left <= 0 or not done[side]:
                done[side] = False
                continue
            actions.append(self._place(side, ticks, size, ts_ns))
            left -= 1

    def _modify(self, o: TrackedOrder, ticks: int, size: int, ts_ns: int) -> Modify:
        """Replace ``o`` by a fresh order (a new cloid, so late fills of ``o`` stay with ``o``)."""
        new_cloid = self._new_cloid()
        rid = self._new_request(_MODIFY, o.cloid, new_cloid, ts_ns)
        o.state = _PENDING_CANCEL
        o.since_ns = ts_ns
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
            state=_PENDING_NEW,
            created_ts_ns=ts,
            place_request=rid,
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

    def _decide(self, side: Side, wanted: tuple[tuple[int, int], ...], room: int) -> _SidePlan:
        """``(side, cancels, modifies, places)`` that bring this side to ``wanted`` in ``room``."""
        cfg = self.config
        tol_ticks = cfg.price_tolerance_ticks
        tol_size = cfg.size_tolerance
        bid_exposure, ask_exposure, _, _ = self._exposures()
        exposure = bid_exposure if side is _BUY else ask_exposure
        # Live orders are placed or resting: all they could still fill is their remainder.
        live = [
            (o, o.price_ticks, o.size_lots - o.filled_lots)
            for o in self.orders.values()
            if o.side is side and o.live
        ]

        # Keep live orders that already match a wanted level (queue priority is money).
        unmatched: list[tuple[int, int]] = []
        kept: list[tuple[TrackedOrder, int, int]] = []
        for ticks, lots in wanted:
            match = None
            for entry in live:
                if abs(entry[1] - ticks) <= tol_ticks and abs(entry[2] - lots) <= tol_size * lots:
                    match = entry
                    break
            if match is None:
                unmatched.append((ticks, lots))
            else:
                live.remove(match)
                kept.append(match)

        # The limit may have shrunk under what we keep: cancel kept orders from the outside in
        # until, once every cancel is answered, the side fits in its room again.
        kept_exposure = sum(entry[2] for entry in kept if entry[2] > 0)
        while kept and kept_exposure > (room if room > 0 else 0):
            entry = kept.pop()
            if entry[2] > 0:
                kept_exposure -= entry[2]
            live.append(entry)

        # Cancels and modifies free nothing until the venue answers (and the fills it reports
        # have arrived), so what may be added is the room less everything counted now.
        cap_left = room - exposure
        sizer = self.sizer
        cancels = [entry[0] for entry in live]
        reusable = [o for o in cancels if o.state is _OPEN] if cfg.use_modify else []
        modifies: list[tuple[TrackedOrder, int, int]] = []
        places: list[tuple[int, int]] = []
        for ticks, lots in unmatched:
            size = lots if lots <= cap_left else cap_left
            if size < sizer.min_lots(ticks):
                continue
            cap_left -= size
            if reusable:
                o = reusable.pop(0)
                cancels.remove(o)
                modifies.append((o, ticks, size))
            else:
                places.append((ticks, size))
        return side, cancels, modifies, places
