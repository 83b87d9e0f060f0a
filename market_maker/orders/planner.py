"""The order plan for one side, as a pure function: wanted levels and live orders in, the fewest
cancels, modifies and places out, within the room the position limit leaves.

Nothing here changes an order: the manager applies what comes out (``manager.py``).
"""

from __future__ import annotations

from typing import TypeVar

from market_maker.config import OrdersConfig
from market_maker.model import Side
from market_maker.orders.state import OrderState, TrackedOrder
from market_maker.risk.sizing import PositionSizer

__all__ = ["SidePlan", "alternate", "clip_to_room", "decide"]

_RESTING = OrderState.RESTING
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


def decide(
    side: Side,
    wanted: tuple[tuple[int, int], ...],
    room: int,
    orders: list[TrackedOrder],
    exposure: int,
    config: OrdersConfig,
    sizer: PositionSizer,
) -> SidePlan:
    """``(side, cancels, modifies, places)`` that bring this side's live ``orders`` to
    ``wanted`` within ``room`` lots, given the side's whole counted ``exposure``."""
    tol_ticks = config.price_tolerance_ticks
    tol_size = config.size_tolerance
    # Live orders are placed or resting: all they could still fill is their remainder.
    live = [(o, o.price_ticks, o.size_lots - o.filled_lots) for o in orders]

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
    cancels = [entry[0] for entry in live]
    reusable = [o for o in cancels if o.state is _RESTING and o.acked] if config.use_modify else []
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
