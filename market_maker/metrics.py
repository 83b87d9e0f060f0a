"""Prometheus metrics over HTTP for ``market-maker run --metrics-port``.

Series built with ``prometheus_client`` (an ``EngineCollector`` in its own registry), labelled
with ``symbol`` and ``venue``: position, limits and which one binds, trading state, PnL, fees,
open orders and pending exposure, what rests at the venue per side against what is wanted
(and why a wanted level does not rest), fills, requests per fill and cycles held for the
request budget, rejections, refused inputs, sigma, trade activity and a histogram of
quote-cycle latency. ``GET /metrics`` is answered by a small asyncio server in
the engine's own event loop, so a scrape reads ``QuoteEngine.status()`` between two events,
never in the middle of one (``prometheus_client``'s HTTP server would read it from another
thread); the hot path only feeds the histogram.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from market_maker.engine import QuoteEngine
from market_maker.risk import BindingLimit, RefusalClass, TradingState
from market_maker.status import EngineStatus, NotResting

__all__ = [
    "CycleHistogram",
    "EngineCollector",
    "LatencyHistogram",
    "MetricsServer",
    "render_metrics",
]

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


class EngineCollector:
    """A ``prometheus_client`` collector that reads ``QuoteEngine.status()`` at scrape time.

    Every series carries ``symbol`` and ``venue`` labels, so one Prometheus can watch several
    engines.
    """

    def __init__(self, engine: QuoteEngine, cycles: CycleHistogram, venue: str) -> None:
        self.engine = engine
        self.cycles = cycles
        self.labels = {"symbol": engine.instrument.symbol, "venue": venue}

    def collect(self) -> Iterator[Metric]:
        s = self.engine.status()
        c = s.counter_dict()
        names, values = list(self.labels), list(self.labels.values())

        def gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=names)
            g.add_metric(values, 0.0 if value is None else float(value))
            return g

        def counter(name: str, doc: str, value: int) -> CounterMetricFamily:
            m = CounterMetricFamily(name, doc, labels=names)
            m.add_metric(values, value)
            return m

        yield gauge("mm_position_contracts", "Current position, contracts.", s.position)
        yield gauge(
            "mm_max_position_contracts",
            "Effective position limit.",
            s.limits.effective_max_position,
        )
        yield gauge(
            "mm_max_position_value_usd",
            "Derived limit, USD (0: static).",
            s.limits.max_position_value,
        )
        binding = GaugeMetricFamily(
            "mm_binding_limit",
            "Which limit binds (1 for the binding one).",
            labels=[*names, "limit"],
        )
        for limit in BindingLimit:
            binding.add_metric([*values, str(limit)], float(s.limits.binding_limit == limit))
        yield binding
        state = TradingState[s.trading_state.upper()]
        yield gauge("mm_trading_state", "0 active, 1 reducing, 2 paused, 3 halted.", state.value)
        states = GaugeMetricFamily(
            "mm_trading_state_is", "1 for the current trading state.", labels=[*names, "state"]
        )
        for st in TradingState:
            states.add_metric([*values, st.label], float(st is state))
        yield states
        yield gauge("mm_pnl_usd", "Cash plus position at the mid, after fees, USD.", s.pnl_usd)
        yield gauge("mm_fees_usd", "Fees paid, USD.", s.fees_usd)
        yield gauge("mm_sigma", "Volatility estimate, fraction per sqrt second.", s.market.sigma)
        yield gauge(
            "mm_trade_activity", "Trade intensity over its long-run average.", s.market.hawkes_ratio
        )
        yield gauge("mm_open_orders", "Orders resting or being placed.", s.open_orders)
        yield gauge(
            "mm_pending_bids_contracts", "Bid exposure that could still fill.", s.bids.pending
        )
        yield gauge(
            "mm_pending_asks_contracts", "Ask exposure that could still fill.", s.asks.pending
        )
        yield gauge(
            "mm_settling_orders", "Orders gone whose fills are in flight.", s.settling_orders
        )
        yield from _side_metrics(s, names, values)
        yield counter("mm_fills", "Fills applied.", s.fills)
        yield counter("mm_rejections", "New orders rejected.", c["rejections"])
        refused = CounterMetricFamily(
            "mm_venue_refusals",
            "Requests the venue refused, by the class of its text.",
            labels=[*names, "reason_class"],
        )
        for cls in RefusalClass:
            refused.add_metric([*values, str(cls)], s.refusals_by_class.get(str(cls), 0))
        yield refused
        yield counter("mm_quote_cycles", "Quote cycles run.", c["cycles"])
        yield counter(
            "mm_held_cycles",
            "Quote cycles held because the request budget was empty.",
            c["held_cycles"],
        )
        yield gauge(
            "mm_held_cycle_share",
            "Share of quote cycles held for the request budget.",
            c["held_cycles"] / c["cycles"] if c["cycles"] else 0.0,
        )
        yield counter("mm_requests_sent", "Places, cancels and modifies sent.", c["requests_sent"])
        yield gauge(
            "mm_requests_per_fill",
            "Places, cancels and modifies sent per fill (0 before the first fill).",
            c["requests_sent"] / s.fills if s.fills else 0.0,
        )
        yield counter("mm_snapshots", "Venue snapshots applied.", c["snapshots"])
        yield counter(
            "mm_position_corrections",
            "Snapshots that corrected the position (a fill lost or invented).",
            c["position_corrections"],
        )
        yield counter(
            "mm_orphans_cancelled",
            "Orders found at the venue that we did not know, cancelled.",
            c["orphans_cancelled"],
        )
        bad = CounterMetricFamily(
            "mm_bad_input", "Inputs refused by the plausibility gates.", labels=[*names, "kind"]
        )
        for kind in (
            "bad_books",
            "bad_trades",
            "bad_fills",
            "bad_accounts",
            "implausible_prices",
            "future_events",
            "out_of_order",
            "duplicate_fills",
            "unknown_fills",
        ):
            bad.add_metric([*values, kind], c[kind])
        yield bad
        cycles = self.cycles
        hist = HistogramMetricFamily("mm_quote_cycle_seconds", "Quote-cycle latency.", labels=names)
        running = 0
        buckets = []
        for bound, n in zip(_BUCKETS_US, cycles.counts, strict=False):
            running += n
            buckets.append((f"{bound / 1e6:g}", float(running)))
        buckets.append(("+Inf", float(cycles.count)))
        hist.add_metric(values, buckets, sum_value=cycles.sum_us / 1e6)
        yield hist


def _side_metrics(s: EngineStatus, names: list[str], values: list[str]) -> Iterator[Metric]:
    """Per side: what rests at the venue (acknowledged, not cancelled) against what is wanted,
    and why a wanted best level does not rest."""
    families = (
        GaugeMetricFamily(
            "mm_resting_orders",
            "Orders the venue has acknowledged and not cancelled.",
            labels=[*names, "side"],
        ),
        GaugeMetricFamily(
            "mm_resting_contracts", "Contracts resting at the venue.", labels=[*names, "side"]
        ),
        GaugeMetricFamily(
            "mm_resting_best_price",
            "Our best resting price (NaN: none rests).",
            labels=[*names, "side"],
        ),
        GaugeMetricFamily(
            "mm_wanted_levels", "Levels the strategy wants.", labels=[*names, "side"]
        ),
        GaugeMetricFamily(
            "mm_wanted_best_price",
            "The strategy's best wanted price (NaN: none wanted).",
            labels=[*names, "side"],
        ),
    )
    reasons = GaugeMetricFamily(
        "mm_not_resting",
        "1 when the wanted best level does not rest, labelled with the reason.",
        labels=[*names, "side", "reason"],
    )
    for label, side in (("bid", s.bids), ("ask", s.asks)):
        best = side.best_resting
        wanted = side.best_wanted
        numbers = (
            len(side.resting),
            sum(o.size for o in side.resting),
            math.nan if best is None else best.price,
            len(side.wanted),
            math.nan if wanted is None else wanted.price,
        )
        for family, number in zip(families, numbers, strict=True):
            family.add_metric([*values, label], float(number))
        for reason in _NOT_RESTING:
            reasons.add_metric([*values, label, reason], float(side.not_resting == reason))
    yield from families
    yield reasons


_NOT_RESTING = (
    NotResting.IN_FLIGHT,
    NotResting.BUDGET,
    NotResting.BACKOFF,
    NotResting.SNAPSHOT,
    NotResting.CAP,
    NotResting.WAITING,
)


def render_metrics(engine: QuoteEngine, cycles: CycleHistogram, venue: str = "sim") -> str:
    """The Prometheus text exposition of one engine (what ``GET /metrics`` answers)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine, cycles, venue))
    return generate_latest(registry).decode()


class MetricsServer:
    """``GET /metrics`` on ``host:port`` (loopback by default)."""

    def __init__(
        self,
        engine: QuoteEngine,
        cycles: CycleHistogram,
        port: int,
        host: str = "127.0.0.1",
        *,
        venue: str = "sim",
    ) -> None:
        self.engine = engine
        self.cycles = cycles
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EngineCollector(engine, cycles, venue))
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
            async with asyncio.timeout(5.0):  # the request line and its headers
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = request.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] == "/metrics":
                body = generate_latest(self.registry)
                head = "200 OK"
                ctype = CONTENT_TYPE_LATEST
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
