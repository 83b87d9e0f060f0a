"""Golden outputs of the two shipped captures: the orders sent, the fills and the PnL of a GLFT
and a ladder backtest on each, pinned two ways.

- Against ``replay_golden.json``, recorded from main at 7253091 (before the replay's depth book
  became a lookup, issue 27 item 3) by ``python -m tests.backtest.test_replay_golden``; a
  change that means to move these outputs rewrites the file the same way, and says why.
- Against the reference: the same backtest with the replay cache off, where every depth diff
  of the capture is applied to a dict book as it is decoded (``ReplayMarket._apply_diff``).

The orders are every action the engine handed the venue, with the time it sent it; the fills
are the venue's own records (price, size, fee, mid and markouts). Both are compared exactly,
as SHA-256 of their JSON, with their counts beside them so a mismatch says where to look.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from market_maker.backtest.session import run_session
from market_maker.config import AppConfig
from market_maker.model import Action
from market_maker.venues.exchange import ExchangeCore

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("replay_golden.json")
CAPTURES = {
    "binance": ROOT / "data" / "binance-usdm" / "btcusdt_20240808.gz",
    "hyperliquid": ROOT / "data" / "hyperliquid" / "btc_20250126.gz",
}
STRATEGIES = ("glft", "ladder")


def _digest(items: Sequence[object]) -> str:
    return hashlib.sha256(msgspec.json.encode(items)).hexdigest()


def outputs(capture: str, strategy: str) -> dict[str, Any]:
    """Orders, fills and PnL of one whole-capture backtest (seed 1, default config)."""
    sent: list[tuple[int, Any]] = []
    original = ExchangeCore.submit

    def submit(self: ExchangeCore, actions: Sequence[Action], ts_ns: int) -> None:
        sent.extend((ts_ns, msgspec.to_builtins(a)) for a in actions)
        original(self, actions, ts_ns)

    ExchangeCore.submit = submit  # type: ignore[method-assign]
    try:
        result, rec = run_session(
            AppConfig(), strategy=strategy, data=CAPTURES[capture], seed=1, record=True
        )
    finally:
        ExchangeCore.submit = original  # type: ignore[method-assign]
    assert rec is not None
    fills = msgspec.to_builtins(rec.fills)
    return {
        "orders": len(sent),
        "orders_sha256": _digest(sent),
        "fills": len(fills),
        "fills_sha256": _digest(fills),
        "pnl_usd": result.pnl_usd,
        "final_position": result.final_position,
        "market_events": result.market_events,
        "events": result.events,
    }


def _golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("capture", sorted(CAPTURES))
def test_a_capture_backtest_gives_the_golden_orders_fills_and_pnl(capture, strategy):
    got = outputs(capture, strategy)
    assert got["orders"] >= 10  # a run that quotes (the Hyperliquid sample is 110 events)
    assert got["fills"] > 10 or capture == "hyperliquid"
    assert got == _golden()["runs"][f"{capture}/{strategy}"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("capture", sorted(CAPTURES))
def test_the_cached_replay_trades_as_the_capture_decoded_with_its_whole_book(
    capture, strategy, monkeypatch
):
    cached = outputs(capture, strategy)
    monkeypatch.setenv("MM_CACHE_DIR", "off")
    assert outputs(capture, strategy) == cached


def main(argv: list[str]) -> int:
    """Rewrite ``replay_golden.json`` from this checkout."""
    import subprocess

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    runs = {f"{c}/{s}": outputs(c, s) for c in sorted(CAPTURES) for s in STRATEGIES}
    data = {
        "_how": (
            "python -m tests.backtest.test_replay_golden: run_session(AppConfig(), strategy=S, "
            "data=CAPTURE, seed=1) on each shipped capture, orders = every action the engine "
            "sent with its send time, fills = the venue's FillRecords, as SHA-256 of their "
            f"msgspec JSON; recorded at {commit or 'an unknown commit'}"
        ),
        "runs": runs,
    }
    GOLDEN.write_text(json.dumps(data, indent=2) + "\n")
    print(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
