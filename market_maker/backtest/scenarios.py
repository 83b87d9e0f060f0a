"""Named market scenarios for backtests and the demo, with their engine calibration.

Every scenario is a BTC-like perpetual: mid 100,000 USD, tick 1 USD, lot 0.001, min notional
10 USD, maker fee 1.5 bp, 20 ms order latency, a 10,000 USD account. They differ in volatility,
flow, shocks and how informed the flow is:

| name | sigma /sqrt s | flow per side (mu, alpha, beta) | k /tick | shock |
|---|---|---|---|---|
| calm | 0.0001 | 1.0, 0.5, 1.0 | 0.8 | none |
| volatile | 0.0003, regimes x0.5/x1/x2 | 1.5, 0.6, 1.0 | 0.4 | jumps 0.1 % at 1/min |
| calm-uninformed | 0.0001 | 1.0, 0.5, 1.0 | 0.05 | none |
| volatile-uninformed | as volatile | 1.5, 0.6, 1.0 | 0.03 | as volatile |
| trend | 0.00015, drift +2e-6/s (+0.7 %/h) | 1.0, 0.5, 1.0 | 0.05 | none |
| cascade | 0.0001 | 1.0, 0.5, 1.0 | 0.05 | at 5 min: mid -1 %, sell flow +80/s |

and their informed flow (the share of aggressive orders that know the next move; the mean size
and rate of those moves; the imbalance's next-second coefficient, sd 0.6 and half-life 0.4 s):

| name | informed share | moves | imbalance beta |
|---|---|---|---|
| calm | 70 % | 1 bp at 0.3/s (60 % of sigma^2), walked over 0.2 s | 0.3 bp per unit |
| volatile | 70 % | 2.5 bp at 0.43/s (60 % of sigma^2), walked over 0.2 s | 0.9 bp per unit |
| calm-uninformed, volatile-uninformed, trend, cascade | none: free of adverse selection | - | - |

Informed flow (``venues/sim.py``, ``venues/sim_flow.py``): most aggressive orders come in
one-sided bursts that walk the mid to a move, each order sweeping to where its step takes the
price and the book following at once, and the top-of-book size imbalance (sd 0.6, half-life
0.4 s, as on the BTC capture) predicts the next second's move. Uninformed orders reach about
0.1 bp past the touch (k 0.8 and 0.4 per 0.1 bp tick; the capture's 0.13 per 0.1 USD tick is
0.12 bp), so a maker's fills are the market walking through its price, as on real captures.
The proportions follow the Binance BTCUSDT capture in ``data/`` (there: 70 % of orders
informed, walking moves of 0.77 bp at 0.94/s over 0.22 s and carrying 70 % of sigma^2,
imbalance beta 0.42 bp per unit, sigma 1.26 bp per sqrt s);
``market-maker calibrate --data FILE -o X.toml`` fits them to any capture, and ``backtest --scenario
calm --config X.toml`` runs that market. The scenarios without informed flow are what every scenario
was before: the mid is independent of the flow, so a market maker's fills never lose to the next
move, and their results flatter the engine.

``engine_config`` returns the config a user would start from for the scenario: fill-intensity
priors at the scenario's A and k (the engine refits both from the trades it sees). Trade-rate
and cascade estimates need no calibration: the engine learns the market's normal rate online.
"""

from __future__ import annotations

import msgspec

from market_maker.config import AppConfig, SimulatorConfig
from market_maker.errors import ConfigError
from market_maker.model import Side
from market_maker.venues.sim import SimParams

__all__ = ["SCENARIOS", "engine_config", "scenario", "with_simulator"]

_VOLATILE = SimParams(
    sigma=0.0003,
    regimes=(1.0, 0.5, 2.0),
    regime_switch_per_s=1.0 / 300.0,
    jump_rate_per_s=1.0 / 60.0,
    jump_sigma=0.001,
    flow_mu=1.5,
    flow_alpha=0.6,
    k=0.03,
)

SCENARIOS: dict[str, SimParams] = {
    "calm": SimParams(
        sigma=0.0001,
        k=0.8,
        informed_share=0.7,
        informed_jump_bps=1.0,
        informed_jump_rate_per_s=0.3,
        informed_lead_s=0.2,
        imbalance_beta_bps=0.3,
        imbalance_sd=0.6,
        imbalance_halflife_s=0.4,
    ),
    "volatile": msgspec.structs.replace(
        _VOLATILE,
        k=0.4,
        informed_share=0.7,
        informed_jump_bps=2.5,
        informed_jump_rate_per_s=0.43,
        informed_lead_s=0.2,
        imbalance_beta_bps=0.9,
        imbalance_sd=0.6,
        imbalance_halflife_s=0.4,
    ),
    "calm-uninformed": SimParams(sigma=0.0001),
    "volatile-uninformed": _VOLATILE,
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


def with_simulator(params: SimParams, simulator: SimulatorConfig) -> SimParams:
    """``params`` with the config's ``[simulator]`` settings over them; a combination the
    simulator refuses (informed moves carrying more variance than sigma) is a ``ConfigError``."""
    overrides = simulator.overrides()
    if not overrides:
        return params
    try:
        return msgspec.structs.replace(params, **overrides)
    except ValueError as exc:
        raise ConfigError(f"simulator: {exc}") from None


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
