"""Venues: where events come from and actions go. The engine never knows which one it is."""

from market_maker.venues.exchange import ExchangeCore, Faults, FeeModel, LatencyModel, RateLimit
from market_maker.venues.sim import SimMarket, SimParams, simulated_exchange

__all__ = [
    "ExchangeCore",
    "Faults",
    "FeeModel",
    "LatencyModel",
    "RateLimit",
    "SimMarket",
    "SimParams",
    "simulated_exchange",
]
