"""Backtest reports: a text summary for terminals and a directory with JSON and PNG plots."""

from __future__ import annotations

from pathlib import Path

import msgspec

from market_maker.backtest.runner import BacktestResult, Recording

__all__ = ["format_summary", "write_report"]


def _sharpe(value: float | None) -> str:
    return "n/a (under 1 h)" if value is None else f"{value:,.2f}"


def format_summary(r: BacktestResult) -> str:
    """A compact, aligned summary of a backtest."""
    lines = [
        f"Backtest  {r.source}  strategy={r.strategy}  seed={r.seed}  {r.duration_s:,.0f} s"
        + ("  (interrupted: partial)" if r.interrupted else ""),
        f"  PnL                {r.pnl_usd:>14,.2f} USD   Sharpe {_sharpe(r.sharpe)}   "
        f"max drawdown {r.max_drawdown_usd:,.2f} USD",
        f"  fills              {r.fills:>14,d}       maker volume {r.maker_volume_usd:,.0f} USD   "
        f"fees {r.fees_usd:,.2f} USD",
        f"  position           {r.final_position:>14.4f}       max |q| {r.max_abs_position:.4f}   "
        f"max limit use {r.max_limit_utilisation:.1%}",
        f"  limit breaches     {r.limit_breaches:>14d}       "
        f"reduce-only {r.time_reduce_only_s:,.1f} s   kill-switch events {r.kill_switch_events}",
        "  binding limit      " + ", ".join(f"{k} {v:.0%}" for k, v in r.binding_share.items()),
        f"  engine             {r.quote_cycles:>14,d} cycles   p50 {r.cycle_us_p50:.1f} us   "
        f"p99 {r.cycle_us_p99:.1f} us   {r.events_per_s:,.0f} events/s   wall {r.wall_s:.2f} s",
    ]
    if r.capture is not None:
        c = r.capture
        lines.append(
            f"  capture            {c['lines']:>14,d} lines   skipped {c['bad_lines']:,} bad, "
            f"{c['bad_timestamps']:,} bad stamps   reordered {c['reordered']:,}   "
            f"depth gaps {c['depth_gaps']:,} (re-synced {c['depth_resyncs']:,})"
        )
    if r.quoting_nothing:
        lines.append(f"  {r.quoting_nothing} ({r.time_quoting_nothing_s:,.1f} s)")
    for t, state, reasons in r.state_changes[:10]:
        why = "; ".join(reasons) if reasons else "clear"
        lines.append(f"  t={t:>9.1f} s  -> {state:<9} {why}")
    if len(r.state_changes) > 10:
        lines.append(f"  ... {len(r.state_changes) - 10} more state changes")
    return "\n".join(lines)


def write_report(directory: str | Path, result: BacktestResult, rec: Recording) -> list[Path]:
    """Write ``summary.json``, ``recording.json`` and ``backtest.png``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.json"
    summary.write_bytes(msgspec.json.format(msgspec.json.encode(result)))
    recording = out / "recording.json"
    recording.write_bytes(msgspec.json.encode(rec))

    fig, axes = plt.subplots(4, 1, figsize=(12, 12), sharex=True)
    ax = axes[0]
    ax.plot(rec.t_s, rec.mid, color="black", lw=0.8, label="mid")
    ax.plot(
        rec.t_s,
        [b if b is not None else float("nan") for b in rec.bid],
        color="tab:green",
        lw=0.6,
        label="our best bid",
    )
    ax.plot(
        rec.t_s,
        [a if a is not None else float("nan") for a in rec.ask],
        color="tab:red",
        lw=0.6,
        label="our best ask",
    )
    buys = [(t, p) for t, p, s in rec.fills if s == "buy"]
    sells = [(t, p) for t, p, s in rec.fills if s == "sell"]
    if buys:
        ax.scatter(*zip(*buys, strict=True), marker="^", s=12, color="tab:green", label="buy fill")
    if sells:
        ax.scatter(*zip(*sells, strict=True), marker="v", s=12, color="tab:red", label="sell fill")
    ax.set_ylabel("price (USD)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{result.source}: {result.strategy}, seed {result.seed}")

    ax = axes[1]
    ax.plot(rec.t_s, rec.position, color="tab:blue", lw=0.8, label="position")
    ax.fill_between(
        rec.t_s, [-x for x in rec.limit], rec.limit, color="tab:blue", alpha=0.1, label="limit band"
    )
    ax.set_ylabel("contracts")
    ax.legend(loc="upper left", fontsize=8)

    ax = axes[2]
    ax.plot(rec.t_s, rec.pnl_usd, color="tab:purple", lw=0.8)
    ax.set_ylabel("PnL (USD)")

    ax = axes[3]
    ax.plot(rec.t_s, rec.utilisation, color="tab:orange", lw=0.8, label="|q| / Q")
    for name, color in (
        ("leverage", "tab:gray"),
        ("volatility", "tab:red"),
        ("budget", "tab:green"),
        ("static", "tab:blue"),
    ):
        mask = [1.0 if b == name else float("nan") for b in rec.binding]
        if any(m == 1.0 for m in mask):
            ax.plot(
                rec.t_s,
                [m * 1.02 for m in mask],
                lw=4,
                color=color,
                alpha=0.5,
                label=f"binds: {name}",
            )
    ax.set_ylabel("limit utilisation")
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    png = out / "backtest.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return [summary, recording, png]
