import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import msgspec
import pytest

from market_maker.backtest.scenarios import engine_config, scenario
from market_maker.config import AppConfig, KillSwitchConfig
from market_maker.engine import QuoteEngine
from market_maker.model import BookUpdate, Cancel, Instrument, Modify, Place, VenueSnapshot
from market_maker.runtime import SimVenue, run_live
from market_maker.venues.sim import simulated_exchange


def calm_sim(seed: int, venue_model: str = "hyperliquid", kind: str = "glft"):
    """A calm simulated exchange that outlasts any test, and an engine calibrated to it."""
    params = msgspec.structs.replace(
        scenario("calm-uninformed", duration_s=1_000_000), venue_model=venue_model
    )
    exchange = simulated_exchange(params, seed=seed)
    config = engine_config(params)
    config = msgspec.structs.replace(
        config, strategy=msgspec.structs.replace(config.strategy, kind=kind)
    )
    return exchange, QuoteEngine(config, params.instrument)


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
    assert proc.returncode == 130, err  # Ctrl-C: 128 + SIGINT (SIGTERM, an orderly stop, exits 0)
    lines += [json.loads(line) for line in out.splitlines() if line.strip()]
    events = [e["event"] for e in lines]
    assert "started" in events and "fill" in events
    # Prices and sizes from their ticks and lots: no 2682.4500000000003 in the log.
    rules = scenario("calm").instrument
    decimals = {"price": len(repr(rules.tick_size).partition(".")[2]) + 1}
    decimals["size"] = decimals["position"] = len(repr(rules.lot_size).partition(".")[2])
    for fill in (e for e in lines if e["event"] == "fill"):
        for key, most in decimals.items():
            assert len(repr(float(fill[key])).partition(".")[2]) <= most, fill
    shutdown = next(e for e in lines if e["event"] == "shutdown")
    assert shutdown["reason"] == "interrupted"
    stopped = lines[-1]
    assert stopped["event"] == "stopped"
    assert stopped["open_orders"] == 0
    assert stopped["quote_cycles"] > 0


def test_run_live_in_process_stops_at_duration_with_no_open_orders():
    exchange, engine = calm_sim(2)
    venue = SimVenue(exchange, speed=50.0)
    summary = asyncio.run(run_live(venue, engine, duration_s=1.0, tty=False, install_signals=False))
    assert summary.reason == "duration reached"
    assert summary.open_orders == 0
    assert exchange.open_orders() == 0
    assert summary.simulated_s > 10.0  # ~50 s of market at 50x, less on a loaded machine
    assert summary.events > 100


def test_metrics_endpoint_serves_prometheus_text_while_running():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exchange, engine = calm_sim(4)

    async def scrape(path: str) -> str:
        await asyncio.sleep(0.7)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
        writer.close()
        return data.decode()

    async def main():
        run = asyncio.create_task(
            run_live(
                SimVenue(exchange, speed=50.0),
                engine,
                duration_s=1.5,
                tty=False,
                install_signals=False,
                metrics_port=port,
            )
        )
        metrics, missing = await asyncio.gather(scrape("/metrics"), scrape("/nope"))
        await run
        return metrics, missing

    metrics, missing = asyncio.run(main())
    assert metrics.startswith("HTTP/1.1 200 OK")
    from prometheus_client.parser import text_string_to_metric_families

    body = metrics.partition("\r\n\r\n")[2]
    samples = {
        (
            sample.name,
            tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("symbol", "venue"))),
        ): sample
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    assert all(
        s.labels["symbol"] == "SIM-BTC" and s.labels["venue"] == "sim" for s in samples.values()
    )

    def value(name: str, **extra: str) -> float:
        return float(samples[(name, tuple(sorted(extra.items())))].value)

    assert value("mm_binding_limit", limit="leverage") == 1.0
    assert value("mm_trading_state") in (0.0, 1.0, 2.0, 3.0)
    states = [
        value("mm_trading_state_is", state=s) for s in ("active", "reducing", "paused", "halted")
    ]
    assert sorted(states) == [0.0, 0.0, 0.0, 1.0]
    assert value("mm_quote_cycle_seconds_count") > 0
    assert value("mm_quote_cycles_total") > 0
    assert value("mm_requests_sent_total") > 0
    assert 0.0 <= value("mm_held_cycle_share") <= 1.0
    assert value("mm_held_cycles_total") <= value("mm_quote_cycles_total")
    assert value("mm_snapshots_total") >= 1  # the one taken at start, at least
    assert value("mm_position_corrections_total") == 0.0
    assert value("mm_open_orders") >= 0 and value("mm_settling_orders") >= 0
    assert value("mm_bad_input_total", kind="bad_books") == 0.0
    assert missing.startswith("HTTP/1.1 404")


def test_run_replays_a_capture_through_the_same_runtime():
    from market_maker.config import AppConfig
    from market_maker.venues.exchange import ExchangeCore
    from market_maker.venues.replay import ReplayMarket
    from tests.backtest.test_backtest import HYPERLIQUID

    market = ReplayMarket(HYPERLIQUID)
    exchange = ExchangeCore(market.instrument, market)
    engine = QuoteEngine(AppConfig(), market.instrument)
    summary = asyncio.run(
        run_live(SimVenue(exchange, speed=1000.0), engine, tty=False, install_signals=False)
    )
    assert summary.reason == "venue ended"
    assert summary.events >= 110
    assert summary.simulated_s > 20.0


def test_a_venue_running_behind_the_clock_can_still_be_stopped():
    """At 10,000x the simulator never has to sleep; the run must still stop on time and its
    orders must not drift into the future (they act at the market time of the event)."""
    exchange, engine = calm_sim(6)
    started = time.monotonic()
    summary = asyncio.run(
        run_live(
            SimVenue(exchange, speed=10_000.0),
            engine,
            duration_s=1.0,
            tty=False,
            install_signals=False,
        )
    )
    assert time.monotonic() - started < 4.0
    assert summary.reason == "duration reached"
    assert summary.events > 5_000
    assert summary.open_orders == 0 and exchange.open_orders() == 0


def test_orders_an_earlier_process_left_are_cancelled_before_the_first_quote():
    # An earlier process quotes a ladder for a while, then dies without cancelling. (One GLFT
    # quote left behind can trade in the milliseconds before the new process asks: seed 4
    # sold it 16 ms before the first snapshot.)
    exchange, first = calm_sim(4, kind="ladder")
    for _ in range(2_000):
        ev = exchange.pop_next()
        exchange.submit(first.on_event(ev), ev.ts_ns)
    assert exchange.open_orders() > 0

    _, engine = calm_sim(4)
    sent: list = []
    snapshots: list = []
    original = engine.on_event

    def spy(event, ts_ns=None):
        if isinstance(event, VenueSnapshot):
            snapshots.append(event)
        return original(event, ts_ns)

    engine.on_event = spy

    class Recording(SimVenue):
        async def submit(self, actions):
            sent.extend(actions)
            await super().submit(actions)

    venue = Recording(exchange, speed=50.0)
    summary = asyncio.run(run_live(venue, engine, duration_s=0.5, tty=False, install_signals=False))
    orders = [a for a in sent if isinstance(a, (Place, Cancel, Modify))]
    first_place = next(i for i, a in enumerate(orders) if isinstance(a, Place))
    cancelled = {a.cloid for a in orders[:first_place] if isinstance(a, Cancel)}
    left = {o.cloid for o in snapshots[0].orders}  # what the venue held when we started
    assert left and cancelled == left
    assert engine.status().order_counters.orphans_cancelled == len(left)
    # The position it left is adopted at the venue's mark, not as a windfall.
    assert abs(summary.pnl_usd) < 50.0
    assert summary.open_orders == 0 and exchange.open_orders() == 0


class QuietVenue:
    """One book, then nothing: a feed that has stopped."""

    def __init__(self) -> None:
        self.instrument = Instrument(symbol="Q", tick_size=0.1, lot_size=0.001)
        self.submitted: list = []

    async def connect(self) -> None:
        pass

    def now_ns(self) -> int:
        return time.monotonic_ns()

    async def events(self):
        yield BookUpdate(ts_ns=self.now_ns(), bids=((100.0, 1.0),), asks=((100.1, 1.0),))
        await asyncio.Event().wait()

    async def submit(self, actions) -> None:
        self.submitted.extend(actions)

    async def cancel_all(self) -> None:
        pass

    async def close(self) -> None:
        pass


def test_the_runtime_keeps_time_moving_when_the_feed_stops():
    venue = QuietVenue()
    config = AppConfig(kill_switch=KillSwitchConfig(stale_pause_after_s=0.2))
    engine = QuoteEngine(config, venue.instrument)
    seen = []
    triggers = set()
    original = engine.on_event

    def spy(event, ts_ns=None):
        seen.append(type(event).__name__)
        actions = original(event, ts_ns)
        triggers.update(str(r.trigger) for r in engine.kill_switch.reasons)
        return actions

    engine.on_event = spy
    asyncio.run(run_live(venue, engine, duration_s=0.8, tty=False, install_signals=False))
    assert seen.count("Timer") >= 4  # every 100 ms without an event
    assert "stale_data" in triggers  # paused by the silence, before the shutdown halt


def test_a_failing_venue_stream_is_raised_not_taken_for_the_end_of_the_market():
    class Broken(QuietVenue):
        async def events(self):
            yield BookUpdate(ts_ns=self.now_ns(), bids=((100.0, 1.0),), asks=((100.1, 1.0),))
            raise ConnectionError("feed lost")

    venue = Broken()
    engine = QuoteEngine(AppConfig(), venue.instrument)
    try:
        asyncio.run(run_live(venue, engine, duration_s=5.0, tty=False, install_signals=False))
    except ConnectionError as exc:
        assert "feed lost" in str(exc)
    else:
        raise AssertionError("the venue's error was swallowed")


@pytest.mark.slow
def test_run_on_the_btc_replay_quotes_through_the_capture_with_at_most_two_cascade_changes():
    from market_maker.backtest.session import replay_exchange
    from market_maker.venues.replay import ReplayMarket
    from tests.backtest.test_backtest import BINANCE

    market = ReplayMarket(BINANCE)
    exchange = replay_exchange(market, 1)
    engine = QuoteEngine(AppConfig(), market.instrument)
    changes = []
    original = engine.on_event

    def spy(event, ts_ns=None):
        before = engine.kill_switch.state
        actions = original(event, ts_ns)
        if engine.kill_switch.state is not before:
            changes.append(engine.kill_switch.state.label)
        return actions

    engine.on_event = spy
    venue = SimVenue(exchange, speed=100_000.0)
    summary = asyncio.run(run_live(venue, engine, tty=False, install_signals=False))
    assert summary.reason == "venue ended"
    assert summary.simulated_s > 340
    cascade = [c for c in changes if c != "halted"]  # the final halt is the shutdown's
    assert len(cascade) <= 2, changes
    assert exchange.stats.placed > 0 and summary.fills > 0


def test_the_status_board_fits_80_columns_and_narrower_terminals_on_a_live_run():
    """Issue: the hand-written board repeated its header and ran lines together at 80 columns."""
    import io
    import re

    from market_maker.config import AppConfig
    from market_maker.engine import QuoteEngine
    from market_maker.runtime import SimVenue, run_live
    from market_maker.venues.sim import simulated_exchange

    params = scenario("calm-uninformed")
    exchange = simulated_exchange(params, 1)
    engine = QuoteEngine(engine_config(params, AppConfig()), exchange.instrument)
    out = io.StringIO()
    asyncio.run(
        run_live(
            SimVenue(exchange, speed=50.0),
            engine,
            duration_s=1.5,
            out=out,
            tty=True,
            install_signals=False,
        )
    )
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert "market_maker  SIM-BTC" in screen and "position" in screen
    from market_maker.runtime import StatusBoard

    board = StatusBoard(engine, io.StringIO(), tty=True, venue="sim")
    lines = board.render()
    assert len(lines) == 10 and all(len(line) <= 80 for line in lines)
    assert sum("market_maker" in line for line in lines) == 1  # one header, not eight
    from rich.console import Console

    narrow = Console(width=50, record=True, file=io.StringIO(), color_system=None)
    narrow.print(board.renderable())
    assert all(len(line) <= 50 for line in narrow.export_text().splitlines())


def read_pty(master: int, until, timeout_s: float) -> bytes:
    """What the terminal showed, read until ``until(text)`` holds or the child hung up."""
    import select

    got = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until(got):
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            got += chunk
    return got


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX terminal")
def test_ctrl_c_on_an_80_column_terminal_echoes_nothing_into_the_board():
    """Issue: Ctrl-C left a second top border. The terminal's ``^C`` echo, written after the
    80-column bottom border, wrapped and pushed the board down a line before its last redraw;
    the board now turns echo off while it is live (and back on after)."""
    import fcntl
    import pty
    import re
    import struct
    import termios

    from tests.test_config import ROOT

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": "80"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "market_maker", "run", "--duration", "60", "--speed", "5"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    try:
        shown = read_pty(master, lambda b: b.count(b"SIM-BTC") >= 3, 30.0)
        assert b"SIM-BTC" in shown, shown[-500:]
        os.write(master, b"\x03")  # the key, as the terminal receives it
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)  # and its signal (this terminal controls no session)
        shown += read_pty(master, lambda b: b"final state" in b, 20.0)
        proc.wait(20)
        restored = termios.tcgetattr(slave)[3]
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(slave)
        os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode("utf-8", "replace"))
    assert proc.returncode == 130
    assert "^C" not in text
    assert "Stopped: interrupted" in text and "Traceback" not in text
    assert all(len(line) <= 80 for line in text.replace("\r", "\n").split("\n"))
    assert restored & termios.ECHO and restored & termios.ECHOCTL  # echo is back
