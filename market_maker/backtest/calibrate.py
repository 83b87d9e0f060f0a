"""Fit the engine's market parameters from a capture: ``market-maker calibrate --data FILE``.

- Hawkes ``(mu, alpha, beta)`` of aggressive orders by maximum likelihood, with 95 % intervals
  from the observed information;
- fill intensity ``A`` and ``k`` by running the capture's mids and trades through the engine's
  own ``FillIntensityEstimator`` (the same fit it makes live);
- volatility ``sigma`` (per sqrt second) through the engine's ``IncrementalVolStats``, with the
  usual ``sigma * (1 +/- 1.96 / sqrt(2 n))`` interval;
- the trade rate with its Poisson interval.

The result prints as a table and writes as a config overlay that ``--config`` accepts.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import msgspec

from market_maker.config import AppConfig
from market_maker.estimators import FillIntensityEstimator, IncrementalVolStats
from market_maker.model import BookUpdate, Side
from market_maker.venues.replay import ReplayMarket

__all__ = ["Calibration", "calibrate", "format_calibration", "overlay_toml"]

_NS = 1e-9
Interval = tuple[float, float] | None


class Calibration(msgspec.Struct, frozen=True, kw_only=True):
    source: str
    venue: str
    symbol: str
    duration_s: float
    trades: int
    """Aggressive orders (the prints of one order count once)."""
    trade_rate: float
    trade_rate_ci: Interval
    mu: float
    alpha: float
    beta: float
    hawkes_ci: tuple[Interval, Interval, Interval]
    a: float
    k: float
    """Per tick of the instrument."""
    tick_size: float
    sigma: float
    sigma_ci: Interval
    sigma_samples: int

    @property
    def branching_ratio(self) -> float:
        return self.alpha / self.beta


def calibrate(path: str | Path, config: AppConfig | None = None) -> Calibration:
    """Fit everything ``market-maker calibrate`` reports from the capture at ``path``."""
    from market_maker.estimators.fit import fit_hawkes  # scipy: only when calibrating

    cfg = config or AppConfig()
    market = ReplayMarket(path, overrides=cfg.instrument)
    times = market.trade_times_s(10_000_000)
    if len(times) < 10:
        raise ValueError(f"{path}: {len(times)} trades; calibration needs at least 10")
    fit = fit_hawkes(times)
    fi = cfg.estimators.intensity
    intensity = FillIntensityEstimator(
        tick_size=market.instrument.tick_size,
        step_s=fi.step_s,
        window_s=max(fi.window_s, fit.duration_s + fi.step_s * 10),
        max_depth_ticks=fi.max_depth_ticks,
        refit_interval_s=fi.refit_interval_s,
        a_prior=fi.a_prior,
        k_prior=fi.k_prior,
    )
    vol = IncrementalVolStats(sample_interval_s=cfg.estimators.volatility.sample_interval_s)
    first = last = None
    while market.peek_ns() is not None:
        ev = market.pop()
        t_s = ev.ts_ns * _NS
        first = t_s if first is None else first
        last = t_s
        if isinstance(ev, BookUpdate):
            if ev.bids and ev.asks:
                mid = 0.5 * (ev.bids[0][0] + ev.asks[0][0])
                intensity.on_mid(mid, t_s)
                vol.update(mid, t_s)
        else:
            intensity.update(ev.price, t_s, ev.aggressor is Side.BUY)
    duration = (last or 0.0) - (first or 0.0)
    n = len(times)
    span = times[-1] - times[0]
    rate = (n - 1) / span if span > 0 else math.nan
    rate_ci = (
        (rate - 1.96 * math.sqrt(n) / span, rate + 1.96 * math.sqrt(n) / span) if span > 0 else None
    )
    samples = vol.count
    sigma = vol.sigma
    sigma_ci = (
        (sigma * (1 - 1.96 / math.sqrt(2 * samples)), sigma * (1 + 1.96 / math.sqrt(2 * samples)))
        if samples >= 2
        else None
    )
    ci = fit.ci95 or (None, None, None)
    return Calibration(
        source=str(path),
        venue=market.venue,
        symbol=market.symbol,
        duration_s=duration,
        trades=n,
        trade_rate=rate,
        trade_rate_ci=rate_ci,
        mu=fit.mu,
        alpha=fit.alpha,
        beta=fit.beta,
        hawkes_ci=(ci[0], ci[1], ci[2]),
        a=intensity.a,
        k=intensity.k,
        tick_size=market.instrument.tick_size,
        sigma=sigma,
        sigma_ci=sigma_ci,
        sigma_samples=samples,
    )


def _ci(interval: Interval, fmt: str) -> str:
    if interval is None:
        return "-"
    lo, hi = interval
    return f"[{lo:{fmt}}, {hi:{fmt}}]"


def format_calibration(c: Calibration) -> str:
    rows = [
        ("trade rate", f"{c.trade_rate:.4g}", _ci(c.trade_rate_ci, ".4g"), "aggressive orders/s"),
        ("hawkes mu", f"{c.mu:.4g}", _ci(c.hawkes_ci[0], ".4g"), "per s"),
        ("hawkes alpha", f"{c.alpha:.4g}", _ci(c.hawkes_ci[1], ".4g"), "per s"),
        ("hawkes beta", f"{c.beta:.4g}", _ci(c.hawkes_ci[2], ".4g"), "per s"),
        ("branching", f"{c.branching_ratio:.3f}", "-", "alpha / beta"),
        ("fill A", f"{c.a:.4g}", "-", "fills/s at the mid"),
        ("fill k", f"{c.k:.4g}", "-", f"per tick of {c.tick_size:g}"),
        ("sigma", f"{c.sigma:.4g}", _ci(c.sigma_ci, ".4g"), f"/sqrt s, {c.sigma_samples} samples"),
    ]
    lines = [
        f"Calibration  {c.source}  ({c.venue} {c.symbol}, {c.trades:,} aggressive orders, "
        f"{c.duration_s:,.0f} s)",
        f"  {'parameter':<13} {'value':>10}  {'95 % interval':<24} unit",
    ]
    lines += [f"  {n:<13} {v:>10}  {ci:<24} {u}" for n, v, ci, u in rows]
    return "\n".join(lines)


def overlay_toml(c: Calibration) -> str:
    """A config overlay (accepted by ``--config``) with a header saying where it came from."""
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    return "\n".join(
        [
            f"# market-maker calibrate, {today}: fitted on {Path(c.source).name}",
            f"# ({c.venue} {c.symbol}, {c.trades:,} aggressive orders over {c.duration_s:,.0f} s).",
            "# Hawkes: maximum likelihood; A and k: the engine's own fill-intensity fit; sigma:",
            "# Welford on the mid sampled every second. Use with --config, or copy the sections",
            "# into your config. Unlisted settings keep their defaults.",
            "",
            "[estimators.hawkes]",
            f"mu = {c.mu:.6g}",
            f"alpha = {c.alpha:.6g}",
            f"beta = {c.beta:.6g}",
            "",
            "[estimators.intensity]",
            f"a_prior = {c.a:.6g}",
            f"k_prior = {c.k:.6g}",
            "",
            *(["[risk]", f"sigma_prior = {c.sigma:.6g}", ""] if c.sigma > 0.0 else []),
        ]
    )
