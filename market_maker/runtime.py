"""The async shell: venue <-> engine, pacing, status display, logging and graceful shutdown.

The engine stays pure; this module owns the event loop, the wall clock, signals and output.
It starts the engine with a venue snapshot (orders an earlier process left are cancelled
before the first quote) and hands it a ``Timer`` whenever ``timer_interval_s`` passes without an
event, so time-based checks (stale data, a cascade that has calmed down, settle timeouts) run
when the market is quiet. Shutdown (Ctrl-C, SIGTERM or ``--duration``) halts the kill switch,
which makes the next cycle cancel every order; the runtime keeps consuming events until every
order is settled (or a timeout passes), then prints a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import os
import signal
import statistics
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TextIO

import msgspec
from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from market_maker.engine import QuoteEngine
from market_maker.log import get_logger
from market_maker.metrics import CycleHistogram, LatencyHistogram, MetricsServer
from market_maker.model import Action, Cancel, Event, Fill, Timer
from market_maker.risk.kill_switch import TradingState
from market_maker.risk.refusals import RefusalTally, refusal_key
from market_maker.state import StateFile, describe_halt
from market_maker.status import RefusalCount, SideStatus
from market_maker.venues.base import Venue
from market_maker.venues.exchange import ExchangeCore

__all__ = [
    "RefusalLog",
    "RunSummary",
    "SimVenue",
    "StatusBoard",
    "format_run_summary",
    "quiet_terminal",
    "refusal_line",
    "run_live",
    "side_line",
]

_NS = 1_000_000_000


class SimVenue:
    """The simulated exchange (or a replay) paced to the wall clock, ``speed`` times faster."""

    def __init__(self, exchange: ExchangeCore, *, speed: float = 1.0, name: str = "sim") -> None:
        self.name = name
        self.exchange = exchange
        self.instrument = exchange.instrument
        self.speed = speed
        self._wall0 = 0.0
        self._virtual0 = 0
        self.final_open_orders: int | None = None
        """The exchange's own count after the shutdown sweep (None before it)."""

    async def connect(self) -> None:
        """Nothing to connect to: the simulated exchange lives in this process."""

    def now_ns(self) -> int:
        """The market time of the last event handed over: the engine acts at that instant,
        as in a backtest (wall-clock pacing only decides when events are handed over)."""
        return self.exchange.now_ns

    async def events(self) -> AsyncIterator[Event]:
        behind = 0
        while (ev := self.exchange.pop_next()) is not None:
            if self._wall0 == 0.0:
                self._wall0 = time.monotonic()
                self._virtual0 = ev.ts_ns
            due = self._wall0 + (ev.ts_ns - self._virtual0) / _NS / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                behind = 0
                await asyncio.sleep(delay)
            else:
                behind += 1
                if behind % 64 == 0:
                    # Running behind the clock: still let signals, timers and the status
                    # board run, or nothing could stop us.
                    await asyncio.sleep(0)
            yield ev

    async def submit(self, actions: Sequence[Action]) -> None:
        self.exchange.submit(actions, self.now_ns())

    async def cancel_all(self) -> None:
        """The venue's own sweep at shutdown, as a live venue does from its list of open
        orders: an order the engine no longer tracks (a place that committed in a block after
        the engine's last cancel) is cancelled too. Runs the exchange forward until its book
        holds nothing of ours (answers go nowhere: the engine has stopped)."""
        ex = self.exchange
        for _ in range(5):
            cloids = ex.resting_cloids()
            if not cloids and not ex.uncommitted():
                break
            if cloids:
                ex.submit([Cancel(cloid=c) for c in cloids], ex.now_ns)
            for _ in range(100_000):
                if ex.pop_next() is None or (not ex.uncommitted() and not ex.open_orders()):
                    break
        self.final_open_orders = ex.open_orders()

    async def close(self) -> None:
        """Nothing to release."""


class RunSummary(msgspec.Struct, kw_only=True):
    """What ``market-maker run`` prints when it stops."""

    reason: str
    wall_s: float
    simulated_s: float
    events: int
    quote_cycles: int
    fills: int
    position: float
    pnl_usd: float
    fees_usd: float
    open_orders: int
    """Orders left open at the end: the venue's confirmed count after its sweep where it has one
    (Hyperliquid), else what the engine believes."""
    trading_state: str
    cycle_us_p50: float
    cycle_us_p99: float
    maker_fee_bps: float | None = None
    """The maker rate the market trades at at the end (the venue's ``userFees`` on
    Hyperliquid, read again with each account sync)."""
    taker_fee_bps: float | None = None
    funding_usd: float = 0.0
    """Funding received (negative: paid) during the run, in the PnL."""
    funding_payments: int = 0


class StatusBoard:
    """A live status panel on a terminal (``rich``: fits the terminal's width, 80 columns
    included, and follows resizes); periodic JSON ``status`` events otherwise."""

    def __init__(
        self,
        engine: QuoteEngine,
        out: TextIO,
        *,
        tty: bool,
        interval_s: float = 0.25,
        venue: str = "",
    ) -> None:
        self.engine = engine
        self.out = out
        self.tty = tty
        self.venue = venue
        self.interval_s = interval_s if tty else 5.0
        self.cycle_us = LatencyHistogram()
        """Every cycle of the run, in constant memory."""
        self.recent_us: deque[float] = deque(maxlen=2000)
        self.console = Console(file=out, force_terminal=tty, highlight=False) if tty else None
        self._live: Live | None = None
        self._log = get_logger("status")

    def renderable(self) -> Panel:
        s = self.engine.status()
        limit = s.limits.effective_max_position
        use = abs(s.position) / limit if limit else 0.0
        recent = self.recent_us
        p50 = statistics.median(recent) if recent else 0.0
        state = s.trading_state
        why = "; ".join(s.reasons) or s.quoting_nothing or ""
        mid = s.market.mid
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(overflow="fold")
        head = Text(state.upper(), style=_STATE_STYLE.get(state, ""))
        if why:
            head.append(f"  {why}", style="dim")
        grid.add_row("state", head)
        grid.add_row("mid", "-" if mid is None else f"{mid:,.2f}")
        grid.add_row("bid", side_line(s.bids, state))
        grid.add_row("ask", side_line(s.asks, state))
        grid.add_row(
            "position",
            f"{s.position:.4f} of {limit:.4f} ({use:.1%})  binds: {s.limits.binding_limit}",
        )
        grid.add_row(
            "pending",
            f"bids {s.bids.pending:.4f}  asks {s.asks.pending:.4f}  "
            f"open {s.open_orders}  settling {s.settling_orders}",
        )
        grid.add_row("PnL", f"{s.pnl_usd:,.2f} USD  fees {s.fees_usd:,.2f}  fills {s.fills}")
        if s.last_refusal:
            grid.add_row("refused", refusal_line(s.refusals, s.last_refusal))
        grid.add_row(
            "market",
            f"sigma {s.market.sigma:.6f}/sqrt s  activity {s.market.hawkes_ratio:.2f}x  "
            f"cycle p50 {p50:.1f} us",
        )
        title = f"market_maker  {self.engine.instrument.symbol}"
        return Panel(grid, title=title, subtitle=self.venue or None, title_align="left")

    def render(self) -> list[str]:
        """The panel as plain lines, ``width`` columns (for tests and non-live output)."""
        console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
        console.print(self.renderable())
        return console.export_text().rstrip("\n").split("\n")

    def show(self) -> None:
        if not self.tty:
            s = self.engine.status()
            bid, ask = s.bids.best_resting, s.asks.best_resting
            sizer = self.engine.sizer  # prices and sizes from their ticks and lots: no noise
            self._log.info(
                "status",
                state=s.trading_state,
                mid=None if s.market.mid is None else sizer.exact_mid(s.market.mid),
                position=sizer.exact_size(s.position),
                limit=s.limits.effective_max_position,
                binding=s.limits.binding_limit,
                pnl_usd=round(s.pnl_usd, 4),
                fills=s.fills,
                open_orders=s.open_orders,
                resting_bid=None if bid is None else sizer.exact_price(bid.price),
                resting_ask=None if ask is None else sizer.exact_price(ask.price),
                bid_not_resting=s.bids.not_resting,
                ask_not_resting=s.asks.not_resting,
                reasons=list(s.reasons),
                quoting_nothing=s.quoting_nothing,
                refusals=sum(r.count for r in s.refusals),
                last_refusal=s.last_refusal or None,
            )
            return
        if self._live is not None:
            self._live.update(self.renderable(), refresh=True)
        elif self.console is not None:
            self.console.print(self.renderable())

    async def loop(self) -> None:
        if not self.tty or self.console is None:
            while True:
                self.show()
                await asyncio.sleep(self.interval_s)
        fd = _terminal_fd(self.out)
        quiet = quiet_terminal(fd) if fd is not None else contextlib.nullcontext()
        with (
            quiet,
            Live(self.renderable(), console=self.console, auto_refresh=False) as live,
        ):
            self._live = live
            try:
                while True:
                    live.update(self.renderable(), refresh=True)
                    await asyncio.sleep(self.interval_s)
            finally:
                live.update(self.renderable(), refresh=True)
                self._live = None


def _terminal_fd(out: TextIO) -> int | None:
    """The terminal the board draws on (its stream's, else stdin's), or None."""
    for stream in (out, sys.stdin):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue
        if os.isatty(fd):
            return fd
    return None


@contextlib.contextmanager
def quiet_terminal(fd: int) -> Iterator[None]:
    """No echo of keystrokes on terminal ``fd`` while the board is live, then as it was.

    The board redraws itself by moving the cursor up its own height; a ``^C`` the terminal
    echoes after the bottom border (80 columns wide, so it wraps) pushes the board down one
    line, and the redraw then leaves the old top border behind. (POSIX; elsewhere nothing.)"""
    try:
        import termios
    except ImportError:  # Windows
        yield
        return
    try:
        old = termios.tcgetattr(fd)
    except termios.error:
        yield
        return
    new = list(old)
    new[3] = new[3] & ~(termios.ECHO | termios.ECHOCTL)
    try:
        termios.tcsetattr(fd, termios.TCSANOW, new)
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, old)


_STATE_STYLE = {
    "active": "bold green",
    "reducing": "bold yellow",
    "paused": "bold yellow",
    "halted": "bold red",
}


def refusal_line(counts: Sequence[RefusalCount], last: str) -> str:
    """The board's ``refused`` row: how many (post-only races included), and the venue's
    latest words with their count, e.g.
    ``3: Insufficient margin to place order. asset=1 (3x, margin)``."""
    total = sum(c.count for c in counts)
    key = refusal_key(last)
    same = next((c for c in counts if refusal_key(c.text) == key), None)
    if same is None:
        return f"{total}: {last}"
    return f"{total}: {last} ({same.count}x, {same.refusal_class})"


class RefusalLog:
    """The venue's refusals in the log, one line per distinct text with its count: the first
    of a text at once, then at most one line per text every ``every_s`` while it keeps
    coming, and a last line for each whose count grew since (``flush``)."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.seen = 0
        self._logged: dict[str, tuple[int, float]] = {}
        self._log = get_logger("venue")

    def update(self, tally: RefusalTally, now_s: float, *, final: bool = False) -> None:
        if tally.total == self.seen and not final:
            return
        self.seen = tally.total
        for c in tally.counts():
            key = refusal_key(c.text)
            count, at = self._logged.get(key, (0, -math.inf))
            if c.count == count or (not final and count and now_s - at < self.every_s):
                continue
            self._logged[key] = (c.count, now_s)
            self._log.warning(
                "venue_refused", text=c.text, refusal_class=c.refusal_class, count=c.count
            )


def side_line(side: SideStatus, state: str) -> str:
    """One side of the board: our best order resting at the venue (acknowledged, not
    cancelled) and, when the wanted best level does not rest, that level and why, e.g.
    ``wanted 0.0100 @ 99,847.00, not resting: budget`` (one line within 80 columns)."""
    rests = side.best_resting
    wants = side.best_wanted
    if wants is not None and side.not_resting:
        why = f"not resting: {side.not_resting}"
        if rests is None:
            return f"wanted {wants.size:.4f} @ {wants.price:,.2f}, {why}"
        wanted = f"{wants.price:,.2f}"
        if wants.size != rests.size:
            wanted = f"{wants.size:.4f} @ {wanted}"
        return f"{rests.size:.4f} @ {rests.price:,.2f}; wanted {wanted}, {why}"
    if rests is None:
        return "-" if state == "active" else f"-  not quoting: {state}"
    text = f"{rests.size:.4f} @ {rests.price:,.2f}"
    if wants is None:
        return text + ("  leaving" if rests.leaving else "") + ", not wanted"
    return text + f"  ({len(side.resting)} resting, {len(side.wanted)} wanted)"


async def run_live(
    venue: Venue,
    engine: QuoteEngine,
    *,
    duration_s: float | None = None,
    out: TextIO | None = None,
    tty: bool | None = None,
    shutdown_timeout_s: float = 5.0,
    install_signals: bool = True,
    metrics_port: int | None = None,
    timer_interval_s: float = 0.1,
    state_file: StateFile | None = None,
) -> RunSummary:
    """Run until ``duration_s`` (wall seconds), a signal, or the venue ends; then shut down.

    With ``state_file``, the kill switch starts from what the state file holds (a latched halt
    stays latched, the UTC day's opening equity is kept) and the file follows it."""
    out = out or sys.stdout
    tty = out.isatty() if tty is None else tty
    log = get_logger("runtime")
    venue_name = getattr(venue, "name", type(venue).__name__)
    board = StatusBoard(engine, out, tty=tty, venue=venue_name)
    stop = asyncio.Event()
    reason = ["venue ended"]
    loop = asyncio.get_running_loop()

    def request_stop(why: str) -> None:
        if not stop.is_set():
            reason[0] = why
            stop.set()

    # add_signal_handler is POSIX-only; elsewhere Ctrl-C still ends the run, without the summary.
    install_signals = install_signals and sys.platform != "win32"
    if install_signals:
        for sig, name in ((signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")):
            loop.add_signal_handler(sig, request_stop, name)
    if duration_s is not None:
        loop.call_later(duration_s, request_stop, "duration reached")
    stop_at = math.inf if duration_s is None else time.monotonic() + duration_s

    ks = engine.kill_switch
    saved_version, saved_at = -1, 0.0
    if state_file is not None:
        saved = state_file.load()
        if saved is not None:
            ks.restore(saved.kill_switch)
            memory = saved.kill_switch
            log.info(
                "state_restored",
                path=str(state_file.path),
                day_start_equity=memory.day_start_equity,
                peak_equity=memory.peak_equity,
                halts=[describe_halt(h) for h in memory.halts],
            )
            for h in memory.halts:
                log.error(
                    "halted_at_start", reason=describe_halt(h), clear_with="market-maker reset"
                )
        saved_version = ks.memory_version

    def save_state(now: float) -> None:
        nonlocal saved_version, saved_at
        if state_file is not None:
            state_file.save(ks.memory())
            saved_version, saved_at = ks.memory_version, now

    histogram = CycleHistogram()
    metrics = None
    if metrics_port is not None:
        metrics = MetricsServer(engine, histogram, metrics_port, venue=venue_name)
        await metrics.start()
        log.info("metrics", url=f"http://127.0.0.1:{metrics_port}/metrics")
    await venue.connect()
    log.info("started", symbol=engine.instrument.symbol, strategy=engine.config.strategy.kind)
    refusal_log = RefusalLog()
    board_task = asyncio.create_task(board.loop())
    queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue(maxsize=1024)
    pump_task = asyncio.create_task(_pump(venue, queue))
    wall0 = time.monotonic()
    first_ns: int | None = None
    state = engine.trading_state
    idle = ""
    shutting_down = False
    deadline = 0.0
    clock = time.perf_counter_ns
    try:
        while True:
            try:
                got = queue.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    async with asyncio.timeout(timer_interval_s):
                        got = await queue.get()
                except TimeoutError:
                    got = Timer(ts_ns=venue.now_ns())  # quiet market: time still passes
            if got is None:
                break
            if isinstance(got, BaseException):
                raise got  # the venue's stream failed: shut down through the finally below
            ev = got
            if first_ns is None:
                first_ns = ev.ts_ns
                start = engine.start(ev.ts_ns)
                await venue.submit(start)
            t0 = clock()
            actions = engine.on_event(ev)
            us = (clock() - t0) / 1000.0
            board.cycle_us.observe_ns(int(us * 1000.0))
            board.recent_us.append(us)
            histogram.observe(us)
            if actions:
                await venue.submit(actions)
            if isinstance(ev, Fill):
                log.info(
                    "fill",
                    side=str(ev.side),
                    price=engine.sizer.exact_price(ev.price),
                    size=engine.sizer.exact_size(ev.size),
                    position=engine.sizer.exact_size(engine.position),
                )
            if state_file is not None and ks.memory_version != saved_version:
                now = time.monotonic()
                if ks.state is TradingState.HALTED or now - saved_at >= 1.0:
                    save_state(now)  # a halt at once; equity at most once a second
            if engine.refusals.total != refusal_log.seen:
                refusal_log.update(engine.refusals, time.monotonic())
            if engine.idle_reason != idle:
                idle = engine.idle_reason
                if idle:
                    log.warning("quoting_nothing", reason=idle)
                else:
                    log.info("quoting_again")
            if engine.trading_state is not state:
                state = engine.trading_state
                log.warning(
                    "trading_state", state=state.label, reasons=list(engine.status().reasons)
                )
            if not shutting_down and time.monotonic() >= stop_at:
                request_stop("duration reached")  # even if the venue never yields to the loop
            if stop.is_set() and not shutting_down:
                shutting_down = True
                deadline = time.monotonic() + shutdown_timeout_s
                log.info("shutdown", reason=reason[0], open_orders=engine.status().open_orders)
                engine.halt(f"shutdown: {reason[0]}", persist=False)
                cancels = engine.on_event(Timer(ts_ns=venue.now_ns()))
                if cancels:
                    await venue.submit(cancels)
            if shutting_down and (
                engine.status().tracked_orders == 0 or time.monotonic() > deadline
            ):
                break
    finally:
        for task in (board_task, pump_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # The venue's own sweep, whatever the engine believes (a live venue confirms with its
        # list of open orders; the simulated ones have nothing left to sweep).
        await venue.cancel_all()
        await venue.close()
        save_state(time.monotonic())
        if metrics is not None:
            await metrics.stop()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    refusal_log.update(engine.refusals, time.monotonic(), final=True)
    status = engine.status()
    # The venue's own count after its sweep, where it has one: the engine may still believe in
    # an order whose cancel was refused and backing off when the shutdown deadline came.
    confirmed: int | None = getattr(venue, "final_open_orders", None)
    believed = status.open_orders
    if confirmed is not None and confirmed != believed:
        log.warning("open_orders_settled_by_venue", engine_believed=believed, venue=confirmed)
    summary = RunSummary(
        reason=reason[0],
        wall_s=time.monotonic() - wall0,
        simulated_s=(engine.now_ns - (engine.now_ns if first_ns is None else first_ns)) / _NS,
        events=engine.counters.events,
        quote_cycles=engine.counters.cycles,
        fills=status.fills,
        position=status.position,
        pnl_usd=status.pnl_usd,
        fees_usd=status.fees_usd,
        open_orders=believed if confirmed is None else confirmed,
        trading_state=status.trading_state,
        cycle_us_p50=board.cycle_us.percentile_us(0.50),
        cycle_us_p99=board.cycle_us.percentile_us(0.99),
        maker_fee_bps=engine.instrument.maker_fee_bps,
        taker_fee_bps=engine.instrument.taker_fee_bps,
        funding_usd=status.funding_usd,
        funding_payments=status.funding_payments,
    )
    log.info("stopped", **msgspec.to_builtins(summary))
    return summary


async def _pump(venue: Venue, queue: asyncio.Queue[Event | BaseException | None]) -> None:
    """Venue events into ``queue``; then None when the venue ends, or the error it raised."""
    end: BaseException | None = None
    try:
        async for ev in venue.events():
            await queue.put(ev)
    except Exception as exc:  # handed to the run loop, which raises it
        end = exc
    await queue.put(end)


def format_run_summary(s: RunSummary) -> str:
    return "\n".join(
        [
            f"Stopped: {s.reason}. {s.wall_s:.1f} s wall, {s.simulated_s:.1f} s of market.",
            f"  events {s.events:,}  quote cycles {s.quote_cycles:,}  "
            f"cycle p50 {s.cycle_us_p50:.1f} us  p99 {s.cycle_us_p99:.1f} us",
            f"  fills {s.fills}  position {s.position:.4f}  PnL {s.pnl_usd:,.2f} USD  "
            f"fees {s.fees_usd:,.2f} USD",
            f"  open orders {s.open_orders}  final state {s.trading_state}",
        ]
        + (
            [f"  fee rates maker {s.maker_fee_bps:g} bp, taker {s.taker_fee_bps:g} bp"]
            if s.maker_fee_bps is not None and s.taker_fee_bps is not None
            else []
        )
        + (
            [f"  funding {s.funding_usd:+,.4f} USD over {s.funding_payments} payments"]
            if s.funding_payments
            else []
        )
    )
