"""One base exception and a shallow hierarchy; library exceptions are mapped at the boundary."""

from __future__ import annotations

__all__ = ["ConfigError", "MarketMakerError", "StoreError", "VenueError"]


class MarketMakerError(Exception):
    """Base class for every error raised by market_maker."""


class ConfigError(MarketMakerError):
    """A configuration file or override is missing, malformed or out of range."""


class VenueError(MarketMakerError):
    """A venue could not be reached or answered with something we cannot use."""


class StoreError(MarketMakerError):
    """A market-data store cannot be read or written, or holds nothing for the request."""
