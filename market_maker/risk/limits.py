"""First-principles position limits, in USD of position value.

Given the account value ``V``, the volatility ``sigma`` (fraction of price per sqrt second), the
holding horizon ``T`` (seconds) and the confidence ``c`` in the measured sigma:

- leverage limit:   ``V * max_leverage``
- volatility limit: ``V * risk_fraction / (num_sigmas * sigma_used * sqrt(T))``, the position
  whose ``num_sigmas`` adverse move over ``T`` loses ``risk_fraction`` of the account
- budget limit (optional, balance based): ``min(max_notional_usd, balance * pct / 100)`` when
  enabled and the balance is positive, else ``max_notional_usd``

``max_position_value`` is the smallest limit that applies; ``V <= 0`` gives 0.

How confidence enters: we blend **sigma**, not the limits:
``sigma_used = max(sigma_floor, c * sigma + (1 - c) * sigma_prior)``. At ``c = 0`` only the prior
counts, at ``c = 1`` only the estimate; in between the limit moves smoothly. (The original
design blended the two limits instead; since a limit goes as ``1 / sigma``, a barely trusted but
very low estimate then dominates the blend.) The floor keeps a flat tape from producing an
unbounded limit.
"""

from __future__ import annotations

import math
from enum import StrEnum

import msgspec

from market_maker.config import DynamicRiskConfig, SizingConfig

__all__ = [
    "BindingLimit",
    "PositionLimits",
    "blended_sigma",
    "budget_limit",
    "confidence_from_samples",
    "dynamic_max_position",
    "effective_max_position",
    "horizon_s",
    "max_position_value",
    "position_limits",
]

_isfinite = math.isfinite


class BindingLimit(StrEnum):
    """Which limit set ``max_position_value``."""

    LEVERAGE = "leverage"
    VOLATILITY = "volatility"
    BUDGET = "budget"
    NO_EQUITY = "no_equity"
    STATIC = "static"


class PositionLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Every limit that applies, in USD of position value, and which one binds."""

    leverage_usd: float
    volatility_usd: float
    budget_usd: float | None
    max_position_value: float
    binding: BindingLimit
    sigma_used: float
    horizon_s: float


def confidence_from_samples(samples: int | float, confidence_samples: float) -> float:
    """``c = 1 - exp(-n / confidence_samples)`` in [0, 1)."""
    if not samples > 0:
        return 0.0
    return -math.expm1(-samples / confidence_samples)


def horizon_s(trade_intensity: float, max_horizon_s: float) -> float:
    """Seconds until the next trade is expected: ``min(1 / trade_intensity, max_horizon_s)``."""
    if not (trade_intensity > 0.0 and _isfinite(trade_intensity)):
        return max_horizon_s
    return min(1.0 / trade_intensity, max_horizon_s)


def blended_sigma(sigma: float, confidence: float, config: DynamicRiskConfig) -> float:
    """Sigma the limit uses: the estimate blended with the prior by confidence, then floored.

    A non-finite or negative estimate, or a confidence outside [0, 1], falls back to the prior.
    """
    if not (_isfinite(sigma) and sigma >= 0.0 and 0.0 <= confidence <= 1.0):
        blended = config.sigma_prior
    else:
        blended = confidence * sigma + (1.0 - confidence) * config.sigma_prior
    return blended if blended > config.sigma_floor else config.sigma_floor


def budget_limit(balance: float | None, sizing: SizingConfig) -> float | None:
    """Balance-based notional budget in USD, or None when no budget applies."""
    cap = sizing.max_notional_usd
    if sizing.enabled and balance is not None and _isfinite(balance) and balance > 0.0:
        scaled = balance * sizing.risk_per_market_pct / 100.0
        return scaled if cap is None else min(cap, scaled)
    return cap


def position_limits(
    *,
    account_value: float,
    sigma: float,
    horizon_s: float,
    confidence: float,
    config: DynamicRiskConfig,
    sizing: SizingConfig | None = None,
    balance: float | None = None,
) -> PositionLimits:
    """Every limit, the smallest of them, and which one binds.

    ``balance`` feeds the budget limit and defaults to ``account_value``.
    """
    sigma_used = blended_sigma(sigma, confidence, config)
    horizon = horizon_s if _isfinite(horizon_s) and horizon_s > 0.0 else config.max_horizon_s
    if not (_isfinite(account_value) and account_value > 0.0):
        return PositionLimits(
            leverage_usd=0.0,
            volatility_usd=0.0,
            budget_usd=None,
            max_position_value=0.0,
            binding=BindingLimit.NO_EQUITY,
            sigma_used=sigma_used,
            horizon_s=horizon,
        )
    leverage = account_value * config.max_leverage
    volatility = (
        account_value * config.risk_fraction / (config.num_sigmas * sigma_used * math.sqrt(horizon))
    )
    budget = None
    if sizing is not None:
        budget = budget_limit(account_value if balance is None else balance, sizing)
    value, binding = leverage, BindingLimit.LEVERAGE
    if volatility < value:
        value, binding = volatility, BindingLimit.VOLATILITY
    if budget is not None and budget < value:
        value, binding = budget, BindingLimit.BUDGET
    return PositionLimits(
        leverage_usd=leverage,
        volatility_usd=volatility,
        budget_usd=budget,
        max_position_value=value,
        binding=binding,
        sigma_used=sigma_used,
        horizon_s=horizon,
    )


def max_position_value(
    *,
    account_value: float,
    sigma: float,
    horizon_s: float,
    confidence: float,
    config: DynamicRiskConfig,
) -> float:
    """``min(V * max_leverage, V * risk_fraction / (num_sigmas * sigma_used * sqrt(T)))`` in USD."""
    return position_limits(
        account_value=account_value,
        sigma=sigma,
        horizon_s=horizon_s,
        confidence=confidence,
        config=config,
    ).max_position_value


def dynamic_max_position(max_position_value: float | None, mid: float, static: float) -> float:
    """Contracts: ``max_position_value / mid`` when the value is known and ``mid > 0``, else the
    static limit (the safe fallback until the account state has been read)."""
    if max_position_value is None or not (_isfinite(mid) and mid > 0.0):
        return static
    return max_position_value / mid


def effective_max_position(dynamic: float, cap: float | None) -> float:
    """The dynamic limit under the optional hard cap, contracts."""
    return dynamic if cap is None or dynamic < cap else cap
