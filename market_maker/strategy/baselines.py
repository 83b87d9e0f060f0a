"""Baseline strategies for comparison: Avellaneda-Stoikov (2008) and a symmetric fixed spread."""

from __future__ import annotations

import math

from market_maker.config import StrategyConfig
from market_maker.model import Quote, QuoteSet
from market_maker.strategy.capacity import side_capacity
from market_maker.strategy.params import MarketParams

__all__ = ["AvellanedaStoikovStrategy", "SymmetricStrategy"]


def _one_quote_each_side(params: MarketParams, bid: float, ask: float, size: float) -> QuoteSet:
    bid_cap, ask_cap = side_capacity(
        position=params.position,
        max_position=params.effective_max_position(),
        pending_bids=params.pending_bids,
        pending_asks=params.pending_asks,
    )
    bid_size = size if size < bid_cap else bid_cap
    ask_size = size if size < ask_cap else ask_cap
    return QuoteSet(
        (Quote(bid, bid_size),) if bid_size > 0.0 and bid > 0.0 else (),
        (Quote(ask, ask_size),) if ask_size > 0.0 else (),
    )


class AvellanedaStoikovStrategy:
    """Reservation price ``r = s - q*gamma*sigma^2*(T-t)`` and total spread
    ``gamma*sigma^2*(T-t) + (2/gamma)*ln(1 + gamma/k)``, on a rolling horizon ``T - t`` (or a
    finite session ending at ``as_horizon_s`` with ``as_terminal``).

    Everything is in ticks (sigma per sqrt second, k per tick, gamma per tick per order size),
    the same units as GLFT, and ``q`` is in order sizes.
    """

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config

    def quote(self, params: MarketParams) -> QuoteSet:
        cfg = self.config
        gamma = cfg.gamma
        tau = cfg.as_horizon_s
        if cfg.as_terminal:
            tau = max(0.0, tau - params.ts_ns * 1e-9)
        var = params.sigma_ticks * params.sigma_ticks * tau
        q = params.position / params.order_size
        reservation = -q * gamma * var
        half = 0.5 * (gamma * var + 2.0 / gamma * math.log1p(gamma / params.k))
        half *= cfg.spread_multiplier
        floor = cfg.min_half_spread_bps * 1e-4 * params.mid / params.tick_size
        bid_depth = max(half - reservation, floor)
        ask_depth = max(half + reservation, floor)
        tick = params.tick_size
        return _one_quote_each_side(
            params, params.mid - bid_depth * tick, params.mid + ask_depth * tick, params.order_size
        )


class SymmetricStrategy:
    """A fixed half spread in basis points either side of the mid; ignores inventory."""

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config

    def quote(self, params: MarketParams) -> QuoteSet:
        half = self.config.symmetric_half_spread_bps * 1e-4 * params.mid
        return _one_quote_each_side(params, params.mid - half, params.mid + half, params.order_size)
