import asyncio
import json
import os
import signal
import subprocess
import sys
import time

from market_maker.backtest.scenarios import engine_config, scenario
from market_maker.engine import QuoteEngine
from market_maker.runtime import SimVenue, run_live
from market_maker.venues.sim import simulated_exchange


def test_run_on_the_simulator_quotes_and_stops_cleanly_on_sigint():
    proc = subprocess.Popen(
        [sys.executable, "-m", "market_maker", "run", "--venue", "sim", "--speed", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(json.loads(line))
            if sum(1 for e in lines if e["event"] == "fill") >= 2:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines += [json.loads(line) for line in out.splitlines() if line.strip()]
    events = [e["event"] for e in lines]
    assert "started" in events and "fill" in events
    shutdown = next(e for e in lines if e["event"] == "shutdown")
    assert shutdown["reason"] == "interrupted"
    stopped = lines[-1]
    assert stopped["event"] == "stopped"
    assert stopped["open_orders"] == 0
    assert stopped["quote_cycles"] > 0


def test_run_live_in_process_stops_at_duration_with_no_open_orders():
    params = scenario("calm", duration_s=100_000)
    exchange = simulated_exchange(params, seed=2)
    engine = QuoteEngine(engine_config(params), params.instrument)
    venue = SimVenue(exchange, speed=50.0)
    summary = asyncio.run(run_live(venue, engine, duration_s=1.0, tty=False, install_signals=False))
    assert summary.reason == "duration reached"
    assert summary.open_orders == 0
    assert exchange.open_orders() == 0
    assert summary.simulated_s > 20.0
    assert summary.events > 100
