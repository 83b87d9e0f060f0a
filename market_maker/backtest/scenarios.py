"""Named market scenarios for backtests and the demo, with their engine calibration.

Every scenario is a BTC-like perpetual: mid 100,000 USD, tick 1 USD, lot 0.001, min notional
10 USD, maker fee 1.5 bp, 20 ms order latency, a 10,000 USD account. They differ in volatility,
flow and shocks:

| name | sigma /sqrt s | flow per side (mu, alpha, beta) | k /tick | shock |
|---|---|---|---|---|
| calm | 0.0001 | 1.0, 0.5, 1.0 | 0.05 | none |
| volatile | 0.0003, regimes x0.5/x1/x2 | 1.5, 0.6, 1.0 | 0.03 | jumps 0.1 % at 1/min |
| trend | 0.00015, drift +2e-6/s (+0.7 %/h) | 1.0, 0.5, 1.0 | 0.05 | none |
| cascade | 0.0001 | 1.0, 0.5, 1.0 | 0.05 | at 5 min: mid -1 %, sell flow +80/s (liquidations) |

``engine_config`` returns the config a user would start from for the scenario: fill-intensity
priors at the scenario's A and k (the engine refits both from the trades it sees). Trade-rate
and cascade estimates need no calibration: the engine learns the market's normal rate online.
"""

from __future__ import annotations

import msgspec

from market_maker.config import AppConfig
from market_maker.model import Side
from market_maker.venues.sim import SimParams

__all__ = ["SCENARIOS", "engine_config", "scenario"]

SCENARIOS: dict[str, SimParams] = {
    "calm": SimParams(sigma=0.0001),
    "volatile": SimParams(
        sigma=0.0003,
        regimes=(1.0, 0.5, 2.0),
        regime_switch_per_s=1.0 / 300.0,
        jump_rate_per_s=1.0 / 60.0,
        jump_sigma=0.001,
        flow_mu=1.5,
        flow_alpha=0.6,
        k=0.03,
    ),
    "trend": SimParams(sigma=0.00015, drift_per_s=2e-6),
    "cascade": SimParams(
        sigma=0.0001,
        cascade_at_s=300.0,
        cascade_jump=-0.01,
        cascade_kick=80.0,
        cascade_side=Side.SELL,
    ),
}


def scenario(name: str, *, duration_s: float | None = None) -> SimParams:
    """The named scenario, optionally with another duration."""
    try:
        params = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}") from None
    if duration_s is not None:
        params = msgspec.structs.replace(params, duration_s=duration_s)
    return params


def engine_config(params: SimParams, base: AppConfig | None = None) -> AppConfig:
    """``base`` (default: the built-in config) with estimators calibrated to the market."""
    cfg = base or AppConfig()
    est = cfg.estimators
    calibrated = msgspec.structs.replace(
        est,
        intensity=msgspec.structs.replace(
            est.intensity, a_prior=params.fill_intensity_a, k_prior=params.k
        ),
    )
    return msgspec.structs.replace(cfg, estimators=calibrated)
