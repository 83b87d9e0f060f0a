"""Risk: first-principles position limits and the kill switch."""

from market_maker.risk.kill_switch import KillSwitch, Reason, TradingState, Trigger
from market_maker.risk.limits import (
    BindingLimit,
    PositionLimits,
    blended_sigma,
    budget_limit,
    confidence_from_samples,
    horizon_s,
    max_position_value,
    position_limits,
)

__all__ = [
    "BindingLimit",
    "KillSwitch",
    "PositionLimits",
    "Reason",
    "TradingState",
    "Trigger",
    "blended_sigma",
    "budget_limit",
    "confidence_from_samples",
    "horizon_s",
    "max_position_value",
    "position_limits",
]
