"""Order manager: our live orders, their exposure, and the fewest actions to reach wanted quotes.

Every order is tracked by client order id (cloid) in integer ticks and lots. Pending exposure is
everything that could still fill: an order being placed, resting, being cancelled (until the
cancel is acknowledged) or being modified. A modify in flight counts its old remaining size *plus*
the new size: the old order can fill right up to the moment the modify lands, after which the
new size rests in full (Hyperliquid's modify replaces the order with a fresh one of the new size),
so "the larger of the two" would let a race overfill. ``plan`` never
places or enlarges an order beyond ``Q - q - pending`` on the bid side (``Q + q - pending`` on the
ask side), so no sequence of fills can take the position past the limit. When capacity is tight
it cancels first and places the replacement once the cancel is acknowledged.

Fills are idempotent by ``fill_id``. A fill or ack for an unknown cloid, or a duplicate fill, is
counted and flags reconciliation; it never raises. The position follows every fill the venue
reports, known order or not: the venue's word is the truth about our inventory.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from enum import IntEnum

import msgspec

from market_maker.config import OrdersConfig
from market_maker.model import AckStatus, Action, Cancel, Fill, Modify, OrderAck, Place, Side
from market_maker.risk.sizing import PositionSizer

__all__ = ["OrderManager", "OrderState", "TrackedOrder"]

# Enum members as module constants: attribute access on an Enum class is slow in 3.11.
_BUY = Side.BUY
_SELL = Side.SELL
_ACCEPTED = AckStatus.ACCEPTED
_REJECTED = AckStatus.REJECTED
_CANCELED = AckStatus.CANCELED

_RECENT = 4096  # closed cloids and fill ids remembered for late or duplicate messages


class OrderState(IntEnum):
    PENDING_NEW = 0
    OPEN = 1
    PENDING_MODIFY = 2
    PENDING_CANCEL = 3


_PENDING_NEW = OrderState.PENDING_NEW
_OPEN = OrderState.OPEN
_PENDING_MODIFY = OrderState.PENDING_MODIFY
_PENDING_CANCEL = OrderState.PENDING_CANCEL


class TrackedOrder(msgspec.Struct, kw_only=True):
    """One of our orders as we believe it stands (mutable state, integer ticks and lots)."""

    cloid: str
    side: Side
    price_ticks: int
    size_lots: int
    state: OrderState
    created_ts_ns: int
    filled_lots: int = 0
    fill_value: float = 0.0
    last_fill_ts_ns: int | None = None
    new_price_ticks: int | None = None
    new_size_lots: int | None = None
    """Size asked for by a modify in flight (the new order's full size)."""

    @property
    def remaining_lots(self) -> int:
        return self.size_lots - self.filled_lots

    @property
    def exposure_lots(self) -> int:
        """Lots that could still fill: the remaining size, plus the new size of a modify in flight.

        Fills beyond the old remaining size (the modify has landed and the new order is trading)
        come off the new size, since ``remaining`` then goes negative.
        """
        remaining = self.size_lots - self.filled_lots
        if self.new_size_lots is not None:
            remaining += self.new_size_lots
        return remaining if remaining > 0 else 0

    @property
    def target_ticks(self) -> int:
        """The price this order is heading for (the modify's price while one is in flight)."""
        return self.price_ticks if self.new_price_ticks is None else self.new_price_ticks

    @property
    def target_lots(self) -> int:
        return self.remaining_lots if self.new_size_lots is None else self.new_size_lots

    def average_fill_price(self, lot_size: float) -> float | None:
        """Volume-weighted price of the fills so far (USD), or None before the first fill."""
        if self.filled_lots <= 0:
            return None
        return self.fill_value / (self.filled_lots * lot_size)


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
        self.fills = 0
        self.duplicate_fills = 0
        self.unknown_fills = 0
        self.bad_fills = 0
        self.late_fills = 0
        self.unknown_acks = 0
        self.late_acks = 0
        self.rejections = 0
        self.race_rejections = 0
        self.needs_reconcile = False
        self._next_id = cloid_prefix << 64
        self._closed: OrderedDict[str, Side] = OrderedDict()
        self._fill_ids: OrderedDict[str, None] = OrderedDict()
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

    def _touch(self, side: Side) -> None:
        if side is _BUY:
            self._buy_version += 1
        else:
            self._sell_version += 1

    def _exposures(self) -> tuple[int, int, int, int]:
        """``(bids, asks, cancelling bids, cancelling asks)`` in lots, cached until a change."""
        key = (self._buy_version, self._sell_version)
        if key == self._exposure_key:
            return self._exposure
        bids = asks = cbids = casks = 0
        cancelling = _PENDING_CANCEL
        for o in self.orders.values():
            lots = o.exposure_lots
            if o.side is _BUY:
                bids += lots
                if o.state is cancelling:
                    cbids += lots
            else:
                asks += lots
                if o.state is cancelling:
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

    def cancelling_exposure(self) -> tuple[float, float]:
        """``(bids, asks)`` in contracts held by orders with a cancel in flight."""
        _, _, bids, asks = self._exposures()
        return self.sizer.lots_to_size(bids), self.sizer.lots_to_size(asks)

    def worst_case_positions(self, q: float) -> tuple[float, float]:
        """``(q - pending asks, q + pending bids)``: the position range fills could reach."""
        bids, asks = self.pending_exposure()
        return q - asks, q + bids

    # ----- venue messages -----------------------------------------------------------------

    def on_fill(self, fill: Fill) -> bool:
        """Apply a fill; False for a duplicate (already applied) or an unusable one."""
        fid = fill.fill_id
        if fid in self._fill_ids:
            self.duplicate_fills += 1
            return False
        lots = self.sizer.nearest_lots(fill.size) if math.isfinite(fill.size) else 0
        if lots <= 0 or not (fill.price > 0.0 and math.isfinite(fill.price)):
            self.bad_fills += 1  # unusable numbers: the position is reconciled from the venue
            self.needs_reconcile = True
            return False
        self._fill_ids[fid] = None
        if len(self._fill_ids) > _RECENT:
            self._fill_ids.popitem(last=False)
        order = self.orders.get(fill.cloid)
        side = fill.side
        if order is not None:
            side = order.side
            order.filled_lots += lots
            order.fill_value += fill.price * lots * self.sizer.lot_size
            order.last_fill_ts_ns = fill.ts_ns
            if order.new_size_lots is None and order.filled_lots >= order.size_lots:
                self._close(order)
        elif fill.cloid in self._closed:
            self.late_fills += 1
            side = self._closed[fill.cloid]
        else:
            self.unknown_fills += 1
            self.needs_reconcile = True
        notional = fill.price * lots * self.sizer.lot_size
        self.position_lots += lots if side is _BUY else -lots
        self.cash_usd += -notional if side is _BUY else notional
        self.cash_usd -= fill.fee
        self.fees_usd += fill.fee
        self.maker_volume_usd += notional
        self.fills += 1
        self._touch(side)
        return True

    def on_ack(self, ack: OrderAck) -> bool:
        """Apply an acknowledgement; True when a new order was rejected (for the kill switch)."""
        order = self.orders.get(ack.cloid)
        if order is None:
            if ack.cloid in self._closed:
                self.late_acks += 1  # e.g. a modify refused because the order just filled
                return False
            self.unknown_acks += 1
            return ack.status is _REJECTED
        self._touch(order.side)
        status = ack.status
        if status is _CANCELED:
            self._close(order)
            return False
        if status is _ACCEPTED:
            if order.new_size_lots is not None:
                self._apply_modify(order)
            if order.state is not _PENDING_CANCEL:
                order.state = _OPEN
            return False
        # Rejected. Only a rejected new order counts towards a rejection storm: a modify or
        # cancel is refused mostly because the order has just filled or gone, which is a race,
        # not the venue refusing us.
        state = order.state
        if state is _PENDING_NEW:
            self.rejections += 1
            self._close(order)
            return True
        self.race_rejections += 1
        if state is _PENDING_MODIFY:
            order.new_price_ticks = order.new_size_lots = None
            order.state = _OPEN
            if order.remaining_lots <= 0:
                self._close(order)  # filled while the modify was in flight
        elif state is _PENDING_CANCEL:
            # The place, the modify or the cancel failed: we cannot tell which, so keep counting
            # the order (safe for exposure); the next cancel by cloid settles it either way.
            order.new_price_ticks = order.new_size_lots = None
            order.state = _OPEN
            self.needs_reconcile = True
        return False

    def _apply_modify(self, order: TrackedOrder) -> None:
        """The modify landed: the new order rests with its size, less any fills that were
        beyond the old order's remaining size (those must have hit the new order)."""
        assert order.new_price_ticks is not None and order.new_size_lots is not None
        overfill = order.size_lots - order.filled_lots
        new_remaining = order.new_size_lots + (overfill if overfill < 0 else 0)
        order.price_ticks = order.new_price_ticks
        order.size_lots = order.filled_lots + new_remaining
        order.new_price_ticks = order.new_size_lots = None
        if new_remaining <= 0:
            self._close(order)

    def _close(self, order: TrackedOrder) -> None:
        self.orders.pop(order.cloid, None)
        self._closed[order.cloid] = order.side
        if len(self._closed) > _RECENT:
            self._closed.popitem(last=False)

    # ----- planning -----------------------------------------------------------------------

    def _new_cloid(self) -> str:
        self._next_id += 1
        return f"0x{self._next_id:032x}"

    def cancel_all(self) -> list[Action]:
        """Cancel every order that is not already being cancelled."""
        actions: list[Action] = []
        for o in self.orders.values():
            if o.state is not _PENDING_CANCEL:
                o.state = _PENDING_CANCEL
                actions.append(Cancel(cloid=o.cloid))
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
    ) -> list[Action]:
        """Actions that move our orders towards ``bids``/``asks`` (``(ticks, lots)``, best first).

        ``max_lots`` is the position limit ``Q`` in lots. ``budget`` caps the number of actions
        (the request rate limit): cancels go first, then modifies, then places, and a side that
        ran out is planned again next time.
        """
        actions: list[Action] = []
        left = 1 << 30 if budget is None else budget
        q = self.position_lots
        complete = True
        bid_key = (self._buy_version, bids, max_lots - q)
        if bid_key != self._last_bids:
            sent, done = self._plan_side(_BUY, bids, max_lots - q, ts_ns, actions, left)
            left -= sent
            if sent:
                self._buy_version += 1
            self._last_bids = (self._buy_version, bids, max_lots - q) if done else ()
            complete = done
        ask_key = (self._sell_version, asks, max_lots + q)
        if ask_key != self._last_asks:
            sent, done = self._plan_side(_SELL, asks, max_lots + q, ts_ns, actions, left)
            if sent:
                self._sell_version += 1
            self._last_asks = (self._sell_version, asks, max_lots + q) if done else ()
            complete = complete and done
        self.plan_complete = complete
        return actions

    def _plan_side(
        self,
        side: Side,
        wanted: tuple[tuple[int, int], ...],
        room: int,
        ts_ns: int,
        actions: list[Action],
        budget: int,
    ) -> tuple[int, bool]:
        """Append up to ``budget`` of this side's actions; ``(how many, all of them)``."""
        cfg = self.config
        tol_ticks = cfg.price_tolerance_ticks
        tol_size = cfg.size_tolerance
        exposure = 0
        live: list[TrackedOrder] = []
        for o in self.orders.values():
            if o.side is side:
                exposure += o.exposure_lots
                if o.state is not _PENDING_CANCEL:
                    live.append(o)

        # Keep live orders that already match a wanted level (queue priority is money).
        unmatched: list[tuple[int, int]] = []
        kept: list[TrackedOrder] = []
        for ticks, lots in wanted:
            match = None
            for o in live:
                if abs(o.target_ticks - ticks) <= tol_ticks and abs(o.target_lots - lots) <= (
                    tol_size * lots
                ):
                    match = o
                    break
            if match is None:
                unmatched.append((ticks, lots))
            else:
                live.remove(match)
                kept.append(match)

        # The limit may have shrunk under what we keep: cancel kept orders from the outside in
        # until, once every cancel is acknowledged, the side fits in its room again.
        kept_exposure = sum(o.exposure_lots for o in kept)
        while kept and kept_exposure > (room if room > 0 else 0):
            o = kept.pop()
            kept_exposure -= o.exposure_lots
            live.append(o)

        # Decide everything first (cancels free no capacity until acknowledged, so the order
        # of sending does not change what fits), then send the riskiest-first within budget.
        cap_left = room - exposure
        sizer = self.sizer
        reusable = [o for o in live if o.state is _OPEN] if cfg.use_modify else []
        modifies: list[tuple[TrackedOrder, int, int]] = []
        places: list[tuple[int, int]] = []
        for ticks, lots in unmatched:
            min_lots = sizer.min_lots(ticks)
            size = lots if lots <= cap_left else cap_left
            if size < min_lots:
                continue
            cap_left -= size
            if reusable:
                # A modify adds its whole new size to the exposure until it is acknowledged.
                o = reusable.pop(0)
                live.remove(o)
                modifies.append((o, ticks, size))
            else:
                places.append((ticks, size))

        sent = 0
        for o in live:
            if sent >= budget:
                return sent, False
            o.state = _PENDING_CANCEL
            actions.append(Cancel(cloid=o.cloid))
            sent += 1
        for o, ticks, size in modifies:
            if sent >= budget:
                return sent, False
            o.state = _PENDING_MODIFY
            o.new_price_ticks = ticks
            o.new_size_lots = size
            actions.append(
                Modify(
                    cloid=o.cloid, price=sizer.ticks_to_price(ticks), size=sizer.lots_to_size(size)
                )
            )
            sent += 1
        for ticks, size in places:
            if sent >= budget:
                return sent, False
            cloid = self._new_cloid()
            self.orders[cloid] = TrackedOrder(
                cloid=cloid,
                side=side,
                price_ticks=ticks,
                size_lots=size,
                state=_PENDING_NEW,
                created_ts_ns=ts_ns,
            )
            actions.append(
                Place(
                    cloid=cloid,
                    side=side,
                    price=sizer.ticks_to_price(ticks),
                    size=sizer.lots_to_size(size),
                )
            )
            sent += 1
        return sent, True
