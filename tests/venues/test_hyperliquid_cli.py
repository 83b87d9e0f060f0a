"""The user's commands against the loopback fake: ``run --venue hyperliquid`` (paper) and
``record``, whose output replays and backtests like the shipped capture."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from market_maker.cli import main
from market_maker.venues.replay import ReplayMarket
from tests.fakes.hyperliquid import FakeInThread
from tests.test_config import ROOT


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_run_paper_trades_against_the_venue_with_logs_and_metrics(capsys):
    port = free_port()
    scraped: list[str] = []

    def scrape() -> None:
        time.sleep(4.0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            scraped.append(r.read().decode())

    with FakeInThread(sweep_ticks=12.0) as fake:
        scraper = threading.Thread(target=scrape)
        scraper.start()
        code = main(
            [
                "run",
                "--venue",
                "hyperliquid",
                "--asset",
                "BTC",
                "--ws-url",
                fake.url,
                "--duration",
                "7",
                "--metrics-port",
                str(port),
            ]
        )
        scraper.join()
    assert code == 0
    events = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    names = [e["event"] for e in events]
    assert "paper_trading" in names and "stopped" in names and "status" in names
    start = next(e for e in events if e["event"] == "paper_trading")
    assert start["tick"] == 1.0 and start["lot"] == 1e-05 and start["asset_index"] == 1
    stopped = next(e for e in events if e["event"] == "stopped")
    assert stopped["open_orders"] == 0 and stopped["events"] > 50
    assert scraped and "mm_position_contracts" in scraped[0]


def test_options_that_do_not_apply_are_errors(capsys, tmp_path, monkeypatch):
    assert main(["run", "--paper", "--duration", "1"]) == 1
    assert "--paper only applies to --venue hyperliquid" in capsys.readouterr().err
    assert main(["run", "--venue", "hyperliquid", "--ws-url", "http://x"]) == 1
    assert "ws://" in capsys.readouterr().err
    assert main(["run", "--venue", "hyperliquid", "--address", "0x12"]) == 1
    assert "40 hex digits" in capsys.readouterr().err
    assert main(["run", "--data", "x.gz"]) == 1
    assert "--data only applies" in capsys.readouterr().err
    monkeypatch.setenv("HYPERLIQUID_PRIVATE_KEY", "0x" + "9f" * 31 + "zz")  # not hex
    assert main(["run", "--venue", "hyperliquid", "--ws-url", "ws://127.0.0.1:9", "--live"]) == 2
    err = capsys.readouterr().err
    assert "private key must be 32 bytes" in err and "9f9f" not in err
    existing = tmp_path / "there.gz"
    existing.write_bytes(b"")
    assert main(["record", "--out", str(existing), "--ws-url", "ws://127.0.0.1:9"]) == 1
    assert "exists" in capsys.readouterr().err


@pytest.mark.slow
def test_no_venue_to_connect_to_is_one_clear_error(capsys):
    port = free_port()  # nothing listens there
    code = main(
        ["run", "--venue", "hyperliquid", "--ws-url", f"ws://127.0.0.1:{port}", "--duration", "1"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "no connection to" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_recording_replays_and_backtests_and_notes_its_reconnects(tmp_path, capsys):
    out = tmp_path / "btc.gz"
    with FakeInThread() as fake:
        timer = threading.Timer(2.0, lambda: fake.call(fake.fake.drop(clean=False)))
        timer.start()
        assert (
            main(
                [
                    "record",
                    "--asset",
                    "BTC",
                    "--out",
                    str(out),
                    "--ws-url",
                    fake.url,
                    "--duration",
                    "5",
                ]
            )
            == 0
        )
        timer.join()
    assert "recorded" in capsys.readouterr().out
    market = ReplayMarket(out)
    events = 0
    while market.peek_ns() is not None:
        market.pop()
        events += 1
    stats = market.stats
    assert stats.notes >= 3  # connected, disconnected, connected
    assert stats.bad_lines == 0 and stats.books > 20 and stats.trades > 20 and events > 50
    assert main(["backtest", "--data", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["market_events"] == events and result["limit_breaches"] == 0


@pytest.mark.slow
def test_a_killed_recorder_leaves_a_readable_capture(tmp_path):
    out = tmp_path / "killed.gz"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with FakeInThread() as fake:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "market_maker",
                "record",
                "--out",
                str(out),
                "--ws-url",
                fake.url,
                "--duration",
                "60",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while (not out.exists() or out.stat().st_size < 2000) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.5)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    market = ReplayMarket(Path(out))
    events = 0
    while market.peek_ns() is not None:
        market.pop()
        events += 1
    assert events > 20 and market.stats.bad_lines == 0


def test_paper_run_reads_the_watched_accounts_fee_tier_from_user_fees(capsys):
    # The account is in the >5M tier (0.012 % maker, 0.040 % taker), not the base one.
    with FakeInThread(sweep_ticks=12.0, maker_fee_rate=0.00012, taker_fee_rate=0.0004) as fake:
        code = main(
            [
                "run",
                "--venue",
                "hyperliquid",
                "--asset",
                "BTC",
                "--ws-url",
                fake.url,
                "--address",
                "0x" + "ab" * 20,
                "--duration",
                "3",
            ]
        )
    assert code == 0
    events = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    start = next(e for e in events if e["event"] == "paper_trading")
    assert start["fee_source"] == "userFees"
    assert start["maker_fee_bps"] == 1.2  # exactly: the venue's "0.00012"
    assert start["taker_fee_bps"] == pytest.approx(4.0)
    stopped = next(e for e in events if e["event"] == "stopped")
    assert stopped["maker_fee_bps"] == pytest.approx(1.2)
    assert stopped["taker_fee_bps"] == pytest.approx(4.0)
