"""Prometheus metrics over HTTP for ``market-maker run --metrics-port``.

A minimal text-exposition endpoint (``GET /metrics``) on its own asyncio server: position,
limits and which one binds, trading state, PnL, fees, fills, rejections, sigma, trade activity
and a histogram of quote-cycle latency. Everything is read from ``QuoteEngine.status()`` at
scrape time; the hot path only feeds the histogram.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math

from market_maker.engine import QuoteEngine
from market_maker.risk import BindingLimit, TradingState

__all__ = ["CycleHistogram", "LatencyHistogram", "MetricsServer", "render_metrics"]

_BUCKETS_US = (5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 5_000.0)


class LatencyHistogram:
    """Cycle latencies in constant memory: log-spaced buckets 2 % wide from 100 ns to 10 s, so
    a day of events costs a few kilobytes and any percentile is within 2 %."""

    __slots__ = ("count", "counts")

    _FLOOR_NS = 100.0
    _LOG_STEP = math.log(1.02)
    _BUCKETS = 932  # 100 ns * 1.02**932 ~ 10 s

    def __init__(self) -> None:
        self.counts = [0] * (self._BUCKETS + 1)
        self.count = 0

    def observe_ns(self, ns: int) -> None:
        i = int(math.log(ns / self._FLOOR_NS) / self._LOG_STEP) if ns > self._FLOOR_NS else 0
        self.counts[i if i < self._BUCKETS else self._BUCKETS] += 1
        self.count += 1

    def percentile_us(self, q: float) -> float:
        """The ``q`` quantile (0..1) in microseconds: the middle of its bucket."""
        if self.count == 0:
            return 0.0
        rank = q * (self.count - 1)
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen > rank:
                return self._FLOOR_NS * math.exp((i + 0.5) * self._LOG_STEP) / 1000.0
        return self._FLOOR_NS * math.exp((self._BUCKETS + 0.5) * self._LOG_STEP) / 1000.0


class CycleHistogram:
    """Cumulative histogram of quote-cycle latency (microseconds in, seconds out)."""

    __slots__ = ("count", "counts", "sum_us")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS_US) + 1)
        self.count = 0
        self.sum_us = 0.0

    def observe(self, us: float) -> None:
        self.counts[bisect.bisect_left(_BUCKETS_US, us)] += 1
        self.count += 1
        self.sum_us += us


def render_metrics(engine: QuoteEngine, cycles: CycleHistogram) -> str:
    s = engine.status()
    lines: list[str] = []

    def gauge(name: str, value: float | None, doc: str) -> None:
        lines.append(f"# HELP {name} {doc}")
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name} {0.0 if value is None else float(value)!r}")

    def counter(name: str, value: int, doc: str) -> None:
        lines.append(f"# HELP {name} {doc}")
        lines.append(f"# TYPE {name} counter")
        lines.append(f"{name} {value}")

    gauge("mm_position_contracts", s["position"], "Current position, contracts.")
    gauge("mm_max_position_contracts", s["effective_max_position"], "Effective position limit.")
    gauge("mm_max_position_value_usd", s["max_position_value"], "Derived limit, USD (0: static).")
    lines.append("# HELP mm_binding_limit Which limit binds (1 for the binding one).")
    lines.append("# TYPE mm_binding_limit gauge")
    for limit in BindingLimit:
        lines.append(f'mm_binding_limit{{limit="{limit}"}} {int(s["binding_limit"] == limit)}')
    gauge(
        "mm_trading_state",
        TradingState[s["trading_state"].upper()].value,
        "0 active, 1 reducing, 2 paused, 3 halted.",
    )
    gauge("mm_pnl_usd", s["pnl_usd"], "Cash plus position at the mid, after fees, USD.")
    gauge("mm_fees_usd", s["fees_usd"], "Fees paid, USD.")
    gauge("mm_sigma", s["sigma"], "Volatility estimate, fraction per sqrt second.")
    gauge("mm_trade_activity", s["hawkes_ratio"], "Trade intensity over its long-run average.")
    gauge("mm_pending_bids_contracts", s["pending_bids"], "Bid exposure that could still fill.")
    gauge("mm_pending_asks_contracts", s["pending_asks"], "Ask exposure that could still fill.")
    counter("mm_fills_total", s["fills"], "Fills applied.")
    counter("mm_rejections_total", s["counters"]["rejections"], "New orders rejected.")
    counter("mm_quote_cycles_total", s["counters"]["cycles"], "Quote cycles run.")
    gauge("mm_settling_orders", s["settling_orders"], "Orders gone whose fills are in flight.")
    counter("mm_snapshots_total", s["counters"]["snapshots"], "Venue snapshots applied.")
    counter(
        "mm_position_corrections_total",
        s["counters"]["position_corrections"],
        "Snapshots that corrected the position (a fill lost or invented).",
    )
    counter(
        "mm_orphans_cancelled_total",
        s["counters"]["orphans_cancelled"],
        "Orders found at the venue that we did not know, cancelled.",
    )
    lines.append("# HELP mm_quote_cycle_seconds Quote-cycle latency.")
    lines.append("# TYPE mm_quote_cycle_seconds histogram")
    running = 0
    for bound, n in zip(_BUCKETS_US, cycles.counts, strict=False):
        running += n
        lines.append(f'mm_quote_cycle_seconds_bucket{{le="{bound / 1e6:g}"}} {running}')
    lines.append(f'mm_quote_cycle_seconds_bucket{{le="+Inf"}} {cycles.count}')
    lines.append(f"mm_quote_cycle_seconds_sum {cycles.sum_us / 1e6!r}")
    lines.append(f"mm_quote_cycle_seconds_count {cycles.count}")
    return "\n".join(lines) + "\n"


class MetricsServer:
    """``GET /metrics`` on ``host:port`` (loopback by default)."""

    def __init__(
        self, engine: QuoteEngine, cycles: CycleHistogram, port: int, host: str = "127.0.0.1"
    ) -> None:
        self.engine = engine
        self.cycles = cycles
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5.0)
            while (line := await asyncio.wait_for(reader.readline(), timeout=5.0)) not in (
                b"\r\n",
                b"\n",
                b"",
            ):
                del line
            parts = request.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] == "/metrics":
                body = render_metrics(self.engine, self.cycles).encode()
                head = "200 OK"
                ctype = "text/plain; version=0.0.4; charset=utf-8"
            else:
                body, head, ctype = b"not found\n", "404 Not Found", "text/plain"
            writer.write(
                f"HTTP/1.1 {head}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
