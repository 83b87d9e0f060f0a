"""Ablation of ``[quoting]`` on the BTC capture: each feature off and on, GLFT and ladder.

    python benches/ablation_quoting.py [--data FILE] [--markdown]

Two settings: in sample (calibrated on the whole capture, backtested on it) and walk-forward
(calibrated on the first half, backtested on the second; the engine starts with nothing but
the first half's overlay). The baseline is today's engine (every feature off) with the same
overlay. Edge before fees is ``(PnL + fees) / maker volume``; PnL at another maker fee
re-prices the same fills (``PnL + fees - fee * volume``), so "at 0" is the edge in USD.
Every number is what the simulated venue's own ledger says.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from market_maker.backtest.calibrate import calibrate_events, overlay_toml  # noqa: E402
from market_maker.backtest.session import run_session  # noqa: E402
from market_maker.config import AppConfig, load_config  # noqa: E402
from market_maker.venues.replay import ReplayMarket  # noqa: E402

FEATURES = {
    "baseline": {},
    "+fair value": {"fair_value": True},
    "+floor": {"adverse_floor": True},
    "+guard": {"toxic_guard": True},
    "all": {"fair_value": True, "adverse_floor": True, "toxic_guard": True},
}


def _overlay(data: Path, until_s: float | None, out: Path) -> AppConfig:
    market = ReplayMarket(data)
    first = market.peek_ns() or 0
    end = None if until_s is None else first + int(until_s * 1e9)

    def events():
        while (t := market.peek_ns()) is not None and (end is None or t < end):
            yield market.pop()

    c = calibrate_events(
        events(),
        source=str(data),
        venue=market.venue,
        symbol=market.symbol,
        instrument=market.instrument,
        duration_s=until_s or 3600.0,
    )
    out.write_text(overlay_toml(c), encoding="utf-8")
    return load_config(out)


def _with(config: AppConfig, switches: dict[str, bool]) -> AppConfig:
    # The floor adds the market's own maker fee (the instrument's, as the venue charges it).
    quoting = msgspec.structs.replace(config.quoting, **switches)
    return msgspec.structs.replace(config, quoting=quoting)


def row(config: AppConfig, strategy: str, data: Path, start_s: float) -> dict[str, float]:
    r, _ = run_session(config, strategy=strategy, data=data, seed=1, start_s=start_s)
    vol = r.maker_volume_usd
    pre = r.pnl_usd + r.fees_usd
    m = r.attribution.markout_bps if r.attribution else {}
    return {
        "fills": r.fills,
        "volume": vol,
        "edge": pre / vol * 1e4 if vol else math.nan,
        "pnl0": pre,
        "pnl2": pre - 2e-4 * vol,
        "pnl_rebate": pre + 0.5e-4 * vol,
        "m1": m.get("1s") or math.nan,
        "m10": m.get("10s") or math.nan,
        "m60": m.get("60s") or math.nan,
        "maxq": r.max_abs_position,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data/binance-usdm/btcusdt_20240808.gz")
    args = parser.parse_args(argv)
    data: Path = args.data
    market = ReplayMarket(data)
    first = market.peek_ns() or 0
    last = first
    while (t := market.peek_ns()) is not None:
        last = t
        market.pop()
    half_s = (last - first) / 2e9
    with tempfile.TemporaryDirectory() as tmp:
        full = _overlay(data, None, Path(tmp) / "full.toml")
        train = _overlay(data, half_s, Path(tmp) / "train.toml")
    print(
        "| split | strategy | features | fills | volume USD | edge bps | PnL at 0 | at 2 bps "
        "| at -0.5 | markout 1 / 10 / 60 s | max q |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for split, base, start in (("in sample", full, 0.0), ("test half", train, half_s)):
        for strategy in ("glft", "ladder"):
            for name, switches in FEATURES.items():
                x = row(_with(base, switches), strategy, data, start)
                print(
                    f"| {split} | {strategy} | {name} | {x['fills']:.0f} | {x['volume']:,.0f} | "
                    f"{x['edge']:+.2f} | {x['pnl0']:+.2f} | {x['pnl2']:+.2f} | "
                    f"{x['pnl_rebate']:+.2f} | {x['m1']:+.2f} / {x['m10']:+.2f} / "
                    f"{x['m60']:+.2f} | {x['maxq']:.3f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
