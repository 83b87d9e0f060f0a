"""Risk: first-principles position limits and the kill switch."""

from market_maker.risk.kill_switch import KillSwitch, Reason, TradingState, Trigger
from market_maker.risk.limits import (
    BindingLimit,
    PositionLimits,
    blended_sigma,
    budget_limit,
    confidence_from_samples,
    dynamic_max_position,
    effective_max_position,
    horizon_s,
    max_position_value,
    position_limits,
)
from market_maker.risk.refusals import RefusalClass, RefusalCount, RefusalTally, classify
from market_maker.risk.sizing import DynamicSizer, PositionSizer

__all__ = [
    "BindingLimit",
    "DynamicSizer",
    "KillSwitch",
    "PositionLimits",
    "PositionSizer",
    "Reason",
    "RefusalClass",
    "RefusalCount",
    "RefusalTally",
    "TradingState",
    "Trigger",
    "blended_sigma",
    "budget_limit",
    "classify",
    "confidence_from_samples",
    "dynamic_max_position",
    "effective_max_position",
    "horizon_s",
    "max_position_value",
    "position_limits",
]
