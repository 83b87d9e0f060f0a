"""Fit the engine's market parameters from a capture: ``market-maker calibrate --data FILE``.

- Hawkes ``(mu, alpha, beta)`` of aggressive orders by maximum likelihood, with 95 % intervals
  from the observed information;
- fill intensity ``A`` and ``k`` by running the capture's mids and trades through the engine's
  own ``FillIntensityEstimator`` (the same fit it makes live);
- volatility ``sigma`` (per sqrt second) through the engine's ``IncrementalVolStats``, with the
  usual ``sigma * (1 +/- 1.96 / sqrt(2 n))`` interval;
- the trade rate with its Poisson interval;
- for the simulator (``[simulator]``): the market's mid, tick, lot and minimum notional, a
  Hawkes fit per side, the mean order and top-of-book sizes, and the informed flow and book
  imbalance (``backtest/flowfit.py``: the informed share from the trade-signed mid move, the
  size and rate of the moves from the mid's 0.1 s returns, the imbalance coefficient by
  regression of the next 1 s mid change, its persistence from its autocorrelation). The uninformed
  flow the overlay gives the simulator is the fitted flow less the informed share (the
  informed bursts make up the rest), so the trade rate stays the capture's.

The result prints as a table and writes as a config overlay that ``--config`` accepts, so
``backtest --scenario calm --config overlay.toml`` runs a synthetic market with the capture's
statistics.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec
import numpy as np
import numpy.typing as npt

from market_maker.backtest.flowfit import FlowFit, fit_flow
from market_maker.config import AppConfig
from market_maker.estimators import FillIntensityEstimator, IncrementalVolStats
from market_maker.model import BookUpdate, Instrument, Side, Trade
from market_maker.venues.replay import ReplayMarket
from market_maker.venues.sim_flow import imbalance_variance_per_s

__all__ = [
    "Calibration",
    "calibrate",
    "calibrate_events",
    "format_calibration",
    "hawkes_identified",
    "overlay_toml",
    "simulator_overlay",
]

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
    mid0: float = math.nan
    """The first mid."""
    lot_size: float = math.nan
    min_notional: float = 0.0
    buy_hawkes: tuple[float, float, float] | None = None
    """(mu, alpha, beta) of buy orders alone, and of sell orders below."""
    sell_hawkes: tuple[float, float, float] | None = None
    buy_share: float = math.nan
    mean_order_size: float = math.nan
    top_size: float = math.nan
    """Mean displayed size at the best bid and at the best ask."""
    flow: FlowFit | None = None
    feed_latency_ms: float = math.nan
    """The capture's market-data latency (``session.capture_feed_latency``: its receive minus
    venue stamps, or the stated default where its clocks are set apart); NaN: not read."""
    feed_latency_source: str = ""
    adverse_bps: float = math.nan
    """The adverse move ``quoting.adverse_horizon_s`` after a quote resting 1.5 bps from the
    mid is hit (``flowfit.quote_hits``, engine-free), bps: the ``[quoting]`` floor's prior."""
    adverse_hits: int = 0
    toxic_enter: float = math.nan
    """The 90th percentile of the per-side trade intensities' imbalance ``|buy - sell| /
    (buy + sell)`` at the aggressive orders (the engine's per-side Hawkes): the guard's
    threshold, so that it holds a side back about a tenth of the time; the exit is the 75th."""
    toxic_exit: float = math.nan
    fill_fitted: bool = True
    """Whether A and k came from the capture's trades (False: the estimator's priors)."""
    sigma_floor: float = 0.0
    """The engine's floor on sigma (``risk.sigma_floor``): a fit under it is not used."""

    @property
    def branching_ratio(self) -> float:
        return self.alpha / self.beta

    def unidentified(self) -> dict[str, str]:
        """The fits the capture does not pin down, each with the reason: ``hawkes``, ``fill``
        (A and k), ``sigma``, ``flow`` (informed flow and imbalance). Nothing of these is
        written to an overlay unless forced."""
        out: dict[str, str] = {}
        if not hawkes_identified(self.mu, self.alpha, self.beta):
            out["hawkes"] = (
                f"not identified: {self.trades} orders do not pin down their clustering "
                f"(the fit ran to beta = {self.beta:.3g}/s)"
            )
        elif self.branching_ratio >= 0.98:
            out["hawkes"] = (
                f"out of range: branching ratio {self.branching_ratio:.3f} at the boundary "
                "(a flow that never settles)"
            )
        if not self.fill_fitted:
            out["fill"] = "prior: too few trades reached the depths the fit reads"
        if self.sigma_samples < 30:
            out["sigma"] = f"not identified: {self.sigma_samples} one-second samples (30 needed)"
            if self.sigma < self.sigma_floor:
                out["sigma"] += f", {self.sigma:.3g} under the floor {self.sigma_floor:.3g}"
        elif not self.sigma >= self.sigma_floor:
            out["sigma"] = (
                f"out of range: {self.sigma:.3g} under the engine's floor "
                f"{self.sigma_floor:.3g} (risk.sigma_floor)"
            )
        if self.flow is None:
            out["flow"] = "not identified: too few books or orders"
        return out


def calibrate(path: str | Path, config: AppConfig | None = None) -> Calibration:
    """Fit everything ``market-maker calibrate`` reports from the capture at ``path``."""
    cfg = config or AppConfig()
    from market_maker.backtest.session import capture_feed_latency

    market = ReplayMarket(path, overrides=cfg.instrument)
    times = market.trade_times_s(10_000_000)
    if len(times) < 10:
        raise ValueError(f"{path}: {len(times)} trades; calibration needs at least 10")
    feed = capture_feed_latency(Path(path), market.instrument)
    fitted = calibrate_events(
        _drain(market),
        source=str(path),
        venue=market.venue,
        symbol=market.symbol,
        instrument=market.instrument,
        config=cfg,
        duration_s=times[-1] - times[0],
    )
    return msgspec.structs.replace(
        fitted, feed_latency_ms=feed.base_ms, feed_latency_source=feed.source
    )


def _drain(market: ReplayMarket) -> Iterator[BookUpdate | Trade]:
    while market.peek_ns() is not None:
        yield market.pop()


def calibrate_events(
    events: Iterable[BookUpdate | Trade],
    *,
    source: str,
    venue: str,
    symbol: str,
    instrument: Instrument,
    config: AppConfig | None = None,
    duration_s: float,
) -> Calibration:
    """The calibration of a market given as its books and trades in time order (a capture's,
    or a simulated market's for a round trip). An aggressive order is the prints of one taker
    order: consecutive prints with the same exchange time (else receive time) and side.
    ``duration_s`` (about the market's length) sizes the fill-intensity fit's window."""
    from market_maker.estimators.fit import fit_hawkes  # scipy: only when calibrating

    cfg = config or AppConfig()
    fi = cfg.estimators.intensity
    intensity = FillIntensityEstimator(
        tick_size=instrument.tick_size,
        step_s=fi.step_s,
        window_s=max(fi.window_s, duration_s + fi.step_s * 10),
        max_depth_ticks=fi.max_depth_ticks,
        refit_interval_s=fi.refit_interval_s,
        a_prior=fi.a_prior,
        k_prior=fi.k_prior,
    )
    vol = IncrementalVolStats(sample_interval_s=cfg.estimators.volatility.sample_interval_s)
    first = last = None
    book_t: list[float] = []
    mids: list[float] = []
    imbalance: list[float] = []
    top = 0.0
    order_t: list[float] = []
    order_buy: list[bool] = []
    order_size: list[float] = []
    bid_px: list[float] = []
    ask_px: list[float] = []
    trade_t: list[float] = []
    trade_px: list[float] = []
    trade_sign: list[float] = []
    last_key: tuple[int, bool] | None = None
    for ev in events:
        t_s = ev.ts_ns * _NS
        first = t_s if first is None else first
        last = t_s
        if isinstance(ev, BookUpdate):
            if ev.bids and ev.asks:
                (bid, bid_size), (ask, ask_size) = ev.bids[0], ev.asks[0]
                mid = 0.5 * (bid + ask)
                intensity.on_mid(mid, t_s)
                vol.update(mid, t_s)
                if bid_size + ask_size > 0.0:
                    book_t.append(t_s)
                    mids.append(mid)
                    bid_px.append(bid)
                    ask_px.append(ask)
                    imbalance.append((bid_size - ask_size) / (bid_size + ask_size))
                    top += bid_size + ask_size
        else:
            buy = ev.aggressor is Side.BUY
            intensity.update(ev.price, t_s, buy)
            trade_t.append(t_s)
            trade_px.append(ev.price)
            trade_sign.append(1.0 if buy else -1.0)
            key = (ev.exchange_ts_ns if ev.exchange_ts_ns is not None else ev.ts_ns, buy)
            if key == last_key:
                order_size[-1] += ev.size
            else:
                last_key = key
                order_t.append(t_s)
                order_buy.append(buy)
                order_size.append(ev.size)
    times = np.array(order_t)
    n = len(order_t)
    if n < 10:
        raise ValueError(f"{source}: {n} trades; calibration needs at least 10")
    fit = fit_hawkes(times)
    buy_mask = np.array(order_buy)
    sides: list[tuple[float, float, float] | None] = []
    for mask in (buy_mask, ~buy_mask):
        try:
            side = fit_hawkes(times[mask], horizon_s=float(times[-1]))
            sides.append((side.mu, side.alpha, side.beta))
        except ValueError:
            sides.append(None)
    duration = (last or 0.0) - (first or 0.0)
    span = float(times[-1] - times[0])
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
    flow: FlowFit | None = None
    if len(book_t) >= 100 and sigma > 0.0:
        try:
            flow = fit_flow(
                book_t=np.array(book_t),
                mid=np.array(mids),
                imbalance=np.array(imbalance),
                order_t=times,
                order_sign=np.where(buy_mask, 1.0, -1.0),
                sigma=sigma,
                tick_size=instrument.tick_size,
            )
        except ValueError:
            flow = None
    ci = fit.ci95 or (None, None, None)
    adverse, hits = math.nan, 0
    if len(book_t) >= 100 and bid_px:
        from market_maker.backtest.flowfit import quote_hits

        got = quote_hits(
            book_t=np.array(book_t),
            bid=np.array(bid_px),
            ask=np.array(ask_px),
            trade_t=np.array(trade_t),
            trade_price=np.array(trade_px),
            trade_sign=np.array(trade_sign),
            depth_bps=1.5,
            horizons_s=(cfg.quoting.adverse_horizon_s,),
        )
        hits = got.hits
        label = f"{cfg.quoting.adverse_horizon_s:g}s"
        if hits >= 30:
            adverse = max(0.0, -got.markout_bps[label])
    h = cfg.estimators.hawkes
    # The per-side intensities as the engine will run them with this overlay: the fitted
    # Hawkes where the capture pins it down, else the config's.
    hawkes = (fit.mu, fit.alpha, fit.beta)
    if not hawkes_identified(*hawkes) or fit.alpha / fit.beta >= 0.98:
        hawkes = (h.mu, h.alpha, h.beta)
    enter, leave = _toxic_thresholds(times, buy_mask, hawkes)
    return Calibration(
        source=source,
        venue=venue,
        symbol=symbol,
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
        tick_size=instrument.tick_size,
        sigma=sigma,
        sigma_ci=sigma_ci,
        sigma_samples=samples,
        mid0=mids[0] if mids else math.nan,
        lot_size=instrument.lot_size,
        min_notional=instrument.min_notional,
        buy_hawkes=sides[0],
        sell_hawkes=sides[1],
        buy_share=float(buy_mask.mean()),
        mean_order_size=float(np.mean(order_size)),
        top_size=top / (2 * len(book_t)) if book_t else math.nan,
        flow=flow,
        adverse_bps=adverse,
        adverse_hits=hits,
        toxic_enter=enter,
        toxic_exit=leave,
        fill_fitted=bool(intensity.fitted),
        sigma_floor=cfg.risk.sigma_floor,
    )


def _toxic_thresholds(
    times: npt.NDArray[np.float64],
    buy: npt.NDArray[np.bool_],
    hawkes: tuple[float, float, float],
) -> tuple[float, float]:
    """The 90th and 75th percentiles of ``|buy - sell| / (buy + sell)`` of the engine's
    per-side Hawkes intensities (``hawkes`` as the engine runs them) just before each
    aggressive order."""
    from market_maker.estimators import IncrementalHawkes

    mu, alpha, beta = hawkes
    sides = (IncrementalHawkes(0.5 * mu, alpha, beta), IncrementalHawkes(0.5 * mu, alpha, beta))
    out: list[float] = []
    for t, b in zip(times.tolist(), buy.tolist(), strict=True):
        rb, rs = sides[0].intensity(t), sides[1].intensity(t)
        if rb + rs > 0.0:
            out.append(abs(rb - rs) / (rb + rs))
        sides[0 if b else 1].update(t)
    if len(out) < 100:
        return math.nan, math.nan
    hi, lo = np.percentile(np.array(out), [90.0, 75.0])
    return float(hi), float(lo)


def hawkes_identified(mu: float, alpha: float, beta: float) -> bool:
    """A Hawkes fit the data pins down: finite, stationary (``alpha < beta``) and with a memory
    of at least 0.1 ms. A few dozen orders whose prints share a stamp drive the likelihood to
    ``beta -> inf`` (the Hyperliquid capture: 31 orders, beta 1e13), which no config accepts."""
    return (
        all(math.isfinite(x) for x in (mu, alpha, beta)) and mu > 0.0 and 0.0 <= alpha < beta <= 1e4
    )


def simulator_overlay(c: Calibration, *, force: bool = False) -> dict[str, float | str]:
    """The ``[simulator]`` settings that make the simulator this market: its scale, volatility,
    uninformed flow per side (the fitted flow less the informed share), informed flow and
    imbalance. Informed moves and imbalance drift are scaled back, if need be, to leave the
    diffusion a tenth of ``sigma**2``. A fit the capture does not pin down
    (``Calibration.unidentified``) leaves the scenario's own value, unless ``force``."""
    bad = {} if force else c.unidentified()
    out: dict[str, float | str] = {
        "symbol": f"SIM-{c.symbol}"[:40],
        "venue_model": "hyperliquid" if c.venue == "hyperliquid" else "fifo",
    }
    if math.isfinite(c.mid0):
        out["mid0"] = c.mid0
    out["tick_size"] = c.tick_size
    if math.isfinite(c.lot_size):
        out["lot_size"] = c.lot_size
    out["min_notional"] = c.min_notional
    if c.sigma > 0.0 and "sigma" not in bad:
        out["sigma"] = c.sigma
    if math.isfinite(c.feed_latency_ms):
        # A backtest of the overlay delays market data as the capture's feed did.
        out["market_data_latency_ms"] = c.feed_latency_ms
    if c.k > 0.0 and math.isfinite(c.k) and "fill" not in bad:
        out["k"] = c.k
    if c.mean_order_size > 0.0:
        out["mean_order_size"] = c.mean_order_size
    if c.top_size > 0.0:
        out["book_level_size"] = c.top_size
    f = c.flow
    if "sigma" in bad:
        f = None  # informed moves are shares of a sigma the capture does not give
    share = f.informed_share if f is not None and f.informed_jump_rate_per_s > 0.0 else 0.0
    buy = c.buy_share if 0.0 < c.buy_share < 1.0 else 0.5
    for prefix, side, rate in (
        ("", c.buy_hawkes, c.trade_rate * buy),
        ("sell_", c.sell_hawkes, c.trade_rate * (1.0 - buy)),
    ):
        if side is None:
            continue
        mu, alpha, beta = side
        if not hawkes_identified(mu, alpha, beta):
            # Too few orders to fit their clustering: a Poisson flow at the side's rate.
            mu, alpha, beta = rate, 0.0, 1.0
        out[f"{prefix}flow_mu"] = mu * (1.0 - share)
        out[f"{prefix}flow_alpha"] = alpha
        out[f"{prefix}flow_beta"] = beta
    if f is None:
        # Nothing fitted of the informed flow or the imbalance: none in the simulated market
        # either (the scenario's own would carry more variance than this market's sigma).
        out["informed_share"] = 0.0
        out["imbalance_beta_bps"] = 0.0
        return out
    imb_var = imbalance_variance_per_s(
        beta_bps=f.imbalance_beta_bps,
        sd=f.imbalance_sd,
        halflife_s=f.imbalance_halflife_s,
        step_s=0.1,
    )
    budget = 0.9 * c.sigma * c.sigma
    beta_bps = f.imbalance_beta_bps
    if imb_var > 0.5 * budget:  # the drift takes at most half
        beta_bps *= math.sqrt(0.5 * budget / imb_var)
        imb_var = 0.5 * budget
    jump = f.informed_jump_bps * 1e-4
    rate = min(f.informed_jump_rate_per_s, max(0.0, budget - imb_var) / (2.0 * jump * jump))
    out["imbalance_sd"] = f.imbalance_sd
    out["imbalance_mean"] = f.imbalance_mean
    out["imbalance_halflife_s"] = f.imbalance_halflife_s
    out["imbalance_beta_bps"] = beta_bps
    if share > 0.0 and rate > 0.0:
        out["informed_share"] = share
        out["informed_jump_bps"] = f.informed_jump_bps
        out["informed_jump_rate_per_s"] = rate
        out["informed_lead_s"] = f.informed_lead_s
    else:
        out["informed_share"] = 0.0
    return out


def _ci(interval: Interval, fmt: str) -> str:
    if interval is None:
        return "-"
    lo, hi = interval
    return f"[{lo:{fmt}}, {hi:{fmt}}]"


_HOW = {"fit": "fit", "prior": "prior", "not identified": "no fit", "out of range": "range"}


def _how(c: Calibration, group: str) -> str:
    """How a value was obtained: ``fit``, ``prior``, ``no fit`` (not identified) or
    ``range`` (fitted, out of the range the engine can use)."""
    reason = c.unidentified().get(group)
    if reason is None:
        return "fit"
    return _HOW.get(reason.split(":", 1)[0], "no fit")


def format_calibration(c: Calibration) -> str:
    hawkes, fill, sigma = _how(c, "hawkes"), _how(c, "fill"), _how(c, "sigma")
    rows = [
        (
            "trade rate",
            f"{c.trade_rate:.4g}",
            _ci(c.trade_rate_ci, ".4g"),
            "aggressive orders/s",
            "fit",
        ),
        ("hawkes mu", f"{c.mu:.4g}", _ci(c.hawkes_ci[0], ".4g"), "per s", hawkes),
        ("hawkes alpha", f"{c.alpha:.4g}", _ci(c.hawkes_ci[1], ".4g"), "per s", hawkes),
        ("hawkes beta", f"{c.beta:.4g}", _ci(c.hawkes_ci[2], ".4g"), "per s", hawkes),
        ("branching", f"{c.branching_ratio:.3f}", "-", "alpha / beta", hawkes),
        ("fill A", f"{c.a:.4g}", "-", "fills/s at the mid", fill),
        ("fill k", f"{c.k:.4g}", "-", f"per tick of {c.tick_size:g}", fill),
        (
            "sigma",
            f"{c.sigma:.4g}",
            _ci(c.sigma_ci, ".4g"),
            f"/sqrt s, {c.sigma_samples} samples",
            sigma,
        ),
    ]
    for name, side in (("buy", c.buy_hawkes), ("sell", c.sell_hawkes)):
        if side is not None:
            rows.append(
                (
                    f"{name} hawkes",
                    f"{side[0]:.3g},{side[1]:.3g},{side[2]:.3g}",
                    "-",
                    "mu, alpha, beta",
                    "fit" if hawkes_identified(*side) else "no fit",
                )
            )
    f = c.flow
    if f is not None:
        a = f.trade_signed_bps
        flow_rows: list[tuple[str, str, str, str]] = [
            (
                "signed move",
                f"{a['1s']:.3f}",
                _ci(f.trade_signed_1s_ci, ".3f"),
                f"bps after an order at 1 s (0.1 s {a['0.1s']:.2f}, 10 s {a['10s']:.2f}, "
                f"60 s {a['60s']:.2f})",
            ),
            (
                "informed",
                f"{f.informed_share:.3f}",
                _ci(f.informed_share_ci, ".3f"),
                "share of aggressive orders",
            ),
            (
                "move size",
                f"{f.informed_jump_bps:.3f}",
                "-",
                f"bps mean, returns over {f.jump_threshold_bps:.2f} bps in 0.1 s",
            ),
            (
                "move rate",
                f"{f.informed_jump_rate_per_s:.3g}",
                "-",
                f"per s, {100 * f.jump_variance_share:.0f} % of sigma^2",
            ),
            ("lead", f"{f.informed_lead_s:.3f}", "-", "s, informed orders before their move"),
            (
                "imb. beta",
                f"{f.imbalance_beta_bps:.3f}",
                _ci(f.imbalance_beta_ci, ".3f"),
                f"bps next 1 s per unit imbalance (corr {f.imbalance_corr:.2f})",
            ),
            (
                "imb. sd",
                f"{f.imbalance_measured_sd:.3f}",
                "-",
                f"mean {f.imbalance_mean:+.2f}; {f.imbalance_sd:.2f} before the sim's clip",
            ),
            (
                "imb. memory",
                f"{f.imbalance_halflife_s:.3f}",
                "-",
                f"s half-life (autocorrelation {f.imbalance_acf_0_1s:.2f} at 0.1 s)",
            ),
        ]
        rows += [(*row, "fit") for row in flow_rows]
    if math.isfinite(c.adverse_bps):
        rows.append(
            (
                "adverse",
                f"{c.adverse_bps:.3f}",
                "-",
                f"bps against a quote 1.5 bps out, after a hit ({c.adverse_hits} hits)",
                "fit",
            )
        )
    if math.isfinite(c.toxic_enter):
        rows.append(
            (
                "toxic enter",
                f"{c.toxic_enter:.3f}",
                "-",
                f"|buy - sell| / (buy + sell), 90th pct (exit {c.toxic_exit:.2f}: 75th)",
                "fit",
            )
        )
    if math.isfinite(c.feed_latency_ms):
        rows.append(
            (
                "feed latency",
                f"{c.feed_latency_ms:.1f}",
                "-",
                f"ms, market data behind the venue ({c.feed_latency_source})",
                "fit" if c.feed_latency_source == "capture" else "prior",
            )
        )
    lines = [
        f"Calibration  {c.source}  ({c.venue} {c.symbol}, {c.trades:,} aggressive orders, "
        f"{c.duration_s:,.0f} s)",
        f"  {'parameter':<13} {'value':>10}  {'how':<6} {'95 % interval':<24} unit",
    ]
    lines += [f"  {n:<13} {v:>10}  {how:<6} {ci:<24} {u}" for n, v, ci, u, how in rows]
    bad = c.unidentified()
    if bad:
        lines.append("  not written to an overlay (--force writes them):")
        names = {"hawkes": "hawkes", "fill": "fill A, k", "sigma": "sigma", "flow": "informed"}
        lines += [f"    {names[k]}: {why}" for k, why in bad.items()]
    return "\n".join(lines)


def overlay_toml(c: Calibration, *, force: bool = False) -> str:
    """A config overlay (accepted by ``--config``) with a header saying where it came from.
    A fit the capture does not pin down (``Calibration.unidentified``) is left out, with its
    reason as a comment, unless ``force``."""
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    bad = {} if force else c.unidentified()
    intensity = (
        ["[estimators.intensity]", f"a_prior = {c.a:.6g}", f"k_prior = {c.k:.6g}", ""]
        if "fill" not in bad
        else [f"# [estimators.intensity] left at its defaults ({bad['fill']})", ""]
    )
    if c.sigma > 0.0 and "sigma" not in bad:
        risk = ["[risk]", f"sigma_prior = {c.sigma:.6g}", ""]
    elif "sigma" in bad:
        risk = [f"# [risk] sigma_prior left at its default ({bad['sigma']})", ""]
    else:
        risk = []
    return "\n".join(
        [
            f"# market-maker calibrate, {today}: fitted on {Path(c.source).name}",
            f"# ({c.venue} {c.symbol}, {c.trades:,} aggressive orders over {c.duration_s:,.0f} s).",
            "# Hawkes: maximum likelihood; A and k: the engine's own fill-intensity fit; sigma:",
            "# Welford on the mid sampled every second. Use with --config, or copy the sections",
            "# into your config. Unlisted settings keep their defaults.",
            "",
            *_hawkes_section(c, force=force),
            *intensity,
            *risk,
            *_quoting_section(c, bad),
            "# The simulated market of `backtest --scenario NAME --config THIS`: the capture's",
            "# scale, volatility, flow per side (less the informed share), informed flow and",
            "# book imbalance (backtest/flowfit.py).",
            "[simulator]",
            *(f"{k} = {_toml_value(v)}" for k, v in simulator_overlay(c, force=force).items()),
            "",
        ]
    )


def _quoting_section(c: Calibration, bad: dict[str, str]) -> list[str]:
    """``[quoting]``'s numbers from the capture; the switches stay off (turn each on)."""
    lines: list[str] = []
    f = c.flow
    if f is not None and "flow" not in bad:
        lines.append(f"imbalance_beta_bps = {f.imbalance_beta_bps:.6g}")
    if math.isfinite(c.adverse_bps):
        lines.append(f"adverse_prior_bps = {c.adverse_bps:.6g}")
    if math.isfinite(c.toxic_enter) and c.toxic_exit <= c.toxic_enter and c.toxic_enter > 0.0:
        lines.append(f"toxic_enter = {c.toxic_enter:.6g}")
        lines.append(f"toxic_exit = {c.toxic_exit:.6g}")
    if not lines:
        return []
    return [
        "# What the quotes price beyond GLFT: switch each on with fair_value, adverse_floor",
        "# and toxic_guard = true (the floor adds the market's maker fee; maker_fee_bps sets it).",
        "[quoting]",
        *lines,
        "",
    ]


def _hawkes_section(c: Calibration, *, force: bool = False) -> list[str]:
    reason = c.unidentified().get("hawkes")
    if reason is None or (force and hawkes_identified(c.mu, c.alpha, c.beta)):
        return [
            "[estimators.hawkes]",
            f"mu = {c.mu:.6g}",
            f"alpha = {c.alpha:.6g}",
            f"beta = {c.beta:.6g}",
            "",
        ]
    return [f"# [estimators.hawkes] left at its defaults ({reason})", ""]


def _toml_value(value: float | str) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return repr(float(f"{value:.6g}"))
