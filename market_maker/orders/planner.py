"""The order plan for one side, as a pure function: wanted levels and live orders in, the fewest
cancels, modifies and places out, within the room the position limit leaves.

A live order is kept for a wanted level when its remaining size is within ``size_tolerance``
and its price within ``keep_tolerance_ticks`` of the level: moving it costs a request and its
place in the queue, which is worth keeping unless the move is large. The tolerance is
``price_tolerance_ticks``. An order not ahead of the side's best wanted price (a bid not above
it, an ask not below it) also gets ``low_budget_tolerance_bps`` in proportion to the share of
the request burst already spent (so the budget stretches as it runs low), and
``queue_tolerance_bps`` in proportion to how long it has rested at its price, up to
``queue_value_s`` (its age is what the engine knows of its place: an order that has rested
longer has had the size ahead of it traded or cancelled away). Any order gets
``depth_tolerance_fraction`` of the level's distance behind the side's best wanted level (a
deep ladder level rarely trades, so moving it is rarely worth a request). Exact matches are
kept first, then each remaining level takes the nearest order within its tolerance.

Nothing here changes an order: the manager applies what comes out (``manager.py``).
"""

from __future__ import annotations

from typing import TypeVar

from market_maker.config import OrdersConfig
from market_maker.model import Side
from market_maker.orders.state import OrderState, TrackedOrder
from market_maker.risk.sizing import PositionSizer

__all__ = ["SidePlan", "alternate", "clip_to_room", "decide", "keep_tolerance_ticks"]

_RESTING = OrderState.RESTING
_PLACING = OrderState.PLACING
_T = TypeVar("_T")

SidePlan = tuple[
    Side, list[TrackedOrder], list[tuple[TrackedOrder, int, int]], list[tuple[int, int]]
]
"""``(side, cancels, modifies, places)`` for one side."""


def alternate(lists: list[tuple[Side, list[_T]]]) -> list[tuple[Side, _T]]:
    """``[(side, item)]`` taking one item from each side in turn."""
    out: list[tuple[Side, _T]] = []
    longest = max((len(items) for _, items in lists), default=0)
    for i in range(longest):
        for side, items in lists:
            if i < len(items):
                out.append((side, items[i]))
    return out


def clip_to_room(
    wanted: tuple[tuple[int, int], ...], room: int, sizer: PositionSizer
) -> tuple[tuple[int, int], ...]:
    """``wanted`` levels (best first) cut so their lots add up to at most ``room``; a level
    left under the venue's minimum is dropped. What is wanted is then what can rest, so a
    resting order cut to the room matches it next cycle instead of being replaced."""
    if room <= 0:
        return ()
    left = room
    out: list[tuple[int, int]] = []
    for ticks, lots in wanted:
        if lots > left:
            lots = left
        if lots < sizer.min_lots(ticks):
            continue
        out.append((ticks, lots))
        left -= lots
        if left <= 0:
            break
    return tuple(out)


def keep_tolerance_ticks(
    config: OrdersConfig, *, scarcity: float, rested_s: float, price_ticks: int
) -> int:
    """Ticks a resting order behind its wanted price may be from it and still be kept.

    ``scarcity`` is the share of the request burst spent (0: full, 1: empty); ``rested_s`` how
    long the order has rested at its price (0 for one not yet acknowledged); ``price_ticks``
    the wanted price, which turns the basis-point stretches into ticks (a tick is 0.01 bps of
    BTC and 1 bp of DOGE)."""
    bps = config.low_budget_tolerance_bps * min(1.0, max(0.0, scarcity))
    full_s = config.queue_value_s
    if rested_s > 0.0 and config.queue_tolerance_bps:
        bps += config.queue_tolerance_bps * (min(1.0, rested_s / full_s) if full_s else 1.0)
    return config.price_tolerance_ticks + int(bps * 1e-4 * price_ticks + 1e-9)


def decide(
    side: Side,
    wanted: tuple[tuple[int, int], ...],
    room: int,
    orders: list[TrackedOrder],
    exposure: int,
    config: OrdersConfig,
    sizer: PositionSizer,
    *,
    now_ns: int = 0,
    scarcity: float = 0.0,
    touch: tuple[int, int] = (0, 0),
) -> SidePlan:
    """``(side, cancels, modifies, places)`` that bring this side's live ``orders`` to
    ``wanted`` within ``room`` lots, given the side's whole counted ``exposure``, at
    ``now_ns`` with ``scarcity`` of the request burst spent (see ``keep_tolerance_ticks``).

    ``touch`` is the market's best bid and ask in ticks (0: unknown). A live order the touch
    has crossed (a bid at or above the best ask, an ask at or below the best bid), or one a
    print went through in the last ``settle_timeout_s`` (``traded_through_ns``), cannot be
    resting: it has traded, and its fill is on its way. It is neither kept, moved nor
    cancelled, so its level is placed afresh at once; its remainder stays counted in
    ``exposure`` until the fill or the venue says otherwise, so the room still bounds it."""
    tol_size = config.size_tolerance
    # Live orders are placed or resting: all they could still fill is their remainder.
    bb, ba = touch
    since = now_ns - int(config.settle_timeout_s * 1e9)
    live = []
    for o in orders:
        if (o.traded_through_ns >= 0 and o.traded_through_ns > since) or (
            (ba and o.price_ticks >= ba) if side is Side.BUY else (bb and o.price_ticks <= bb)
        ):
            continue
        live.append((o, o.price_ticks, o.size_lots - o.filled_lots))

    # Keep live orders that already match a wanted level (queue priority is money): exact
    # prices first, then the nearest order within its tolerance.
    matched: list[tuple[TrackedOrder, int, int] | None] = []
    for ticks, lots in wanted:
        match = None
        for entry in live:
            if entry[1] == ticks and abs(entry[2] - lots) <= tol_size * lots:
                match = entry
                break
        if match is not None:
            live.remove(match)
        matched.append(match)
    if live and None in matched:
        rested = {
            id(e[0]): (now_ns - e[0].created_ts_ns) * 1e-9
            if e[0].state is _RESTING and e[0].acked
            else 0.0
            for e in live
        }
        top = wanted[0][0]
        depth_share = config.depth_tolerance_fraction
        ahead_ticks = config.price_tolerance_ticks
        buy = side is Side.BUY
        for i, (ticks, lots) in enumerate(wanted):
            if matched[i] is not None:
                continue
            # A level behind the side's best is less likely to trade: moving it is worth less.
            behind = int(depth_share * abs(ticks - top) + 1e-9)
            best = None
            best_gap = 0
            for entry in live:
                gap = abs(entry[1] - ticks)
                if (entry[1] > top) is buy and entry[1] != top:
                    # Ahead of the side's best wanted price: only the plain tolerance (a stale
                    # aggressive quote is what an informed taker trades against; an order
                    # within the ladder's span is not).
                    tol = ahead_ticks
                else:
                    tol = keep_tolerance_ticks(
                        config, scarcity=scarcity, rested_s=rested[id(entry[0])], price_ticks=ticks
                    )
                if (
                    gap <= tol + behind
                    and abs(entry[2] - lots) <= tol_size * lots
                    and (best is None or gap < best_gap)
                ):
                    best, best_gap = entry, gap
            if best is not None:
                live.remove(best)
                matched[i] = best
    unmatched: list[tuple[int, int]] = []
    kept: list[tuple[TrackedOrder, int, int]] = []
    for level, match in zip(wanted, matched, strict=True):
        if match is None:
            unmatched.append(level)
        else:
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
    cancels = [entry[0] for entry in live]
    reusable: list[TrackedOrder] = []
    answering: list[tuple[TrackedOrder, int]] = []
    if config.use_modify:
        reusable = [o for o in cancels if o.state is _RESTING and o.acked]
        # An order whose place is unanswered cannot be modified yet: cancelling it and placing
        # anew costs two requests, waiting for its answer (due within the order latency) and
        # then moving it one. It waits while it fits in the room, up to the request expiry.
        expiry_ns = int(config.request_expiry_s * 1e9)
        answering = [
            (entry[0], entry[2])
            for entry in live
            if entry[0].state is _PLACING and now_ns - entry[0].created_ts_ns < expiry_ns
        ]
    spare = (room if room > 0 else 0) - kept_exposure
    modifies: list[tuple[TrackedOrder, int, int]] = []
    places: list[tuple[int, int]] = []
    for ticks, lots in unmatched:
        if not reusable and answering and answering[0][1] <= spare:
            waiting, left = answering.pop(0)
            spare -= left
            cancels.remove(waiting)
            continue
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
