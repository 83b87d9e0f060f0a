"""Backtest reports: a text summary for terminals and a directory with JSON and PNG plots."""

from __future__ import annotations

import csv
import datetime as dt
import math
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from market_maker.backtest.analytics import MARKOUT_HORIZONS_S, FillRecord
from market_maker.backtest.runner import BacktestResult, Latencies, Recording
from market_maker.risk import PositionSizer

__all__ = [
    "MAX_FILL_MARKERS",
    "fill_markers",
    "format_compare",
    "format_summary",
    "write_compare",
    "write_fills_csv",
    "write_report",
]


def _sharpe(value: float | None) -> str:
    return "n/a (under 1 h)" if value is None else f"{value:,.2f}"


def _bps(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole > 0.0 else "n/a"


def _why_no_fills(r: BacktestResult) -> list[str]:
    spread = r.mean_quoted_spread_bps
    wide = f"{spread:.1f} bps wide on average" if spread is not None else "one-sided"
    knob = "as_horizon_s or gamma" if r.strategy == "avellaneda_stoikov" else "gamma"
    return [
        f"  no fills       quotes {wide}; no trade reached them.",
        f"                 Narrow them: [strategy] {knob}, or spread_multiplier",
    ]


def _quoting_line(q: dict[str, float]) -> str:
    """What the ``[quoting]`` features did: the fair value's mean distance from the mid, the
    adverse floor used (and the adverse move at the end), the guard's share of cycles."""
    parts = []
    if "fair_shift_bps" in q:
        parts.append(f"fair value {q['fair_shift_bps']:.2f} bps off the mid")
    if "floor_bps" in q:
        parts.append(
            f"floor {q['floor_bps']:.2f} bps (adverse {q.get('adverse_bps', math.nan):.2f} + fee)"
        )
    if "toxic_share" in q:
        parts.append(f"guard {q['toxic_share']:.0%} of cycles")
    return "  features       " + "; ".join(parts)


def _latency_lines(lat: Latencies) -> list[str]:
    feed = f"feed {lat.feed_ms:,.1f} ms + {lat.feed_jitter_ms:,.1f} jitter ({lat.feed_source})"
    line = f"  latency        {feed}, orders {lat.order_ms:g} ms, fills {lat.fill_ms:g} ms"
    return [line] + [f"                 {part}" for part in textwrap.wrap(lat.feed_detail, 63)]


def format_summary(r: BacktestResult) -> str:
    """A compact summary of a backtest, one fact a line, within 80 columns."""
    a = r.attribution
    head = f"Backtest  {r.source}  {r.strategy}  seed {r.seed}  {r.duration_s:,.0f} s"
    lines = [head + ("  (interrupted: partial)" if r.interrupted else "")]
    if r.market:
        lines.append(f"  market         {r.market}")
    split = (
        f"   spread {a.spread_capture_usd:+,.2f}  inventory {a.inventory_usd:+,.2f}  "
        f"fees {0.0 - a.fees_usd:+,.2f}"
        + (f"  funding {a.funding_usd:+,.2f}" if a.funding_payments else "")
        if a is not None
        else ""
    )
    lines.append(f"  PnL            {r.pnl_usd:,.2f} USD{split}")
    coin = r.settlement_currency
    inverse = coin not in ("USD", "USDT", "USDC", "FDUSD", "BUSD")
    if inverse:
        lines.append(
            f"                 {r.pnl_settlement:+,.8f} {coin}   fees {r.fees_settlement:,.8f} "
            f"{coin}   maker volume {r.maker_volume_settlement:,.6f} {coin}"
        )
    if r.funding_payments:
        lines.append(
            f"  funding        {r.funding_usd:+,.4f} USD over {r.funding_payments} payments"
            + (f" ({r.funding_settlement:+,.8f} {coin})" if inverse else "")
        )
    lines.append(
        f"  risk           max drawdown {r.max_drawdown_usd:,.2f} USD   Sharpe {_sharpe(r.sharpe)}"
    )
    lines.append(
        f"  fills          {r.fills:,d}   maker volume {r.maker_volume_usd:,.0f} USD   "
        f"fees {r.fees_usd:,.2f} USD"
    )
    if a is not None and r.fills:
        marks = "  ".join(
            f"{k} {_bps(v)}" + ("" if (e := a.markout_se_bps.get(k)) is None else f"±{e:.1f}")
            for k, v in a.markout_bps.items()
        )
        lines.append(f"  markouts       {marks} bps ±s.e., our way +")
    lines.append(
        f"  position       {r.final_position:.4f} at the end   max |q| {r.max_abs_position:.4f}"
        f"   max limit use {r.max_limit_utilisation:.1%}"
    )
    lines.append(
        f"  limit          {r.limit_breaches:d} breaches   binding: "
        + ", ".join(f"{k} {v:.0%}" for k, v in r.binding_share.items())
    )
    states = ", ".join(
        f"{k} {_share(v, r.duration_s)}" for k, v in r.time_in_state_s.items() if v > 0.0
    )
    lines.append(f"  states         {states or 'n/a'}   {r.kill_switch_events} kill-switch events")
    spread = r.mean_quoted_spread_bps
    d = r.duration_s
    lines.append(
        f"  quoting        {_share(r.time_quoting_s, d)} of the time, two-sided "
        f"{_share(r.time_two_sided_s, d)}, spread "
        + ("n/a" if spread is None else f"{spread:.1f} bps")
        + " at the venue"
    )
    lines.append(
        f"                 bid only {_share(r.time_bid_only_s, d)}, ask only "
        f"{_share(r.time_ask_only_s, d)}; wanted {_share(r.time_wanted_quoting_s, d)}, "
        f"two-sided {_share(r.time_wanted_two_sided_s, d)}"
    )
    share = r.resting_two_sided_share
    per_fill = r.requests_per_fill
    lines.append(
        "  at the venue   both sides resting "
        + ("n/a" if share is None else f"{share:.1%}")
        + " of the time active and wanting both"
    )
    lines.append(
        "  requests       "
        + ("n/a" if per_fill is None else f"{per_fill:.1f}")
        + f" per fill, {r.held_cycle_share:.1%} of cycles held for the budget"
    )
    if r.quoting:
        lines.append(_quoting_line(r.quoting))
    if r.fills == 0 and r.time_quoting_s > 0.0:
        lines.extend(_why_no_fills(r))
    if r.latency is not None:
        lines.extend(_latency_lines(r.latency))
    lines.append(
        f"  engine         {r.quote_cycles:,d} cycles  p50 {r.cycle_us_p50:.1f} us  "
        f"p99 {r.cycle_us_p99:.1f} us  {r.events_per_s:,.0f} ev/s"
    )
    if r.capture is not None:
        c = r.capture
        lines.append(
            f"  capture        {c['lines']:,d} lines, skipped {c['bad_lines']:,} bad and "
            f"{c['bad_timestamps']:,} bad stamps"
        )
        lines.append(
            f"                 reordered {c['reordered']:,}, displaced {c['displaced']:,}, "
            f"dropped {c['dropped']:,} (too late)"
        )
        lines.append(
            f"                 depth diffs {c.get('depth_diffs', 0):,} decoded, gaps "
            f"{c['depth_gaps']:,} (mended {c['depth_mended']:,}, "
            f"re-synced {c['depth_resyncs']:,})"
        )
    for note in r.notes:
        if not note.startswith("market: "):
            for i, part in enumerate(textwrap.wrap(note, 63)):
                lines.append(("  note           " if i == 0 else " " * 17) + part)
    if r.quoting_nothing:
        lines.append(f"  idle           {r.time_quoting_nothing_s:,.1f} s: {r.quoting_nothing}")
    for t, state, reasons in r.state_changes[:10]:
        why = "; ".join(reasons) if reasons else "clear"
        lines.append(f"  t={t:>9.1f} s  -> {state:<9} {why}")
    if len(r.state_changes) > 10:
        lines.append(f"  ... {len(r.state_changes) - 10} more state changes")
    return "\n".join(lines)


_STATE_COLOURS = {"reducing": "tab:orange", "paused": "tab:gray", "halted": "tab:red"}


def _state_spans(result: BacktestResult) -> list[tuple[float, float, str]]:
    """(start s, end s, state) for every stretch not spent active."""
    spans = []
    current, since = "active", 0.0
    for t, state, _ in result.state_changes:
        if current != "active" and t > since:
            spans.append((since, t, current))
        current, since = state, t
    if current != "active" and result.duration_s > since:
        spans.append((since, result.duration_s, current))
    return spans


def _cumulative_at(times: list[float], events: list[tuple[float, float]]) -> list[float]:
    """Running sum of ``events`` (t, amount), sorted by t, read at each of ``times``."""
    out, total, i = [], 0.0, 0
    for t in times:
        while i < len(events) and events[i][0] <= t:
            total += events[i][1]
            i += 1
        out.append(total)
    return out


def write_fills_csv(path: Path, rec: Recording) -> None:
    """Every fill, one row: when (UTC for a capture, the time since the start as
    ``HH:MM:SS.ffffff`` for a scenario), side, price, size, fee, the mid then, our best bid
    and ask resting at the venue then (empty: none rested) and the markouts in bps. Prices and
    sizes are written exactly from the market's ticks and lots."""
    labels = [f"markout_{h:g}s_bps" for h in MARKOUT_HORIZONS_S]
    sizer = None if rec.instrument is None else PositionSizer(rec.instrument)

    def price(value: float) -> str:
        return repr(value) if sizer is None else sizer.format_price(sizer.nearest_ticks(value))

    def size(value: float) -> str:
        return repr(value) if sizer is None else sizer.format_size(sizer.nearest_lots(value))

    def mid(value: float) -> str:
        return repr(value) if sizer is None else sizer.format_mid(value)

    epoch = _is_epoch(rec.start_ns)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            [
                "time",
                "t_s",
                "side",
                "price",
                "size",
                "fee_usd",
                "mid",
                "taker",
                "our_bid",
                "our_ask",
                *labels,
            ]
        )
        for fill in rec.fills:
            t_s = (fill.t_ns - rec.start_ns) / 1e9
            out.writerow(
                [
                    _utc(fill.t_ns) if epoch else _elapsed(fill.t_ns - rec.start_ns),
                    f"{t_s:.6f}",
                    "buy" if fill.buy else "sell",
                    price(fill.price),
                    size(fill.size),
                    f"{fill.fee:.6f}",
                    mid(fill.mid),
                    int(fill.taker),
                    "" if fill.our_bid is None else price(fill.our_bid),
                    "" if fill.our_ask is None else price(fill.our_ask),
                    *("" if m is None else f"{m:.3f}" for m in fill.markouts_bps),
                ]
            )


def _elapsed(ns: int) -> str:
    """``HH:MM:SS.ffffff`` since a scenario's start (hours go past 24 if they must)."""
    seconds, us = divmod((max(0, ns) + 500) // 1000, 1_000_000)  # to the microsecond, like t_s
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{sec:02d}.{us:06d}"


def _is_epoch(start_ns: int) -> bool:
    return start_ns > 10**18  # after 2001: a capture's clock, not a scenario's zero


def _utc(t_ns: int) -> str:
    stamp = dt.datetime.fromtimestamp(t_ns / 1e9, tz=dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


MAX_FILL_MARKERS = 200
"""Fill markers a side on the price chart; beyond, fills are drawn per time bin."""


def fill_markers(
    fills: list[FillRecord], start_ns: int, span_s: float, most: int = MAX_FILL_MARKERS
) -> tuple[list[float], list[float], list[float], float | None]:
    """``(t_s, price, size, bin_s)`` of the markers for one side's fills: one a fill, or, with
    more than ``most`` of them (an hour-long run has thousands, hiding our bid and ask), one a
    time bin of ``bin_s`` seconds (a 1-2-5 step making at most ``most`` bins over ``span_s``)
    at the bin's volume-weighted price and time, sized by its total; ``bin_s`` None when each
    fill is its own marker."""
    times = [(f.t_ns - start_ns) / 1e9 for f in fills]
    if len(fills) <= most:
        return times, [f.price for f in fills], [f.size for f in fills], None
    raw = max(span_s, times[-1] - times[0], 1e-9) / most
    bin_s = next(
        step * 10.0**e
        for e in range(math.floor(math.log10(raw)), 40)
        for step in (1.0, 2.0, 5.0)
        if step * 10.0**e >= raw
    )
    bins: dict[int, list[float]] = {}
    for t, f in zip(times, fills, strict=True):
        acc = bins.setdefault(math.floor(t / bin_s), [0.0, 0.0, 0.0])
        acc[0] += f.size
        acc[1] += f.size * f.price
        acc[2] += f.size * t
    kept = [acc for _, acc in sorted(bins.items()) if acc[0] > 0.0]
    return (
        [acc[2] / acc[0] for acc in kept],
        [acc[1] / acc[0] for acc in kept],
        [acc[0] for acc in kept],
        bin_s,
    )


def write_report(directory: str | Path, result: BacktestResult, rec: Recording) -> list[Path]:
    """Write ``summary.json``, ``recording.json``, ``fills.csv`` and ``backtest.png``; return
    their paths.

    ``backtest.png`` has, on one time axis (UTC for a capture): price with our best orders
    resting at the venue as they changed (solid; the engine's wanted quotes dotted) and every
    fill; position against the limit; PnL split into spread capture,
    inventory and fees; drawdown; limit utilisation with the binding limit; our resting spread;
    and below, the fills' average markout 0-60 s after them. Reduce-only, paused and halted
    stretches are shaded on every time panel.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.json"
    summary.write_bytes(msgspec.json.format(msgspec.json.encode(result)))
    recording = out / "recording.json"
    recording.write_bytes(msgspec.json.encode(rec))
    fills_csv = out / "fills.csv"
    write_fills_csv(fills_csv, rec)

    epoch = _is_epoch(rec.start_ns)

    def x(ts: list[float]) -> Any:
        """Plot times: UTC datetimes for a capture, seconds for a scenario."""
        if not epoch:
            return np.asarray(ts, dtype=float)
        return np.datetime64(rec.start_ns, "ns") + (np.asarray(ts) * 1e9).astype("timedelta64[ns]")

    fig = plt.figure(figsize=(12, 17))
    grid = fig.add_gridspec(7, 1, height_ratios=[3.0, 1.5, 1.8, 1.0, 1.2, 1.0, 1.6], hspace=0.35)
    price = fig.add_subplot(grid[0])
    panels = [price] + [fig.add_subplot(grid[i], sharex=price) for i in range(1, 6)]
    position, pnl, drawdown, utilisation, spread = panels[1:]

    price.plot(x(rec.t_s), rec.mid, color="black", lw=0.7, label="mid")
    for changes, style, what in (
        (rec.wanted_changes, ":", "wanted"),
        (rec.quote_changes, "-", "resting"),
    ):
        if not changes:
            continue
        qt = [t for t, _, _ in changes]
        for values, colour, name in (
            ([b for _, b, _ in changes], "tab:green", f"our best bid {what}"),
            ([a for _, _, a in changes], "tab:red", f"our best ask {what}"),
        ):
            price.plot(
                x(qt),
                [float("nan") if v is None else v for v in values],
                drawstyle="steps-post",
                color=colour,
                ls=style,
                lw=0.6 if style == "-" else 0.5,
                label=name,
            )
    span_s = rec.t_s[-1] if rec.t_s else 0.0
    for buy, marker, colour in ((True, "^", "tab:green"), (False, "v", "tab:red")):
        fills = [f for f in rec.fills if f.buy is buy]
        if fills:
            ft, fp, fs, bin_s = fill_markers(fills, rec.start_ns, span_s)
            sizes = np.asarray(fs)
            side = "buy" if buy else "sell"
            price.scatter(
                x(ft),
                fp,
                marker=marker,
                s=4 + 24 * sizes / max(sizes.max(), 1e-12),
                color=colour,
                alpha=1.0 if bin_s is None else 0.55,  # many markers: the quotes show through
                edgecolors="black",
                linewidths=0.3 if bin_s is None else 0.0,
                zorder=3,
                label=f"{side} fill (size: area)"
                if bin_s is None
                else f"{side} fills per {bin_s:g} s (VWAP; size: area)",
            )
    price.set_ylabel("price (USD)")
    price.legend(loc="upper left", fontsize=7, ncol=3)
    price.set_title(f"{result.source}: {result.strategy}, seed {result.seed}")

    position.plot(x(rec.t_s), rec.position, color="tab:blue", lw=0.8, label="position")
    top = max((abs(q) for q in rec.position), default=0.0)
    limit = np.asarray(rec.limit, dtype=float)
    typical = float(np.median(limit)) if rec.limit else 0.0
    if rec.limit and typical <= 3.0 * max(top, 1e-12):
        position.plot(x(rec.t_s), limit, color="tab:blue", ls="--", lw=0.6, label="limit")
        position.plot(x(rec.t_s), -limit, color="tab:blue", ls="--", lw=0.6)
    elif rec.limit:
        position.plot(
            [], [], ls="--", color="tab:blue", label=f"limit +/-{typical:.4g} (off scale)"
        )
    position.axhline(0.0, color="black", lw=0.4)
    position.set_ylabel("contracts")
    position.legend(loc="upper left", fontsize=7)

    spread_events = [
        ((f.t_ns - rec.start_ns) / 1e9, (1.0 if f.buy else -1.0) * (f.mid - f.price) * f.size)
        for f in rec.fills
    ]
    fee_events = [((f.t_ns - rec.start_ns) / 1e9, -f.fee) for f in rec.fills]
    spread_cum = _cumulative_at(rec.t_s, spread_events)
    fees_cum = _cumulative_at(rec.t_s, fee_events)
    inventory = [p - s_ - f for p, s_, f in zip(rec.pnl_usd, spread_cum, fees_cum, strict=True)]
    pnl.plot(x(rec.t_s), rec.pnl_usd, color="black", lw=0.9, label="PnL")
    pnl.plot(x(rec.t_s), spread_cum, color="tab:green", lw=0.7, label="spread capture")
    pnl.plot(x(rec.t_s), inventory, color="tab:blue", lw=0.7, label="inventory")
    pnl.plot(x(rec.t_s), fees_cum, color="tab:red", lw=0.7, label="fees")
    pnl.axhline(0.0, color="black", lw=0.4)
    pnl.set_ylabel("USD")
    pnl.legend(loc="upper left", fontsize=7, ncol=4)

    curve = np.asarray(rec.pnl_usd, dtype=float)
    under = curve - np.maximum.accumulate(curve) if curve.size else curve
    drawdown.fill_between(x(rec.t_s), under, 0.0, color="tab:red", alpha=0.4, lw=0)
    drawdown.set_ylabel("drawdown (USD)")

    utilisation.plot(x(rec.t_s), rec.utilisation, color="tab:orange", lw=0.8, label="|q| / Q")
    for name, colour in (
        ("leverage", "tab:gray"),
        ("volatility", "tab:red"),
        ("budget", "tab:green"),
        ("static", "tab:blue"),
    ):
        binds = np.asarray([b == name for b in rec.binding])
        if binds.any():  # a strip along the top of the panel while this limit binds
            utilisation.fill_between(
                x(rec.t_s),
                0.9,
                1.0,
                where=binds,
                transform=utilisation.get_xaxis_transform(),
                color=colour,
                alpha=0.5,
                lw=0,
                label=f"binds: {name}",
            )
    utilisation.set_ylabel("limit use")
    utilisation.legend(loc="upper left", fontsize=7, ncol=5)

    if rec.quote_changes:
        qt = [t for t, _, _ in rec.quote_changes]
        width = [
            (a - b) / (0.5 * (a + b)) * 1e4 if a is not None and b is not None else float("nan")
            for _, b, a in rec.quote_changes
        ]
        spread.plot(x(qt), width, drawstyle="steps-post", color="tab:purple", lw=0.7)
    spread.set_ylabel("our resting spread (bps)")
    spread.set_xlabel("time (UTC)" if epoch else "simulated time (s)")

    spans = _state_spans(result)
    for ax in panels:
        for t0, t1, state in spans:
            ax.axvspan(*x([t0, t1]), color=_STATE_COLOURS.get(state, "tab:gray"), alpha=0.15, lw=0)
    if spans:
        handles, _ = price.get_legend_handles_labels()
        for state in sorted({s_ for _, _, s_ in spans}):
            colour = _STATE_COLOURS.get(state, "tab:gray")
            handles.append(Patch(color=colour, alpha=0.15, label=state))
        price.legend(handles=handles, loc="upper left", fontsize=7, ncol=3)
    for ax in panels[:-1]:
        ax.tick_params(labelbottom=False)

    markouts = fig.add_subplot(grid[6])
    horizons = [0.0, *MARKOUT_HORIZONS_S]
    for buy, colour, name in ((True, "tab:green", "buys"), (False, "tab:red", "sells")):
        fills = [f for f in rec.fills if f.buy is buy]
        if not fills:
            continue
        means = []
        for i in range(len(horizons)):
            weight = total = 0.0
            for f in fills:
                m = (
                    (1.0 if buy else -1.0) * (f.mid - f.price) / f.price * 1e4
                    if i == 0
                    else f.markouts_bps[i - 1]
                )
                if m is not None:
                    total += m * f.price * f.size
                    weight += f.price * f.size
            means.append(total / weight if weight > 0.0 else float("nan"))
        markouts.plot(
            range(len(horizons)), means, marker="o", color=colour, label=f"{name} ({len(fills)})"
        )
    markouts.axhline(0.0, color="black", lw=0.4)
    markouts.set_xticks(range(len(horizons)), [f"{h:g} s" for h in horizons])
    markouts.set_xlabel("time after the fill")
    markouts.set_ylabel("markout (bps, our way +)")
    if markouts.get_legend_handles_labels()[0]:  # no fills on either side: no legend
        markouts.legend(loc="lower left", fontsize=7)

    png = out / "backtest.png"
    fig.savefig(png, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return [summary, recording, fills_csv, png]


def format_compare(results: list[BacktestResult]) -> str:
    """Strategies run on the same market and seed, one row each, within 80 columns."""
    first = results[0]
    lines = [
        f"Compare  {first.source}  seed {first.seed}  {first.duration_s:,.0f} s"
        + ("  (interrupted: partial)" if any(r.interrupted for r in results) else ""),
        f"{'strategy':<18} {'PnL':>8} {'spread':>7} {'invent.':>7} {'fees':>7} "
        f"{'max DD':>6} {'fills':>5} {'mk10s':>5} {'use':>4} {'brch':>4}",
    ]
    for r in results:
        a = r.attribution
        mk = a.markout_bps.get("10s") if a is not None else None
        split = (
            f"{a.spread_capture_usd:>7.2f} {a.inventory_usd:>7.2f} {a.fees_usd:>7.2f}"
            if a is not None
            else f"{'':>7} {'':>7} {r.fees_usd:>7.2f}"
        )
        mark = "n/a" if mk is None else f"{mk:+.1f}"
        lines.append(
            f"{r.strategy:<18} {r.pnl_usd:>8.2f} {split} {r.max_drawdown_usd:>6.2f} "
            f"{r.fills:>5d} {mark:>5} {r.max_limit_utilisation:>4.0%} {r.limit_breaches:>4d}"
        )
    lines.append("USD. mk10s: markout 10 s after fills, bps; use: max |q|/Q; brch: limit breaches")
    no_fills = [r.strategy for r in results if r.fills == 0]
    if no_fills:
        lines.append(f"no fills: {', '.join(no_fills)} (run it alone for why)")
    return "\n".join(lines)


def _markouts(r: BacktestResult) -> list[float | None]:
    a = r.attribution
    return [None if a is None else a.markout_bps.get(f"{h:g}s") for h in MARKOUT_HORIZONS_S]


def write_compare(
    directory: str | Path, results: list[BacktestResult], recs: list[Recording]
) -> list[Path]:
    """``compare.csv`` (the table) and ``compare.png``: PnL, drawdown and limit use of every
    strategy overlaid on one time axis, and their markouts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "compare.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        labels = [f"markout_{h:g}s_bps" for h in MARKOUT_HORIZONS_S]
        w.writerow(
            [
                "strategy",
                "pnl_usd",
                "spread_capture_usd",
                "inventory_usd",
                "fees_usd",
                "max_drawdown_usd",
                "sharpe",
                "fills",
                *labels,
                "max_limit_utilisation",
                "limit_breaches",
                "time_two_sided_s",
            ]
        )
        for r in results:
            a = r.attribution
            w.writerow(
                [
                    r.strategy,
                    f"{r.pnl_usd:.6f}",
                    "" if a is None else f"{a.spread_capture_usd:.6f}",
                    "" if a is None else f"{a.inventory_usd:.6f}",
                    f"{r.fees_usd:.6f}",
                    f"{r.max_drawdown_usd:.6f}",
                    "" if r.sharpe is None else f"{r.sharpe:.4f}",
                    r.fills,
                    *("" if m is None else f"{m:.4f}" for m in _markouts(r)),
                    f"{r.max_limit_utilisation:.6f}",
                    r.limit_breaches,
                    f"{r.time_two_sided_s:.3f}",
                ]
            )

    fig, axes = plt.subplots(4, 1, figsize=(12, 11))
    pnl, drawdown, use, markouts = axes
    epoch = _is_epoch(recs[0].start_ns) if recs else False
    for r, rec in zip(results, recs, strict=True):
        t: Any = np.asarray(rec.t_s, dtype=float)
        if epoch:
            t = np.datetime64(rec.start_ns, "ns") + (t * 1e9).astype("timedelta64[ns]")
        curve = np.asarray(rec.pnl_usd, dtype=float)
        (line,) = pnl.plot(t, curve, lw=0.9, label=r.strategy)
        if curve.size:
            drawdown.plot(t, curve - np.maximum.accumulate(curve), lw=0.8, color=line.get_color())
        use.plot(t, rec.utilisation, lw=0.8, color=line.get_color())
        a = r.attribution
        if a is not None and r.fills:
            markouts.plot(
                range(len(MARKOUT_HORIZONS_S)),
                [float("nan") if v is None else v for v in _markouts(r)],
                marker="o",
                color=line.get_color(),
                label=r.strategy,
            )
    pnl.set_ylabel("PnL (USD)")
    pnl.legend(loc="upper left", fontsize=8)
    pnl.set_title(f"{results[0].source}, seed {results[0].seed}")
    drawdown.set_ylabel("drawdown (USD)")
    use.set_ylabel("limit use |q|/Q")
    use.set_xlabel("time (UTC)" if epoch else "simulated time (s)")
    for ax in (pnl, drawdown):
        ax.sharex(use)
        ax.tick_params(labelbottom=False)
    markouts.axhline(0.0, color="black", lw=0.4)
    markouts.set_xticks(range(len(MARKOUT_HORIZONS_S)), [f"{h:g} s" for h in MARKOUT_HORIZONS_S])
    markouts.set_xlabel("time after the fill")
    markouts.set_ylabel("markout (bps)")
    fig.tight_layout()
    png = out / "compare.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return [table, png]
