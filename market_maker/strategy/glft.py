"""Gueant-Lehalle-Fernandez-Tapia (GLFT) closed-form quotes, in ticks.

Fill intensity at depth delta (ticks): ``A * exp(-k * delta)``. With order size ``D`` and
inventory ``q`` in units of ``D``::

    c1 = ln(1 + xi*D/k) / (xi*D)                       (xi = 0: 1/k)
    c2 = sqrt(gamma / (2*A*D*k) * (1 + xi*D/k) ** (k/(xi*D) + 1))   (xi = 0: the power is e)
    half_spread = c1 + D/2 * sigma * c2,   skew = sigma * c2
    bid_depth = half_spread + skew*q,      ask_depth = half_spread - skew*q

``sigma`` in ticks per sqrt second, ``A`` per second, ``k`` per tick, ``gamma``/``xi`` per
(tick * D). See ``reference/glft.md``.
"""

from __future__ import annotations

import math

import msgspec

from market_maker.config import StrategyConfig
from market_maker.model import Quote, QuoteSet
from market_maker.risk.kill_switch import TradingState
from market_maker.strategy.capacity import side_capacity
from market_maker.strategy.params import MarketParams

__all__ = ["GlftDepths", "GlftStrategy", "glft_coefficients", "glft_depths"]

_E = math.e


class GlftDepths(msgspec.Struct, frozen=True):
    """Depths from the mid in ticks."""

    half_spread: float
    skew: float
    bid_depth: float
    ask_depth: float


def glft_coefficients(
    *, gamma: float, xi: float, delta: float, a: float, k: float
) -> tuple[float, float]:
    """``(c1, c2)`` of the GLFT closed form; ``xi = 0`` is the analytic limit."""
    xd = xi * delta
    if xd == 0.0:
        return 1.0 / k, math.sqrt(gamma * _E / (2.0 * a * delta * k))
    c1 = math.log1p(xd / k) / xd
    c2 = math.sqrt(gamma / (2.0 * a * delta * k) * (1.0 + xd / k) ** (k / xd + 1.0))
    return c1, c2


def glft_depths(
    *, gamma: float, xi: float, delta: float, a: float, k: float, sigma: float, q: float
) -> GlftDepths:
    """Half spread, skew and the two depths (ticks) for inventory ``q`` (units of ``delta``)."""
    c1, c2 = glft_coefficients(gamma=gamma, xi=xi, delta=delta, a=a, k=k)
    half_spread = c1 + 0.5 * delta * sigma * c2
    skew = sigma * c2
    return GlftDepths(
        half_spread=half_spread,
        skew=skew,
        bid_depth=half_spread + skew * q,
        ask_depth=half_spread - skew * q,
    )


class GlftStrategy:
    """The GLFT quote a side (and backups behind it), with the adjustments a live book needs.

    - half spread and skew multipliers from config;
    - a fee floor: neither quote closer to the mid than ``min_half_spread_bps``;
    - cascade widening: the half spread grows with the Hawkes ratio above 1;
    - gamma scaled up as inventory utilisation ``|q| / Q`` rises;
    - ``backup_levels`` orders behind the quote, each ``backup_ratio`` deeper, so a fill does
      not leave the side empty while its replacement travels (none while REDUCING);
    - sizes capped by ``side_capacity`` (position, limit and pending exposure), the quote first.
    """

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config

    def depths(self, params: MarketParams) -> GlftDepths:
        """Adjusted GLFT depths in ticks for this cycle."""
        cfg = self.config
        # Inventory is counted in orders (q = position / order_size), so in those units the
        # order size D is 1 and gamma is per (tick * order).
        util = params.utilisation()
        util = util if util < 1.0 else 1.0
        gamma = cfg.gamma * (1.0 + cfg.gamma_utilisation_scale * util * util)
        xi = gamma if cfg.xi is None else cfg.xi
        c1, c2 = glft_coefficients(gamma=gamma, xi=xi, delta=1.0, a=params.a, k=params.k)
        skew = params.sigma_ticks * c2 * cfg.skew_multiplier
        half = (c1 + 0.5 * params.sigma_ticks * c2) * cfg.spread_multiplier
        ratio = params.hawkes_ratio
        if ratio > 1.0:
            half *= 1.0 + cfg.cascade_widening * (ratio - 1.0)
        floor_bps = cfg.min_half_spread_bps
        if params.floor_bps > floor_bps:
            floor_bps = params.floor_bps
        bps_ticks = 1e-4 * params.mid / params.tick_size
        floor = floor_bps * bps_ticks
        q = params.position / params.order_size
        bid = half + skew * q
        ask = half - skew * q
        bid = bid if bid > floor else floor
        ask = ask if ask > floor else floor
        toxic = params.toxic
        if toxic:
            # The side the one-sided flow runs towards steps back.
            out = params.toxic_widen_bps * bps_ticks
            if toxic > 0:
                ask += out
            else:
                bid += out
        return GlftDepths(
            half_spread=half,
            skew=skew,
            bid_depth=bid,
            ask_depth=ask,
        )

    def quote(self, params: MarketParams) -> QuoteSet:
        d = self.depths(params)
        bid_cap, ask_cap = side_capacity(
            position=params.position,
            max_position=params.effective_max_position(),
            pending_bids=params.pending_bids,
            pending_asks=params.pending_asks,
        )
        size = params.order_size
        tick = params.tick_size
        mid = params.fair
        # While REDUCING the quote alone rests: the room a backup would take is what an
        # escalation's immediate-or-cancel order needs.
        backups = 0 if params.trading_state is TradingState.REDUCING else self.config.backup_levels
        ratio = self.config.backup_ratio
        return QuoteSet(
            _side(mid, -tick, d.bid_depth, size, bid_cap, backups, ratio),
            _side(mid, tick, d.ask_depth, size, ask_cap, backups, ratio),
        )


def _side(
    mid: float, step: float, depth: float, size: float, cap: float, backups: int, ratio: float
) -> tuple[Quote, ...]:
    """One side's quotes, best first: the GLFT quote, then its backups (each at least a tick
    deeper), while the side's capacity lasts."""
    quotes: list[Quote] = []
    for _ in range(1 + backups):
        if cap <= 0.0:
            break
        take = size if size < cap else cap
        quotes.append(Quote(mid + depth * step, take))
        cap -= take
        deeper = depth * ratio
        depth = deeper if deeper > depth + 1.0 else depth + 1.0
    return tuple(quotes)
