"""Strategies: pure functions of ``MarketParams`` that return the wanted quotes."""

from __future__ import annotations

from typing import Protocol

from market_maker.config import AppConfig
from market_maker.model import QuoteSet
from market_maker.strategy.baselines import AvellanedaStoikovStrategy, SymmetricStrategy
from market_maker.strategy.capacity import side_capacity
from market_maker.strategy.glft import GlftDepths, GlftStrategy, glft_coefficients, glft_depths
from market_maker.strategy.ladder import LadderStrategy, grid_interval, ladder_ticks
from market_maker.strategy.params import MarketParams, ParameterAggregator

__all__ = [
    "AvellanedaStoikovStrategy",
    "GlftDepths",
    "GlftStrategy",
    "LadderStrategy",
    "MarketParams",
    "ParameterAggregator",
    "Strategy",
    "SymmetricStrategy",
    "glft_coefficients",
    "glft_depths",
    "grid_interval",
    "ladder_ticks",
    "make_strategy",
    "side_capacity",
]


class Strategy(Protocol):
    def quote(self, params: MarketParams) -> QuoteSet: ...


def make_strategy(config: AppConfig) -> Strategy:
    """The strategy named by ``[strategy] kind``."""
    kind = config.strategy.kind
    if kind == "glft":
        return GlftStrategy(config.strategy)
    if kind == "ladder":
        return LadderStrategy(config.strategy, config.ladder)
    if kind == "avellaneda_stoikov":
        return AvellanedaStoikovStrategy(config.strategy)
    return SymmetricStrategy(config.strategy)
