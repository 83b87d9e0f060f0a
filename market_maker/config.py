"""Configuration: strict, frozen msgspec Structs decoded from TOML, with environment overrides.

Every field carries its unit in its name or its comment. A bad file raises one ``ConfigError``
naming the file, the field path and the reason::

    config/bad.toml: risk.max_leverage: Expected `float` > 0.0

Environment variables with the ``MM_`` prefix override file values; ``__`` separates the path:
``MM_RISK__MAX_LEVERAGE=10`` sets ``[risk] max_leverage = 10``. Values are parsed as TOML values
(numbers, booleans, quoted strings), and a bare word is taken as a string.
"""

from __future__ import annotations

import math
import os
import tomllib
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

from market_maker.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "MAX_INTENSITY_STEPS",
    "STRATEGY_KINDS",
    "AppConfig",
    "CascadeConfig",
    "ConvictionConfig",
    "DynamicRiskConfig",
    "EstimatorsConfig",
    "FeeTierConfig",
    "FeesConfig",
    "FillIntensityConfig",
    "FundingConfig",
    "HawkesConfig",
    "InputConfig",
    "InstrumentConfig",
    "KillSwitchConfig",
    "LadderConfig",
    "OrdersConfig",
    "QuotingConfig",
    "RebateTierConfig",
    "SimulatorConfig",
    "SizingConfig",
    "StrategyConfig",
    "StrategyKind",
    "VenueConfig",
    "VolatilityConfig",
    "build_config",
    "default_config_text",
    "field_unit",
    "load_config",
    "parse_config",
    "parse_toml",
    "with_strategy",
]

ENV_PREFIX = "MM_"
MAX_INTENSITY_STEPS = 1_000_000
"""Most steps the fill-intensity window may hold (``window_s / step_s``)."""

PositiveFloat = Annotated[float, Meta(gt=0.0)]
NonNegativeFloat = Annotated[float, Meta(ge=0.0)]
UnitFraction = Annotated[float, Meta(gt=0.0, le=1.0)]
Percent = Annotated[float, Meta(gt=0.0, le=100.0)]
PositiveInt = Annotated[int, Meta(gt=0)]


class _Config(Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Base for config sections: keyword-only, immutable, unknown keys are errors."""


def _require_finite(**values: float | None) -> None:
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{name} must be finite")


class DynamicRiskConfig(_Config, frozen=True):
    """First-principles position limits (``[risk]``).

    ``max_position_value = min(V * max_leverage,
    V * risk_fraction / (num_sigmas * sigma * sqrt(T)))`` where ``sigma`` is blended with
    ``sigma_prior`` by confidence ``c = 1 - exp(-n / confidence_samples)``.
    """

    risk_fraction: UnitFraction = 0.5
    """Fraction of account value allowed to be lost in a ``num_sigmas`` move over the horizon."""
    num_sigmas: Annotated[float, Meta(ge=0.1, le=100.0)] = 5.0
    """How many standard deviations of adverse move the position must survive."""
    sigma_prior: PositiveFloat = 0.0002
    """Volatility assumed before enough samples exist, fraction of price per sqrt(second)."""
    sigma_floor: PositiveFloat = 0.00002
    """Lowest sigma the limit will ever use, so a flat market cannot make the limit unbounded."""
    max_leverage: PositiveFloat = 20.0
    """Leverage cap: position value never exceeds ``account_value * max_leverage``."""
    max_horizon_s: PositiveFloat = 120.0
    """Longest holding horizon T, seconds; T = min(1 / trade_rate, max_horizon_s)."""
    confidence_samples: PositiveFloat = 50.0
    """Volatility samples for confidence 1 - 1/e in the measured sigma."""
    limit_tolerance: Annotated[float, Meta(ge=0.0, le=0.2)] = 0.02
    """How far below the exact limit the volatility limit may sit, as a fraction of it: the
    trade rate it reads (which moves on every trade and decays between them) is held while
    it stays within a band that keeps the limit in ``[exact * (1 - tolerance), exact]``,
    never above; 0 re-derives the limit at every new rate."""
    max_position: NonNegativeFloat = 0.01
    """Static position limit, contracts, used until the account value is known."""
    max_position_cap: PositiveFloat | None = None
    """Optional hard cap on the effective position limit, contracts."""

    def __post_init__(self) -> None:
        _require_finite(
            sigma_prior=self.sigma_prior,
            sigma_floor=self.sigma_floor,
            max_leverage=self.max_leverage,
            max_horizon_s=self.max_horizon_s,
            num_sigmas=self.num_sigmas,
            confidence_samples=self.confidence_samples,
            max_position=self.max_position,
            max_position_cap=self.max_position_cap,
        )


class KillSwitchConfig(_Config, frozen=True):
    """Triggers that move the trading state away from ACTIVE (``[kill_switch]``)."""

    max_daily_loss_usd: PositiveFloat = 500.0
    """HALTED when equity falls this far below its value at the start of the UTC day."""
    max_drawdown_pct: Percent = 5.0
    """HALTED when equity falls this many percent below its running peak."""
    hard_multiple: Annotated[float, Meta(ge=1.0)] = 2.0
    """Position beyond 1x the limit is REDUCING; beyond ``hard_multiple`` x it is HALTED."""
    stale_pause_after_s: PositiveFloat = 5.0
    """PAUSED when no market data has arrived for this long, seconds."""
    stale_halt_after_s: PositiveFloat = 30.0
    """HALTED when no market data has arrived for this long on a live connection, seconds
    (while the venue is disconnected, silence only pauses)."""
    cascade_pause_ratio: Annotated[float, Meta(gt=1.0)] = 3.0
    """PAUSED when trade arrivals over the last ``estimators.cascade.window_s`` exceed this
    multiple of what the market's own long-run rate predicts."""
    cascade_resume_ratio: Annotated[float, Meta(gt=0.0)] = 2.0
    """... and resume only once the ratio has stayed below this for ``cascade_resume_after_s``."""
    cascade_resume_after_s: NonNegativeFloat = 30.0
    cascade_halt_ratio: Annotated[float, Meta(gt=1.0)] = 6.0
    """HALTED when the ratio stays above this for ``cascade_halt_after_s``."""
    cascade_halt_after_s: NonNegativeFloat = 2.0
    max_rejections: PositiveInt = 3
    """PAUSED while this many order rejections fall inside ``rejection_window_s``."""
    rejection_window_s: PositiveFloat = 60.0
    """Sliding window for counting rejections, seconds."""
    max_position_contracts: PositiveFloat | None = None
    """Optional absolute cap, contracts (REDUCING beyond 1x, HALTED beyond hard_multiple x)."""
    halt_position: Literal["keep", "to_limit", "flat"] = "to_limit"
    """What a halt does with the position besides cancelling every order: ``to_limit`` takes
    the excess over the limit back (immediate-or-cancel orders within
    ``orders.escalate_slippage_bps``, while market data is fresh), ``flat`` takes all of it,
    ``keep`` leaves it for a person."""

    def __post_init__(self) -> None:
        _require_finite(
            max_daily_loss_usd=self.max_daily_loss_usd,
            stale_pause_after_s=self.stale_pause_after_s,
            stale_halt_after_s=self.stale_halt_after_s,
            hard_multiple=self.hard_multiple,
            cascade_halt_ratio=self.cascade_halt_ratio,
            cascade_resume_after_s=self.cascade_resume_after_s,
            cascade_halt_after_s=self.cascade_halt_after_s,
            rejection_window_s=self.rejection_window_s,
            max_position_contracts=self.max_position_contracts,
        )
        if self.stale_halt_after_s < self.stale_pause_after_s:
            raise ValueError("stale_halt_after_s must be >= stale_pause_after_s")
        if self.cascade_halt_ratio < self.cascade_pause_ratio:
            raise ValueError("cascade_halt_ratio must be >= cascade_pause_ratio")
        if self.cascade_resume_ratio > self.cascade_pause_ratio:
            raise ValueError("cascade_resume_ratio must be <= cascade_pause_ratio")


class HawkesConfig(_Config, frozen=True):
    """Trade arrivals: ``lambda(t) = mu + sum alpha * m_i * exp(-beta * (t - t_i))``.

    ``alpha`` and ``beta`` default to a maximum-likelihood fit on the Binance BTCUSDT capture in
    ``data/`` (5,436 aggressive orders over 343 s: mu 9.0/s, alpha 30.6/s, beta 71.0/s, a
    branching ratio of 0.43 and a 14 ms memory). ``mu`` is only a prior: the engine replaces it
    by ``long-run rate * (1 - alpha / beta)`` from the market's own arrivals.
    """

    mu: Annotated[float, Meta(ge=1e-6, le=1e6)] = 1.0
    """Prior baseline arrival rate, trades per second (seeds the long-run rate)."""
    alpha: Annotated[float, Meta(ge=0.0, le=1e9)] = 30.6
    """Jump in intensity per trade, per second."""
    beta: Annotated[float, Meta(ge=1e-6, le=1e9)] = 71.0
    """Decay rate of the excitation, per second."""

    def __post_init__(self) -> None:
        _require_finite(mu=self.mu, alpha=self.alpha, beta=self.beta)
        if self.alpha >= self.beta:
            raise ValueError("alpha must be < beta (branching ratio alpha/beta < 1 is stationary)")


class VolatilityConfig(_Config, frozen=True):
    """Welford volatility of mid log returns sampled on a fixed grid."""

    sample_interval_s: Annotated[float, Meta(ge=0.001, le=86_400.0)] = 1.0
    """Grid spacing for mid samples, seconds (guards against bid-ask bounce); a finer grid than
    a millisecond is below the resolution of a stamp next to a 1.7e9 s epoch time."""
    halflife_s: Annotated[float, Meta(ge=0.001, le=1e9)] | None = None
    """Optional exponential forgetting half-life, seconds; unset keeps every sample equally."""

    def __post_init__(self) -> None:
        _require_finite(sample_interval_s=self.sample_interval_s, halflife_s=self.halflife_s)


class FillIntensityConfig(_Config, frozen=True):
    """Fit of ``lambda(delta) = A * exp(-k * delta)`` from trade depths (delta in whole ticks)."""

    step_s: Annotated[float, Meta(ge=0.001, le=3_600.0)] = 0.1
    """Each step records the deepest trade per side relative to the mid, seconds."""
    window_s: Annotated[float, Meta(ge=0.01, le=604_800.0)] = 600.0
    """Rolling window of steps used for the fit, seconds (at most ``MAX_INTENSITY_STEPS``
    steps: the estimator keeps two integers a step)."""
    max_depth_ticks: Annotated[int, Meta(ge=2, le=10_000)] = 20
    """Deepest level (ticks) included in the fit."""
    refit_interval_s: Annotated[float, Meta(ge=0.001, le=86_400.0)] = 5.0
    """How often A and k are refitted, seconds."""
    a_prior: Annotated[float, Meta(ge=1e-9, le=1e9)] = 1.0
    """A used until the first fit, fills per second at zero depth."""
    k_prior: Annotated[float, Meta(ge=1e-6, le=1e3)] = 0.5
    """k used until the first fit, per tick."""

    def __post_init__(self) -> None:
        _require_finite(step_s=self.step_s, window_s=self.window_s, a_prior=self.a_prior)
        if self.window_s < 10 * self.step_s:
            raise ValueError("window_s must span at least 10 steps")
        if self.window_s > MAX_INTENSITY_STEPS * self.step_s:
            raise ValueError(
                f"window_s / step_s must be at most {MAX_INTENSITY_STEPS:,} steps "
                f"(memory), got {self.window_s / self.step_s:,.0f}"
            )


class CascadeConfig(_Config, frozen=True):
    """Cascade detection (``[estimators.cascade]``): arrivals now against the long-run rate."""

    window_s: PositiveFloat = 5.0
    """Short-term window: arrivals over about the last this many seconds."""
    baseline_s: PositiveFloat = 1200.0
    """Long-run window for the market's normal arrival rate, seconds."""
    prior_weight_s: NonNegativeFloat = 5.0
    """Weight of the prior rate ``hawkes.mu / (1 - alpha / beta)`` at start, seconds of data."""
    warmup_s: NonNegativeFloat = 60.0
    """No cascade is called before this many seconds of arrivals."""
    min_events: NonNegativeFloat = 5.0
    """Pseudo count added to both sides of the ratio, so a few trades on a quiet market are
    not a burst."""

    def __post_init__(self) -> None:
        _require_finite(window_s=self.window_s, baseline_s=self.baseline_s)
        if self.baseline_s <= self.window_s:
            raise ValueError("baseline_s must be longer than window_s")


class EstimatorsConfig(_Config, frozen=True):
    """``[estimators]`` with one subsection per estimator."""

    hawkes: HawkesConfig = field(default_factory=HawkesConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    volatility: VolatilityConfig = field(default_factory=VolatilityConfig)
    intensity: FillIntensityConfig = field(default_factory=FillIntensityConfig)


class ConvictionConfig(_Config, frozen=True):
    """Conviction sizing (``[sizing.conviction]``): quote size scaled by a score in [0, 1].

    ``fraction = min_fraction + (max_fraction - min_fraction) * score``,
    ``budget = min(max_position_usd * fraction, max_portfolio_exposure_usd - exposure)``.
    The score is the Hawkes buy/sell flow imbalance in the direction of the quote.
    """

    enabled: bool = False
    min_fraction: UnitFraction = 0.3
    max_fraction: UnitFraction = 1.0
    max_position_usd: PositiveFloat = 1000.0
    """Budget of one quote at full conviction, USD."""
    max_portfolio_exposure_usd: PositiveFloat = 5000.0
    """Position value beyond which no budget is left, USD."""

    def __post_init__(self) -> None:
        _require_finite(
            max_position_usd=self.max_position_usd,
            max_portfolio_exposure_usd=self.max_portfolio_exposure_usd,
        )
        if self.min_fraction > self.max_fraction:
            raise ValueError("min_fraction must be <= max_fraction")


class SizingConfig(_Config, frozen=True):
    """Balance-based budget (``[sizing]``).

    Budget = ``min(max_notional_usd, balance * risk_per_market_pct / 100)`` when ``enabled`` and the
    balance is positive, else ``max_notional_usd``. With ``max_notional_usd`` unset and sizing
    disabled there is no budget limit.
    """

    enabled: bool = False
    risk_per_market_pct: Percent = 10.0
    """Share of the balance one market may use, percent."""
    max_notional_usd: PositiveFloat | None = None
    """Static notional cap, USD; also the fallback while the balance is unknown."""
    conviction: ConvictionConfig = field(default_factory=ConvictionConfig)

    def __post_init__(self) -> None:
        _require_finite(max_notional_usd=self.max_notional_usd)


StrategyKind = Literal["glft", "ladder", "avellaneda_stoikov", "symmetric"]


class StrategyConfig(_Config, frozen=True):
    """Quoting model (``[strategy]``). Depths in ticks; sizes in contracts."""

    kind: StrategyKind = "glft"
    order_size: Annotated[float, Meta(ge=1e-9, le=1e9)] = 0.01
    """Size of one quote (GLFT's D and the inventory unit), contracts."""
    order_size_usd: Annotated[float, Meta(ge=0.01, le=1e12)] | None = None
    """Size of one quote in USD at the mid; when set it replaces ``order_size`` (any market)."""
    gamma: Annotated[float, Meta(gt=0.0, le=1e6)] = 0.05
    """Risk aversion, per (tick * order): inventory is counted in orders of ``order_size``."""
    xi: Annotated[float, Meta(ge=0.0, le=1e6)] | None = None
    """GLFT's xi; unset means xi = gamma (the 2013 paper)."""
    spread_multiplier: Annotated[float, Meta(gt=0.0, le=100.0)] = 1.0
    """Scales GLFT's half spread."""
    skew_multiplier: Annotated[float, Meta(ge=0.0, le=100.0)] = 1.0
    """Scales GLFT's inventory skew (the pure model's skew is strong; 0.05-0.5 is common)."""
    min_half_spread_bps: Annotated[float, Meta(ge=0.0, le=10_000.0)] = 1.0
    """Fee floor: never quote closer to the mid than this, basis points."""
    fee_floor_from_fees: bool = False
    """Read the fee floor from the market's maker fee (``[fees]``, ``[instrument]``, the
    venue's ``userFees``; a rebate floors at 0) instead of ``min_half_spread_bps``."""
    cascade_widening: Annotated[float, Meta(ge=0.0, le=100.0)] = 0.5
    """Half spread grows by this fraction per unit of Hawkes ratio above 1."""
    gamma_utilisation_scale: Annotated[float, Meta(ge=0.0, le=1_000.0)] = 2.0
    """gamma_eff = gamma * (1 + scale * utilisation**2), utilisation = |q| / Q."""
    as_horizon_s: Annotated[float, Meta(gt=0.0, le=31_536_000.0)] = 5.0
    """Avellaneda-Stoikov horizon: the rolling T - t, or T itself with ``as_terminal``, seconds.
    The spread's inventory term ``gamma * sigma^2 * (T - t)`` grows with it: at 60 s it was
    about 50 bps wide on calm BTC and never filled; 5 s quotes near GLFT's width."""
    as_terminal: bool = False
    """Avellaneda-Stoikov with a finite session: T - t = as_horizon_s - t (the 2008 paper)."""
    symmetric_half_spread_bps: Annotated[float, Meta(gt=0.0, le=10_000.0)] = 5.0
    """Half spread of the symmetric baseline, basis points."""
    backup_levels: Annotated[int, Meta(ge=0, le=10)] = 2
    """GLFT: orders of ``order_size`` resting behind the GLFT quote on each side, each
    ``backup_ratio`` times deeper than the one before (0: the GLFT quote alone). When the
    quote fills, the backup still rests while its replacement travels (a place takes a block
    and two trips on Hyperliquid), so the side is not left empty; it counts in the pending
    exposure like any order."""
    backup_ratio: Annotated[float, Meta(gt=1.0, le=100.0)] = 2.0
    """GLFT: depth of each backup order over the one before it."""

    def __post_init__(self) -> None:
        _require_finite(
            order_size=self.order_size,
            order_size_usd=self.order_size_usd,
            gamma=self.gamma,
            xi=self.xi,
        )


class LadderConfig(_Config, frozen=True):
    """Multi-level ladder (``[ladder]``), starting at the GLFT depth and spaced outward."""

    levels: Annotated[int, Meta(ge=1, le=50)] = 5
    spacing: Literal["geometric", "fixed"] = "geometric"
    ratio: Annotated[float, Meta(gt=1.0, le=100.0)] = 1.5
    """Geometric spacing: level i sits at depth0 * ratio**i."""
    interval_ticks: Annotated[int, Meta(ge=1)] | None = None
    """Grid (and fixed spacing) in ticks; unset: half the inner depth on a 1-2-5 step."""
    target_liquidity: Annotated[float, Meta(ge=1e-9, le=1e9)] = 0.05
    """Total size per side across all levels, contracts."""
    target_liquidity_usd: Annotated[float, Meta(ge=0.01, le=1e12)] | None = None
    """Total per side in USD at the mid; when set it replaces ``target_liquidity``."""

    def __post_init__(self) -> None:
        _require_finite(
            ratio=self.ratio,
            target_liquidity=self.target_liquidity,
            target_liquidity_usd=self.target_liquidity_usd,
        )


class QuotingConfig(_Config, frozen=True):
    """What the quotes price beyond GLFT's model (``[quoting]``); each feature has a switch,
    and ``calibrate`` fits their numbers from a capture. Read by GLFT and the ladder.

    - **fair value**: the quotes centre on ``mid + imbalance_beta_bps * I`` (``I`` the
      top-of-book size imbalance ``(bid - ask) / (bid + ask)``), the mid the book predicts a
      second ahead, rounded to whole ticks;
    - **adverse-selection floor**: no quote closer to the fair value than the adverse move
      expected after a fill plus ``maker_fee_bps``; the move is our own fills' markout at
      ``adverse_horizon_s``, decayed over ``adverse_halflife_fills`` fills, shrunk towards
      ``adverse_prior_bps`` with the weight of ``adverse_prior_fills`` fills;
    - **toxic-flow guard**: when the per-side trade intensities are one-sided (``|buy - sell|
      / (buy + sell)`` at ``toxic_enter`` or more; off again under ``toxic_exit``), the side
      the flow runs towards (our asks under buying) steps ``toxic_widen_bps`` further out.
    """

    fair_value: bool = False
    imbalance_beta_bps: Annotated[float, Meta(ge=-100.0, le=100.0)] = 0.0
    """Expected mid change over the next second per unit of top-of-book imbalance, bps."""
    adverse_floor: bool = False
    adverse_prior_bps: Annotated[float, Meta(ge=0.0, le=1_000.0)] = 1.0
    adverse_prior_fills: Annotated[float, Meta(ge=0.0, le=1e6)] = 20.0
    adverse_halflife_fills: Annotated[float, Meta(ge=1.0, le=1e6)] = 100.0
    adverse_horizon_s: Annotated[float, Meta(ge=0.01, le=600.0)] = 10.0
    """How long after a fill its adverse move is read, seconds: about how long a fill is
    held before the other side offsets it (a few dozen fills an hour a side), not the 1 s
    the move after a print takes."""
    maker_fee_bps: Annotated[float, Meta(ge=-100.0, le=100.0)] | None = None
    """The maker fee the floor adds (negative: a rebate), bps; unset: the market's own
    (``[fees]``, the instrument table, the venue's ``userFees``; 0 where none is known)."""
    toxic_guard: bool = False
    toxic_enter: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.9
    toxic_exit: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.8
    toxic_widen_bps: Annotated[float, Meta(ge=0.0, le=1_000.0)] = 2.0

    def __post_init__(self) -> None:
        _require_finite(
            imbalance_beta_bps=self.imbalance_beta_bps,
            adverse_prior_bps=self.adverse_prior_bps,
            maker_fee_bps=self.maker_fee_bps,
            toxic_widen_bps=self.toxic_widen_bps,
        )
        if self.toxic_exit > self.toxic_enter:
            raise ValueError("toxic_exit must be <= toxic_enter (hysteresis)")


class OrdersConfig(_Config, frozen=True):
    """Order management (``[orders]``)."""

    price_tolerance_ticks: Annotated[int, Meta(ge=0)] = 2
    """Keep a resting order whose price is within this many ticks of the wanted one (with the
    request budget full and the order just placed; see the next two)."""
    low_budget_tolerance_bps: Annotated[float, Meta(ge=0.0, le=1000.0)] = 3.0
    """Added to the tolerance in proportion to the share of ``request_burst`` spent: with the
    budget empty an order is kept this many basis points further, so requests go where they
    matter. An order ahead of the side's best wanted price (a bid above it, an ask below it)
    is never stretched: it is the quote an informed taker picks off."""
    queue_tolerance_bps: Annotated[float, Meta(ge=0.0, le=1000.0)] = 0.6
    """Added in proportion to how long the order has rested at its price, up to
    ``queue_value_s``: an order near the front of its queue is worth more than a new one
    (again never ahead of the side's best wanted price)."""
    queue_value_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 5.0
    """How long an order rests before its queue place earns all of ``queue_tolerance_bps``."""
    depth_tolerance_fraction: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.5
    """Added for a level behind the side's best wanted level: this fraction of its distance
    from it, ticks (a deep ladder level rarely trades; moving it is rarely worth a request)."""
    size_tolerance: Annotated[float, Meta(ge=0.0, lt=1.0)] = 0.2
    """Keep a resting order whose remaining size is within this fraction of the wanted one."""
    use_modify: bool = True
    """Re-price with one modify instead of cancel + place where the venue supports it."""
    max_requests_per_s: Annotated[float, Meta(ge=0.01, le=10_000.0)] = 10.0
    """Our own request budget (token bucket), so the venue never throttles us."""
    request_burst: Annotated[float, Meta(ge=1.0, le=100_000.0)] = 20.0
    settle_timeout_s: Annotated[float, Meta(gt=0.0, le=3600.0)] = 2.0
    """A request unanswered, or an order gone from the venue whose fills have not all arrived,
    this long asks the venue for a snapshot (also the time to wait for a snapshot's reply)."""
    reconcile_interval_s: Annotated[float, Meta(gt=0.0, le=86400.0)] | None = 10.0
    """Reconcile with a venue snapshot this often, seconds; unset: only when needed."""
    request_expiry_s: Annotated[float, Meta(ge=0.05, le=3600.0)] = 1.0
    """A request that reaches the venue this long after it was sent is refused there instead
    of executing late (Hyperliquid's ``expiresAfter``). An unanswered request is taken as lost
    only by a snapshot asked for ``settle_timeout_s`` after it was sent, so this must be
    shorter: the difference covers the skew between our clock and the venue's."""
    reject_backoff_s: Annotated[float, Meta(ge=0.0, le=60.0)] = 0.1
    """After a side's new order is refused, hold that side's new orders this long, doubling
    with each refusal in a row (cancels always go; an accepted order resets it)..."""
    reject_backoff_max_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 10.0
    """... up to this long."""
    escalate_after_s: Annotated[float, Meta(gt=0.0, le=86400.0)] | None = 30.0
    """REDUCING this long (passive quotes did not bring the position back under the limit):
    take liquidity with an immediate-or-cancel order for the excess; unset: never."""
    escalate_slippage_bps: Annotated[float, Meta(gt=0.0, le=1000.0)] = 10.0
    """The escalation's limit price: at most this far through the touch, basis points."""
    escalate_interval_s: Annotated[float, Meta(gt=0.0, le=3600.0)] = 5.0
    """Between two escalations (each waits for the previous one's answer too)."""

    def __post_init__(self) -> None:
        if self.request_expiry_s >= self.settle_timeout_s:
            raise ValueError("request_expiry_s must be < settle_timeout_s")


class InstrumentConfig(_Config, frozen=True):
    """Exchange rules that override the shipped instruments table (``[instrument]``).

    Unset fields come from the table entry of the market's symbol; a symbol the table does
    not know needs ``tick_size`` and ``lot_size`` here (or ``sz_decimals`` on Hyperliquid).
    """

    tick_size: Annotated[float, Meta(ge=1e-8, le=1e6)] | None = None
    """Price step, quote currency (USD)."""
    lot_size: Annotated[float, Meta(ge=1e-8, le=1e6)] | None = None
    """Size step, contracts."""
    min_notional: Annotated[float, Meta(ge=0.0, le=1e9)] | None = None
    """Smallest order value, USD."""
    sz_decimals: Annotated[int, Meta(ge=0, le=8)] | None = None
    """Hyperliquid's size decimals: lot 10^-sz_decimals, prices 5 significant figures."""
    market: Literal["binance-usdm", "binance-coinm", "binance-spot", "hyperliquid"] | None = None
    """The venue's market a capture comes from, when its lines cannot tell (a capture of
    ``@trade`` and ``@bookTicker`` alone reads the same on USD-M and spot)."""
    kind: Literal["linear", "inverse", "spot"] | None = None
    """What a contract is (``model.InstrumentKind``); unset: the table's, else linear."""
    contract_size: Annotated[float, Meta(ge=1e-8, le=1e9)] | None = None
    """Linear and spot: base units per contract; inverse: USD per contract."""
    settlement_currency: Annotated[str, Meta(min_length=1, max_length=20)] | None = None
    """What PnL and fees are paid in (inverse: the base coin)."""
    maker_fee_bps: Annotated[float, Meta(ge=-100.0, le=100.0)] | None = None
    """Maker fee in basis points of the order's USD value; negative: a rebate. Unset: the
    schedule's (``[fees]``), else the table's."""
    taker_fee_bps: Annotated[float, Meta(ge=-100.0, le=100.0)] | None = None
    base_balance: Annotated[float, Meta(ge=0.0, le=1e12)] | None = None
    """Spot backtests: the base asset held at the start, base units (the position; asks
    sell at most what is held). Unset: none."""
    quote_balance: Annotated[float, Meta(ge=0.0, le=1e15)] | None = None
    """Spot backtests: the quote currency held at the start (bids spend at most what is
    held). Unset: the backtest's starting equity, 10,000."""


class FeeTierConfig(_Config, frozen=True):
    """One row of a fee schedule: the rates from ``min_volume_usd`` of 14-day volume up."""

    min_volume_usd: Annotated[float, Meta(ge=0.0, le=1e15)]
    maker_bps: Annotated[float, Meta(ge=-100.0, le=100.0)]
    taker_bps: Annotated[float, Meta(ge=-100.0, le=100.0)]


class RebateTierConfig(_Config, frozen=True):
    """A maker rebate from ``min_maker_share_pct`` of the venue's 14-day maker volume up."""

    min_maker_share_pct: Annotated[float, Meta(ge=0.0, le=100.0)]
    maker_bps: Annotated[float, Meta(ge=-100.0, le=0.0)]


class FeesConfig(_Config, frozen=True):
    """The account's fee schedule (``[fees]``): which tier it is in, or its rates.

    ``maker_bps`` / ``taker_bps`` set the rates outright. Otherwise the tier comes from
    ``volume_14d_usd`` and ``maker_share_pct`` on ``tiers`` and ``rebates`` (unset: the
    venue's own schedule, ``market_maker/fees.py``; Hyperliquid's perps by default).
    Live on Hyperliquid the venue's ``userFees`` answer replaces all of this.
    """

    maker_bps: Annotated[float, Meta(ge=-100.0, le=100.0)] | None = None
    taker_bps: Annotated[float, Meta(ge=-100.0, le=100.0)] | None = None
    volume_14d_usd: Annotated[float, Meta(ge=0.0, le=1e15)] | None = None
    maker_share_pct: Annotated[float, Meta(ge=0.0, le=100.0)] | None = None
    tiers: tuple[FeeTierConfig, ...] | None = None
    rebates: tuple[RebateTierConfig, ...] | None = None


class FundingConfig(_Config, frozen=True):
    """Funding (``[funding]``): the rate a backtest pays (a constant per funding interval, or
    none), and how the venue's rate enters the sizing and the quotes (``risk/carry.py``).
    The interval and cap are the venue's (``market_maker/funding.py``)."""

    rate: Annotated[float, Meta(ge=-0.1, le=0.1)] | None = None
    """Funding rate per interval as a fraction (0.0001 = 0.01 %); positive: longs pay."""
    interval_s: Annotated[float, Meta(ge=60.0, le=86_400.0)] | None = None
    """Override the venue's interval (Hyperliquid 3,600 s, Binance 28,800 s)."""
    sizing: bool = True
    """The side that pays funding at a funding time within the risk horizon has that payment
    added to its per-unit risk: its room shrinks (the other side's is unchanged)."""
    skew: bool = False
    """Lean the reservation price towards the side that receives funding."""
    skew_horizon_s: Annotated[float, Meta(ge=0.0, le=604_800.0)] = 3_600.0
    """The skew: one unit held this long pays ``rate * skew_horizon_s / interval_s`` of its
    value; the reservation price moves by minus that."""
    skew_max_bps: Annotated[float, Meta(ge=0.0, le=100.0)] = 2.0
    """The skew never moves the reservation price further than this, basis points."""


class InputConfig(_Config, frozen=True):
    """Plausibility gates at the engine's edge (``[input]``): what is not believable is counted
    and ignored, like NaN."""

    max_price_move: Annotated[float, Meta(gt=0.0, le=10.0)] = 0.25
    """A book or trade further than this fraction from the last accepted mid is refused..."""
    reanchor_after_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 10.0
    """... unless refused books have agreed on a new level for this long (the market moved)."""
    max_future_s: Annotated[float, Meta(gt=0.0, le=86400.0)] = 30.0
    """An event stamped further than this ahead of the engine's clock is refused, not adopted
    as the new time (timers, which are the clock, are exempt)."""


class VenueConfig(_Config, frozen=True):
    """Live venues (``[venue]``): where to connect and how to paper trade."""

    ws_url: Annotated[str, Meta(pattern=r"^wss?://\S+$", max_length=500)] | None = None
    """Websocket endpoint; unset: Hyperliquid mainnet (or testnet with ``testnet = true``)."""
    testnet: bool = False
    live: bool = False
    """Trade with real orders (the API wallet's key is needed). Only on testnet: mainnet also
    needs ``--live`` on the command line. A key alone never makes a run live."""
    address: Annotated[str, Meta(pattern=r"^0x[0-9a-fA-F]{40}$")] | None = None
    """The account (master address): traded live, or watched read-only when paper trading
    (which then starts from its account value). ``HYPERLIQUID_ACCOUNT_ADDRESS`` also sets it;
    unset, live trading uses the key's own address."""
    paper_equity_usd: Annotated[float, Meta(gt=0.0, le=1e12)] = 10_000.0
    """The paper account's starting equity when no address is watched."""
    ping_interval_s: Annotated[float, Meta(gt=0.0, le=55.0)] = 30.0
    """Heartbeat: the server closes a connection after 60 s without a message from us."""
    pong_timeout_s: Annotated[float, Meta(gt=0.0, le=60.0)] = 10.0
    """No pong this long after a ping: the socket is half-open, replace it."""
    silence_ping_s: Annotated[float, Meta(gt=0.0, le=55.0)] = 5.0
    """Nothing received for this long (books come every 0.5 s): ping at once."""
    private_key_file: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None
    """A file holding the API (agent) wallet's key, for live trading; the environment's
    ``HYPERLIQUID_PRIVATE_KEY`` wins. The key is never logged or shown."""
    dms_ahead_s: Annotated[float, Meta(ge=5.0, le=3600.0)] = 15.0
    """Dead man's switch: every order is cancelled this long after we stop refreshing it."""
    dms_refresh_s: Annotated[float, Meta(gt=0.0, le=3600.0)] = 5.0
    account_interval_s: Annotated[float, Meta(ge=1.0, le=3600.0)] = 60.0
    """Live: account value and position are synced from the venue this often."""
    state_dir: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None
    """Live: where the state file of each account and market is kept (latched halts, the UTC
    day's opening equity); unset: ``$XDG_STATE_HOME/market-maker``, else
    ``~/.local/state/market-maker``."""


OptPositive = Annotated[float, Meta(gt=0.0, le=1e12)] | None
OptNonNegative = Annotated[float, Meta(ge=0.0, le=1e12)] | None
OptRate = Annotated[float, Meta(ge=1e-6, le=10_000.0)] | None
"""A simulated flow's rate, per second: beyond 10,000 trades a second a backtest second is
millions of events."""


class SimulatorConfig(_Config, frozen=True):
    """The simulated market (``[simulator]``), over the scenario's: every unset field keeps the
    scenario's value. ``market-maker calibrate -o`` writes this section from a capture, so that
    ``backtest --scenario calm --config overlay.toml`` is a synthetic market with the capture's
    price scale, volatility, flow and informed flow (``venues/sim.py``)."""

    symbol: Annotated[str, Meta(min_length=1, max_length=40)] | None = None
    mid0: OptPositive = None
    """Starting mid, quote currency."""
    tick_size: Annotated[float, Meta(ge=1e-8, le=1e6)] | None = None
    lot_size: Annotated[float, Meta(ge=1e-8, le=1e6)] | None = None
    min_notional: Annotated[float, Meta(ge=0.0, le=1e9)] | None = None
    sigma: Annotated[float, Meta(gt=0.0, le=0.1)] | None = None
    """Total volatility of the mid, fraction per sqrt second (informed moves included)."""
    flow_mu: OptRate = None
    """Buy side's (and, without ``sell_flow_*``, both sides') uninformed Hawkes baseline, /s."""
    flow_alpha: Annotated[float, Meta(ge=0.0, le=1e6)] | None = None
    flow_beta: Annotated[float, Meta(ge=1e-6, le=1e6)] | None = None
    sell_flow_mu: OptRate = None
    sell_flow_alpha: Annotated[float, Meta(ge=0.0, le=1e6)] | None = None
    sell_flow_beta: Annotated[float, Meta(ge=1e-6, le=1e6)] | None = None
    k: Annotated[float, Meta(ge=1e-3, le=1e3)] | None = None
    """Depth decay of market orders, per tick."""
    mean_order_size: OptPositive = None
    """Mean aggressive order, contracts."""
    book_level_size: OptPositive = None
    """Mean displayed size of the top level, contracts."""
    informed_share: Annotated[float, Meta(ge=0.0, lt=1.0)] | None = None
    """Share of aggressive orders that know the next move (0: none)."""
    informed_jump_bps: Annotated[float, Meta(ge=0.01, le=10_000.0)] | None = None
    informed_jump_rate_per_s: Annotated[float, Meta(gt=0.0, le=1_000.0)] | None = None
    informed_lead_s: Annotated[float, Meta(ge=0.0, le=60.0)] | None = None
    imbalance_sd: Annotated[float, Meta(ge=0.0, le=2.0)] | None = None
    imbalance_mean: Annotated[float, Meta(gt=-0.9, lt=0.9)] | None = None
    imbalance_halflife_s: Annotated[float, Meta(gt=0.0, le=3600.0)] | None = None
    imbalance_beta_bps: Annotated[float, Meta(ge=-1000.0, le=1000.0)] | None = None
    venue_model: Literal["hyperliquid", "fifo"] | None = None
    """How the venue handles our requests: ``fifo`` (Binance-like) or ``hyperliquid``."""
    market_data_latency_ms: Annotated[float, Meta(ge=0.0, le=10_000.0)] | None = None
    """Market data reaches the engine this late (plus a fifth of it as mean jitter); calibrate
    writes the capture's own feed latency."""

    def __post_init__(self) -> None:
        if (
            self.flow_alpha is not None
            and self.flow_beta is not None
            and self.flow_alpha >= self.flow_beta
        ):
            raise ValueError("flow_alpha must be < flow_beta (a stationary Hawkes flow)")
        if (
            self.sell_flow_alpha is not None
            and self.sell_flow_beta is not None
            and self.sell_flow_alpha >= self.sell_flow_beta
        ):
            raise ValueError("sell_flow_alpha must be < sell_flow_beta")

    def overrides(self) -> dict[str, Any]:
        """The fields that are set, by name (the simulator's ``SimParams`` names)."""
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not None
        }


class AppConfig(_Config, frozen=True):
    """The whole configuration file."""

    risk: DynamicRiskConfig = field(default_factory=DynamicRiskConfig)
    kill_switch: KillSwitchConfig = field(default_factory=KillSwitchConfig)
    estimators: EstimatorsConfig = field(default_factory=EstimatorsConfig)
    sizing: SizingConfig = field(default_factory=SizingConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    ladder: LadderConfig = field(default_factory=LadderConfig)
    quoting: QuotingConfig = field(default_factory=QuotingConfig)
    orders: OrdersConfig = field(default_factory=OrdersConfig)
    instrument: InstrumentConfig = field(default_factory=InstrumentConfig)
    fees: FeesConfig = field(default_factory=FeesConfig)
    funding: FundingConfig = field(default_factory=FundingConfig)
    input: InputConfig = field(default_factory=InputConfig)
    venue: VenueConfig = field(default_factory=VenueConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)


STRATEGY_KINDS: tuple[str, ...] = typing.get_args(StrategyKind)


def with_strategy(config: AppConfig, kind: StrategyKind | str | None) -> AppConfig:
    """``config`` with ``[strategy] kind`` replaced (unchanged for None)."""
    if kind is None:
        return config
    if kind not in STRATEGY_KINDS:
        raise ConfigError(f"strategy.kind: unknown strategy {kind!r}; one of {STRATEGY_KINDS}")
    strategy = msgspec.structs.replace(config.strategy, kind=kind)
    return msgspec.structs.replace(config, strategy=strategy)


def _reason_and_path(error: msgspec.ValidationError) -> tuple[str, str]:
    """Split msgspec's ``"reason - at `$.a.b`"`` into ``("a.b", "reason")``."""
    text = str(error)
    reason, sep, where = text.rpartition(" - at `")
    if not sep:
        return "", text
    return where.rstrip("`").removeprefix("$").lstrip("."), reason


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(data: dict[str, Any], env: Mapping[str, str], source: str) -> None:
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if len(parts) < 2 or not all(parts):
            continue  # MM_FOO is not a config path; leave it to whoever owns it
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{source}: {name}: {'.'.join(parts)} is not a table")
            node = child
        node[parts[-1]] = _parse_env_value(env[name])


def parse_config(
    text: str, *, source: str = "<config>", env: Mapping[str, str] | None = None
) -> AppConfig:
    """Decode TOML ``text`` into an ``AppConfig``, applying ``MM_`` overrides from ``env``."""
    data = parse_toml(text, source=source)
    if env:
        _apply_env(data, env, source)
    return build_config(data, source=source)


def parse_toml(text: str, *, source: str = "<config>") -> dict[str, Any]:
    """TOML ``text`` as plain data; a syntax error is a ``ConfigError`` naming ``source``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: nested too deeply") from None


# The unit of a numeric setting, from the end of its name ...
_UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_per_s", "per second"),
    ("_ms", "milliseconds"),
    ("_s", "seconds"),
    ("_usd", "USD"),
    ("_bps", "basis points"),
    ("_pct", "percent"),
    ("_ticks", "ticks"),
    ("_contracts", "contracts"),
    ("_fraction", "a fraction"),
    ("_ratio", "a ratio"),
    ("_multiple", "a multiple"),
    ("_multiplier", "a multiple"),
)
# ... or, for names without one, from this table.
_UNITS: dict[str, str] = {
    "risk_fraction": "a fraction of account value",
    "limit_tolerance": "a fraction of the exact limit",
    "num_sigmas": "standard deviations",
    "sigma_prior": "a fraction of price per sqrt(second)",
    "sigma_floor": "a fraction of price per sqrt(second)",
    "sigma": "a fraction of price per sqrt(second)",
    "max_leverage": "a multiple of account value",
    "confidence_samples": "samples",
    "max_position": "contracts",
    "max_position_cap": "contracts",
    "order_size": "contracts",
    "target_liquidity": "contracts",
    "mean_order_size": "contracts",
    "book_level_size": "contracts",
    "lot_size": "contracts",
    "contract_size": "base units per contract (inverse: USD per contract)",
    "base_balance": "base units",
    "quote_balance": "quote currency (USD)",
    "rate": "a fraction of position value per funding interval",
    "tick_size": "quote currency (USD)",
    "mid0": "quote currency (USD)",
    "min_notional": "USD",
    "max_rejections": "rejections",
    "mu": "per second",
    "alpha": "per second",
    "beta": "per second",
    "flow_mu": "per second",
    "flow_alpha": "per second",
    "flow_beta": "per second",
    "sell_flow_mu": "per second",
    "sell_flow_alpha": "per second",
    "sell_flow_beta": "per second",
    "min_events": "trades",
    "a_prior": "fills per second",
    "k_prior": "per tick",
    "k": "per tick",
    "gamma": "per tick per order",
    "xi": "per tick per order",
    "cascade_widening": "a fraction per unit of ratio",
    "gamma_utilisation_scale": "a multiple",
    "levels": "levels a side",
    "ratio": "a ratio",
    "size_tolerance": "a fraction",
    "request_burst": "requests",
    "sz_decimals": "decimals",
    "max_price_move": "a fraction of the mid",
    "informed_share": "a fraction",
    "imbalance_sd": "a fraction",
    "imbalance_mean": "a fraction",
    "backup_levels": "orders a side",
    "backup_ratio": "a ratio",
    "adverse_prior_fills": "fills",
    "adverse_halflife_fills": "fills",
    "toxic_enter": "a fraction of the flow",
    "toxic_exit": "a fraction of the flow",
}


def field_unit(path: str) -> str | None:
    """The unit of the numeric setting at ``path`` (``estimators.intensity.step_s``): what the
    config's errors add to a range."""
    name = path.rpartition(".")[2]
    if name in _UNITS:
        return _UNITS[name]
    return next((unit for end, unit in _UNIT_SUFFIXES if name.endswith(end)), None)


def build_config(data: Mapping[str, Any], *, source: str = "<config>") -> AppConfig:
    """An ``AppConfig`` from plain TOML data, validated as a file is: one ``ConfigError``
    naming ``source``, the field and the reason (a range with the field's unit)."""
    _require_sane_numbers(data, source, "")
    try:
        return msgspec.convert(data, AppConfig)
    except msgspec.ValidationError as exc:
        path, reason = _reason_and_path(exc)
        unit = field_unit(path) if path and reason.startswith("Expected `") else None
        if unit is not None and any(op in reason for op in ("<", ">")):
            reason = f"{reason} ({unit})"
        where = f"{path}: " if path else ""
        raise ConfigError(f"{source}: {where}{reason}") from None


_MAX_MAGNITUDE = 1e15


def _require_sane_numbers(data: object, source: str, path: str, depth: int = 0) -> None:
    """Every number in a config is finite and within +/-1e15 (no setting means more)."""
    if depth > 20:
        raise ConfigError(f"{source}: {path or 'the file'}: nested too deeply")
    if isinstance(data, dict):
        for key, value in data.items():
            _require_sane_numbers(value, source, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            _require_sane_numbers(value, source, f"{path}[{i}]", depth + 1)
    elif (
        isinstance(data, float | int)
        and not isinstance(data, bool)
        and not -_MAX_MAGNITUDE <= data <= _MAX_MAGNITUDE  # also NaN and inf
    ):
        raise ConfigError(f"{source}: {path}: {data!r}: must be finite, |x| <= 1e15")


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> AppConfig:
    """Load ``path`` (TOML) into an ``AppConfig``; ``env`` defaults to ``os.environ``."""
    source = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    return parse_config(text, source=source, env=os.environ if env is None else env)


def default_config_text() -> str:
    """The commented default configuration shipped with the package."""
    return resources.files("market_maker").joinpath("default.toml").read_text(encoding="utf-8")
