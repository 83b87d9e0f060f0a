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

from market_maker.config import LadderConfig, StrategyConfig
from market_maker.model import Quote, QuoteSet
from market_maker.strategy.capacity import side_capacity
from market_maker.strategy.glft import GlftStrategy
from market_maker.strategy.params import MarketParams

__all__ = ["LadderStrategy", "grid_interval", "ladder_ticks"]


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
    out: list[int] = []
    depth = depth0 if depth0 > 0.0 else 0.0
    for i in range(levels):
        d = depth * ratio**i if ratio is not None else depth + i * interval
        if bid:
            p = math.floor((mid_ticks - d) / interval) * interval
            if out and p >= out[-1]:
                p = out[-1] - interval
        else:
            p = math.ceil((mid_ticks + d) / interval) * interval
            if out and p <= out[-1]:
                p = out[-1] + interval
        out.append(p)
    return out


class LadderStrategy:
    """Multi-level quotes around the GLFT depths."""

    def __init__(self, strategy: StrategyConfig, ladder: LadderConfig) -> None:
        self.glft = GlftStrategy(strategy)
        self.config = ladder

    def quote(self, params: MarketParams) -> QuoteSet:
        cfg = self.config
        d = self.glft.depths(params)
        tick = params.tick_size
        inner = d.bid_depth if d.bid_depth < d.ask_depth else d.ask_depth
        interval = cfg.interval_ticks or grid_interval(inner)
        ratio = cfg.ratio if cfg.spacing == "geometric" else None
        mid_ticks = params.mid / tick
        limit = params.effective_max_position()
        bid_cap, ask_cap = side_capacity(
            position=params.position,
            max_position=limit,
            pending_bids=params.pending_bids,
            pending_asks=params.pending_asks,
        )
        util = params.utilisation()
        keep = 1.0 - util if util < 1.0 else 0.0
        q = params.position
        bid_total = cfg.target_liquidity * (keep if q > 0.0 else 1.0)
        ask_total = cfg.target_liquidity * (keep if q < 0.0 else 1.0)
        bid_total = bid_total if bid_total < bid_cap else bid_cap
        ask_total = ask_total if ask_total < ask_cap else ask_cap
        bids = self._side(params, mid_ticks, d.bid_depth, interval, ratio, bid_total, bid=True)
        asks = self._side(params, mid_ticks, d.ask_depth, interval, ratio, ask_total, bid=False)
        return QuoteSet(bids, asks)

    def _side(
        self,
        params: MarketParams,
        mid_ticks: float,
        depth0: float,
        interval: int,
        ratio: float | None,
        total: float,
        *,
        bid: bool,
    ) -> tuple[Quote, ...]:
        if not total > 0.0:
            return ()
        smallest = params.lot_size
        levels = min(self.config.levels, math.floor(total / smallest + 1e-9))
        if levels <= 0:
            return ()
        tick = params.tick_size
        size = total / levels
        prices = ladder_ticks(
            mid_ticks=mid_ticks,
            depth0=depth0,
            levels=levels,
            interval=interval,
            ratio=ratio,
            bid=bid,
        )
        return tuple(Quote(p * tick, size) for p in prices if p > 0)
