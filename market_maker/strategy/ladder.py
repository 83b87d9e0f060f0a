"""Ladder: N levels a side from the GLFT depth outward, snapped to a price grid.

Level ``i`` sits at ``depth0 * ratio**i`` (geometric) or ``depth0 + i * interval`` (fixed) ticks
from the mid, then is snapped outward to a grid of ``interval`` ticks, so a small mid move keeps
most prices and their queue priority. Unless configured, the interval is half the inner depth
(after the fee floor) rounded down to a 1-2-5 step: it changes rarely as sigma, A and k drift,
and a one-tick mid move re-prices a level only when it crosses a grid line.

The total size a side is ``target_liquidity``; the side that would grow |position| shrinks by
the inventory utilisation, and the result is then capped by the side's capacity (so the
inventory cut survives capping). When the total cannot fill every level with at least one lot,
the inner levels are kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from market_maker.config import LadderConfig, StrategyConfig
from market_maker.model import Quote, QuoteSet, Side
from market_maker.risk.sizing import PositionSizer
from market_maker.strategy.capacity import side_capacity
from market_maker.strategy.glft import GlftStrategy
from market_maker.strategy.params import MarketParams

__all__ = ["LadderStrategy", "grid_interval", "ladder_ticks"]

_BUY = Side.BUY
_SELL = Side.SELL
_Side = tuple[Sequence[int], float]
"""A side's prices in ticks (best first) and the size of each level, contracts."""
_NONE: _Side = ((), 0.0)


def grid_interval(depth_ticks: float) -> int:
    """Half of ``depth_ticks`` rounded down to 1, 2 or 5 times a power of ten (at least 1)."""
    half = 0.5 * depth_ticks
    if not half >= 2.0:  # also NaN
        return 1
    step = 1
    while step * 10 <= half:
        step *= 10
    for mult in (5, 2):
        if step * mult <= half:
            return step * mult
    return step


def ladder_ticks(
    *, mid_ticks: float, depth0: float, levels: int, interval: int, ratio: float | None, bid: bool
) -> list[int]:
    """Grid-snapped prices in ticks, best first, strictly moving away from the mid.

    ``ratio`` None means fixed spacing of ``interval`` ticks.
    """
    depth = depth0 if depth0 > 0.0 else 0.0
    if ratio is None:
        depths = [depth + i * interval for i in range(levels)]
    else:
        depths = [depth * ratio**i for i in range(levels)]
    return _snap(mid_ticks, depths, interval, bid)


def _snap(mid_ticks: float, depths: list[float], interval: int, bid: bool) -> list[int]:
    out: list[int] = []
    floor = math.floor
    last = 0
    if bid:
        for d in depths:
            p = floor((mid_ticks - d) / interval) * interval
            if out and p >= last:
                p = last - interval
            out.append(p)
            last = p
    else:
        for d in depths:
            p = -floor(-(mid_ticks + d) / interval) * interval
            if out and p <= last:
                p = last + interval
            out.append(p)
            last = p
    return out


class LadderStrategy:
    """Multi-level quotes around the GLFT depths."""

    def __init__(self, strategy: StrategyConfig, ladder: LadderConfig) -> None:
        self.glft = GlftStrategy(strategy)
        self.config = ladder
        self._ratio = ladder.ratio if ladder.spacing == "geometric" else None
        self._powers = [ladder.ratio**i for i in range(ladder.levels)]

    def quote(self, params: MarketParams) -> QuoteSet:
        (bid_ticks, bid_size), (ask_ticks, ask_size) = self._levels(params)
        tick = params.tick_size
        return QuoteSet(
            tuple([Quote(p * tick, bid_size) for p in bid_ticks]),
            tuple([Quote(p * tick, ask_size) for p in ask_ticks]),
        )

    def wanted(
        self, params: MarketParams, sizer: PositionSizer, best_bid: int, best_ask: int
    ) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        """Exact ``(ticks, lots)`` a side, as ``sizer.exact_quotes`` would make of ``quote``:
        the ladder's prices are whole ticks already, so no float price is made per level."""
        if sizer.tick_size != params.tick_size:  # a coarser price grid than the instrument's
            quotes = self.quote(params)
            return (
                sizer.exact_quotes(_BUY, quotes.bids, best_bid, best_ask),
                sizer.exact_quotes(_SELL, quotes.asks, best_bid, best_ask),
            )
        (bid_ticks, bid_size), (ask_ticks, ask_size) = self._levels(params)
        return (
            sizer.exact_levels(_BUY, bid_ticks, bid_size, best_bid, best_ask) if bid_ticks else (),
            sizer.exact_levels(_SELL, ask_ticks, ask_size, best_bid, best_ask) if ask_ticks else (),
        )

    def _levels(self, params: MarketParams) -> tuple[_Side, _Side]:
        """``(prices in ticks, size a level)`` for the bids and the asks."""
        cfg = self.config
        d = self.glft.depths(params)
        bid_depth = d.bid_depth
        ask_depth = d.ask_depth
        interval = cfg.interval_ticks or grid_interval(min(bid_depth, ask_depth))
        q = params.position
        limit = params.effective_max_position()
        bid_cap, ask_cap = side_capacity(
            position=q,
            max_position=limit,
            pending_bids=params.pending_bids,
            pending_asks=params.pending_asks,
        )
        util = abs(q) / limit if limit > 0.0 else (0.0 if q == 0.0 else 1.0)
        keep = 1.0 - util if util < 1.0 else 0.0
        target = params.target_liquidity
        bid_total = min(target * (keep if q > 0.0 else 1.0), bid_cap)
        ask_total = min(target * (keep if q < 0.0 else 1.0), ask_cap)
        mid_ticks = params.fair / params.tick_size
        lot = params.lot_size
        return (
            self._side(mid_ticks, bid_depth, interval, bid_total, lot, True),
            self._side(mid_ticks, ask_depth, interval, ask_total, lot, False),
        )

    def _side(
        self, mid_ticks: float, depth0: float, interval: int, total: float, lot: float, bid: bool
    ) -> _Side:
        if not total > 0.0:
            return _NONE
        levels = min(self.config.levels, math.floor(total / lot + 1e-9))
        if levels <= 0:
            return _NONE
        depth = depth0 if depth0 > 0.0 else 0.0
        if self._ratio is None:
            depths = [depth + i * interval for i in range(levels)]
        else:
            depths = [depth * m for m in self._powers[:levels]]
        prices = _snap(mid_ticks, depths, interval, bid)
        return [p for p in prices if p > 0], total / levels
