"""market_maker: a market-making quoting engine with first-principles position limits."""

from market_maker.config import AppConfig, DynamicRiskConfig, load_config
from market_maker.errors import ConfigError, MarketMakerError, VenueError
from market_maker.status import EngineStatus

__all__ = [
    "AppConfig",
    "ConfigError",
    "DynamicRiskConfig",
    "EngineStatus",
    "MarketMakerError",
    "VenueError",
    "__version__",
    "load_config",
]

__version__ = "0.1.0"
