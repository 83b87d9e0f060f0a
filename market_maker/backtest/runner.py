"""Backtests: the engine against a simulated exchange in virtual time, as fast as the CPU allows.

The same ``QuoteEngine`` that runs live consumes the exchange's events and its actions go back to
the exchange with latency; nothing in the engine knows it is a backtest. The runner measures the
engine (microseconds per event) and the outcome from the exchange's side (the truth about
position, cash and fees, and what our orders held: the quoting, two-sided and spread figures are
the exchange's time-weighted measure of our resting orders, ``venues/resting.py``), and checks
the position limit after every event. What the engine wanted is reported beside it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import msgspec
import numpy as np

from market_maker.backtest.analytics import FillLedger, FillRecord, PnlAttribution
from market_maker.engine import QuoteEngine, QuotingStats
from market_maker.metrics import LatencyHistogram
from market_maker.model import BookUpdate, Event, Instrument, RequestSnapshot, Trade
from market_maker.risk import BindingLimit, PositionLimits, TradingState
from market_maker.venues.exchange import ExchangeCore

__all__ = [
    "WARM_UP",
    "BacktestResult",
    "Latencies",
    "LatencyHistogram",
    "Recording",
    "run_backtest",
    "warm_up",
]

_NS = 1_000_000_000
_MINUTES_PER_YEAR = 525_600
_MARKET = frozenset((BookUpdate, Trade))


class Recording(msgspec.Struct, kw_only=True):
    """Once-a-second samples for plots, every change of our best quotes, and every fill."""

    start_ns: int = 0
    """The first event's time (``t_s`` counts from it): nanoseconds since the Unix epoch for
    a capture, 0 for a simulated scenario."""
    instrument: Instrument | None = None
    """The market's exchange rules: prices and sizes are written from its ticks and lots."""
    t_s: list[float] = msgspec.field(default_factory=list)
    mid: list[float] = msgspec.field(default_factory=list)
    bid: list[float | None] = msgspec.field(default_factory=list)
    """Our best bid resting at the venue at each sample (None: none rested)."""
    ask: list[float | None] = msgspec.field(default_factory=list)
    position: list[float] = msgspec.field(default_factory=list)
    limit: list[float] = msgspec.field(default_factory=list)
    pnl_usd: list[float] = msgspec.field(default_factory=list)
    utilisation: list[float] = msgspec.field(default_factory=list)
    binding: list[str] = msgspec.field(default_factory=list)
    state: list[str] = msgspec.field(default_factory=list)
    quote_changes: list[tuple[float, float | None, float | None]] = msgspec.field(
        default_factory=list
    )
    """(t_s, best bid, best ask) each time either of our best orders resting at the venue
    changes (the venue's own time; None: nothing rests on that side)."""
    wanted_changes: list[tuple[float, float | None, float | None]] = msgspec.field(
        default_factory=list
    )
    """(t_s, best bid, best ask) each time either of the engine's wanted best quotes changes."""
    fills: list[FillRecord] = msgspec.field(default_factory=list)
    """Every fill as the venue executed it, with its markouts."""


class Latencies(msgspec.Struct, frozen=True, kw_only=True):
    """The one-way latencies a backtest ran with, milliseconds (jitter: exponential, mean)."""

    feed_ms: float
    """Market data, venue to engine."""
    feed_jitter_ms: float
    feed_source: str
    """capture (its own stamps), default (the capture could not tell), given, scenario."""
    feed_detail: str = ""
    order_ms: float
    """Requests to the venue, and its answers back."""
    fill_ms: float


class BacktestResult(msgspec.Struct, kw_only=True):
    """The summary ``market-maker backtest --json`` prints."""

    source: str
    strategy: str
    seed: int
    duration_s: float
    interrupted: bool = False
    """Stopped by Ctrl-C: the figures cover the part that ran."""
    pnl_usd: float
    sharpe: float | None
    """Annualised from one-minute PnL changes; None (JSON null) under an hour of data."""
    max_drawdown_usd: float
    fills: int
    maker_volume_usd: float
    fees_usd: float
    attribution: PnlAttribution | None = None
    """PnL split into spread capture, inventory and fees; markouts 1, 10 and 60 s after each
    fill (``backtest/analytics.py``)."""
    final_position: float
    max_abs_position: float
    max_limit_utilisation: float
    limit_breaches: int
    time_reduce_only_s: float
    kill_switch_events: int
    state_changes: list[tuple[float, str, list[str]]]
    quote_cycles: int
    events: int
    market_events: int
    orders_sent: int
    rejections: int
    cycle_us_p50: float
    cycle_us_p99: float
    events_per_s: float
    wall_s: float
    binding_share: dict[str, float]
    engine_counters: dict[str, int]
    capture: dict[str, int] | None = None
    """What the replay read, skipped and repaired (lines, bad_lines, bad_timestamps,
    reordered, depth_gaps, ...); None for simulated scenarios."""
    quoting_nothing: str = ""
    """The last reason the engine could not quote while trading was allowed ("" if never)."""
    time_quoting_nothing_s: float = 0.0
    start_ns: int = 0
    """The first event's time: Unix epoch nanoseconds for a capture, 0 for a scenario."""
    time_in_state_s: dict[str, float] = msgspec.field(default_factory=dict)
    """Seconds spent in each trading state (active, reducing, paused, halted)."""
    time_quoting_s: float = 0.0
    """Seconds with at least one of our orders resting at the venue."""
    time_two_sided_s: float = 0.0
    """Seconds with a bid and an ask of ours resting at the venue."""
    time_bid_only_s: float = 0.0
    """Seconds with only bids resting at the venue."""
    time_ask_only_s: float = 0.0
    """Seconds with only asks resting at the venue."""
    mean_quoted_spread_bps: float | None = None
    """Our best resting ask minus best resting bid over their midpoint, time-weighted over the
    time both rested (measured at the venue)."""
    time_wanted_quoting_s: float = 0.0
    """Seconds with at least one quote wanted by the engine (resting or not)."""
    time_wanted_two_sided_s: float = 0.0
    """Seconds with a bid and an ask wanted by the engine (resting or not)."""
    latency: Latencies | None = None
    """The latencies used (set by ``run_session``)."""
    time_active_wanting_both_s: float = 0.0
    """Seconds ACTIVE with a bid and an ask wanted (what the venue's two-sided share is of)."""
    time_resting_both_s: float = 0.0
    """Of those seconds, how many the venue held a bid and an ask of ours both resting
    (acknowledged, not cancelled), measured from the simulated exchange's own book."""
    resting_two_sided_share: float | None = None
    """``time_resting_both_s / time_active_wanting_both_s`` (None: never wanted both)."""
    requests_per_fill: float | None = None
    """Places, cancels and modifies sent per fill (None: no fills)."""
    held_cycle_share: float = 0.0
    """Share of quote cycles held because the request budget was empty."""
    quoting: dict[str, float] = msgspec.field(default_factory=dict)
    """What each ``[quoting]`` feature that was on did, over the cycles that ran the
    strategy: ``fair_shift_bps`` (mean distance of the fair value from the mid),
    ``floor_bps`` (mean adverse floor, adverse move plus fee), ``toxic_share`` (share of
    those cycles with a side held back). Empty when every feature was off."""
    market: str = ""
    """The market in its own terms (``Instrument.describe``)."""
    settlement_currency: str = "USD"
    pnl_settlement: float = 0.0
    """PnL in the settlement currency (the coin, for an inverse contract; USD otherwise)."""
    fees_settlement: float = 0.0
    maker_volume_settlement: float = 0.0
    funding_usd: float = 0.0
    """Funding received (negative: paid) at the funding times the run crossed."""
    funding_settlement: float = 0.0
    funding_payments: int = 0
    notes: list[str] = msgspec.field(default_factory=list)
    """What the summary should say about its inputs: the market, fees, funding, depth."""

    def timing_free(self) -> dict[str, object]:
        """Everything but the wall-clock measurements (for determinism checks)."""
        data = msgspec.to_builtins(self)
        for key in ("cycle_us_p50", "cycle_us_p99", "events_per_s", "wall_s"):
            data.pop(key)
        return data  # type: ignore[no-any-return]


def run_backtest(
    exchange: ExchangeCore,
    engine: QuoteEngine,
    *,
    source: str,
    seed: int,
    end_ns: int | None = None,
    record: bool = False,
    progress: Callable[[float], None] | None = None,
    count_from_ns: int | None = None,
) -> tuple[BacktestResult, Recording | None]:
    """Run until the market ends (or ``end_ns``); cancel everything at the end.

    ``count_from_ns``: the events before it are a warm-up (``warm_up``): the engine reads the
    market but quotes nothing, and the result counts from the first event at or after it."""
    lot = exchange.lot
    initial = exchange.initial_equity
    rec = Recording() if record else None
    timings = LatencyHistogram()
    clock = time.perf_counter_ns
    ks = engine.kill_switch
    to_price = engine.sizer.ticks_to_price
    events = 0
    market_events = 0
    orders_sent = 0
    breaches = 0
    max_abs_q = 0.0
    max_util = 0.0
    reducing_ns = 0
    idle_ns = 0
    idle_reason = ""
    state = TradingState.ACTIVE
    state_changes: list[tuple[float, str, list[str]]] = []
    state_ns = dict.fromkeys(TradingState, 0)
    ledger = exchange.ledger = FillLedger()
    meter = exchange.meter
    if rec is not None and meter.changes is None:
        meter.changes = []
    wanted_ns = wanted_two_sided_ns = 0
    wanted_bid = wanted_ask = 0  # the engine's wanted best quotes (ticks; 0: none)
    wanting_both_ns = resting_both_ns = 0
    binding_ns: dict[BindingLimit, int] = {}
    start_ns = last_ns = next_sample = -1
    equity_samples: list[float] = []
    next_progress = 0.0
    read_fraction: Callable[[], float] | None = getattr(exchange.market, "fraction_done", None)
    # Time in each state, wanting quotes, binding limit and so on is kept in spans: the values
    # the last event left hold until an event changes one of them, and only then is the span
    # closed (identity checks per event, the arithmetic once per change; the same sums as
    # adding every event's gap). The limit is re-checked when the position, the mark or the
    # limits change, and a breach counts every event it lasts, as a per-event check would.
    span_ns = -1  # start of the open span
    span_both = 0  # the venue's two-sided time at its start
    span_wanted: object = None
    span_limits: PositionLimits | None = None
    span_idle = engine.idle_reason
    wants_both = False  # ACTIVE and wanting a bid and an ask, through the open span
    check_key: tuple[int, float, PositionLimits | None] | None = None
    breached = False
    limit = aq = 0.0
    wall0 = time.perf_counter()
    interrupted = False

    def close_span(ts: int) -> None:
        nonlocal idle_ns, reducing_ns, wanted_ns, wanted_two_sided_ns, wanting_both_ns
        nonlocal resting_both_ns, span_ns, span_both
        dt = ts - span_ns
        venue_both = meter.both_ns_at(ts)
        if dt > 0:
            if span_idle:
                idle_ns += dt
            if state is TradingState.REDUCING:
                reducing_ns += dt
            state_ns[state] += dt
            if wanted_bid or wanted_ask:
                wanted_ns += dt
                if wanted_bid and wanted_ask:
                    wanted_two_sided_ns += dt
            key = BindingLimit.STATIC if span_limits is None else span_limits.binding
            binding_ns[key] = binding_ns.get(key, 0) + dt
        if wants_both:
            wanting_both_ns += dt
            resting_both_ns += venue_both - span_both
        span_ns = ts
        span_both = venue_both

    pending: Event | None = None
    started = False
    if count_from_ns is not None:
        pending, started = warm_up(exchange, engine, count_from_ns)
    counters0 = engine.status().counter_dict()
    cycles0, held0 = engine.counters.cycles, engine.counters.held_cycles
    try:
        while True:
            ev: Event | None = pending
            if ev is None:
                ev = exchange.pop_next()
            else:
                pending = None
            if ev is None or (end_ns is not None and ev.ts_ns > end_ns):
                break
            ts = ev.ts_ns
            if start_ns < 0:
                start_ns = last_ns = next_sample = span_ns = ts
                span_both = meter.both_ns_at(ts)
                span_limits = ks.limits
                if not started:  # quote once the venue says what it holds
                    exchange.submit(engine.start(ts), ts)
            t0 = clock()
            actions = engine.on_event(ev)
            timings.observe_ns(clock() - t0)
            events += 1
            if type(ev) in _MARKET:
                market_events += 1
            if actions:
                orders_sent += sum(1 for a in actions if type(a) is not RequestSnapshot)
                exchange.submit(actions, ts)

            # The limit, checked at every instant against the exchange's position (the truth).
            lots = exchange.position_lots
            mark = engine.unit_value
            limits = ks.limits
            if check_key is None or (lots, mark, limits) != check_key:
                check_key = (lots, mark, limits)
                aq = abs(lots) * lot
                limit = ks.max_position(mark)
                if aq > max_abs_q:
                    max_abs_q = aq
                breached = aq > limit + lot * 1.000001
                if limit > 0.0 and aq / limit > max_util:
                    max_util = aq / limit
            if breached:
                breaches += 1
            last_ns = ts
            wanted = engine.wanted
            idle = engine.idle_reason
            if (
                wanted is not span_wanted
                or ks.state is not state
                or limits is not span_limits
                or idle is not span_idle
            ):
                close_span(ts)
                if idle:
                    idle_reason = idle
                span_idle = idle
                span_limits = limits
                span_wanted = wanted
                bid, ask = engine.wanted_touch
                wants_both = bool(bid) and bool(ask) and ks.state is TradingState.ACTIVE
                if bid != wanted_bid or ask != wanted_ask:
                    wanted_bid, wanted_ask = bid, ask
                    if rec is not None:
                        rec.wanted_changes.append(
                            (
                                (ts - start_ns) / _NS,
                                to_price(bid) if bid else None,
                                to_price(ask) if ask else None,
                            )
                        )
                if ks.state is not state:
                    state = ks.state
                    state_changes.append(
                        (
                            (ts - start_ns) / _NS,
                            state.label,
                            [f"{r.trigger}: {r.detail}" for r in ks.reasons],
                        )
                    )
            if ts >= next_sample:
                next_sample += _NS
                equity = initial + exchange.pnl_usd()
                equity_samples.append(equity)
                if rec is not None:
                    _sample(
                        rec, engine, exchange, (ts - start_ns) / _NS, limit, equity - initial, aq
                    )
                if progress is not None:
                    if end_ns is not None:
                        done = (ts - start_ns) / max(1, end_ns - start_ns)
                    elif read_fraction is not None:
                        done = read_fraction()  # a replay: how much of the file is read
                    else:
                        done = 0.0
                    if done >= next_progress:
                        progress(min(1.0, done))
                        next_progress = done + 0.01
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C: stop here and summarise what ran
    if span_ns >= 0:
        close_span(last_ns)
    if progress is not None and not interrupted:
        progress(1.0)
    wall = time.perf_counter() - wall0
    # Orders still resting at the end would be cancelled: no further fills count.
    pnl = exchange.pnl_usd()
    equity_samples.append(initial + pnl)
    duration_s = (last_ns - start_ns) / _NS if start_ns >= 0 else 0.0
    stats = exchange.stats
    status = engine.status()
    cycles = engine.counters.cycles - cycles0
    held_cycles = engine.counters.held_cycles - held0
    counters = {k: v - counters0.get(k, 0) for k, v in status.counter_dict().items()}
    total_binding = sum(binding_ns.values()) or 1
    # What rested, from the venue's own clock, over exactly the run's span.
    first = meter.totals(start_ns) if start_ns >= 0 else meter.totals(0)
    held = meter.totals(last_ns) if start_ns >= 0 else first
    both_ns = held.both_ns - first.both_ns
    if rec is not None:
        rec.start_ns = max(0, start_ns)
        rec.instrument = engine.sizer.instrument
        rec.fills = ledger.fills
        rec.quote_changes = [
            ((t - start_ns) / _NS, b, a)
            for t, b, a in meter.changes or ()
            if start_ns <= t <= last_ns
        ]
    result = BacktestResult(
        source=source,
        strategy=engine.config.strategy.kind,
        seed=seed,
        duration_s=duration_s,
        interrupted=interrupted,
        pnl_usd=pnl,
        sharpe=_sharpe(equity_samples),
        max_drawdown_usd=_max_drawdown(equity_samples),
        fills=stats.fills,
        maker_volume_usd=stats.maker_volume_usd,
        fees_usd=stats.fees_usd,
        attribution=ledger.attribution(exchange.mid),
        final_position=exchange.position,
        max_abs_position=max_abs_q,
        max_limit_utilisation=max_util,
        limit_breaches=breaches,
        time_reduce_only_s=reducing_ns / _NS,
        kill_switch_events=len(state_changes),
        state_changes=state_changes,
        quote_cycles=cycles,
        events=events,
        market_events=market_events,
        orders_sent=orders_sent,
        rejections=stats.rejected_post_only + stats.rejected_invalid + stats.rejected_rate_limit,
        cycle_us_p50=timings.percentile_us(0.50),
        cycle_us_p99=timings.percentile_us(0.99),
        events_per_s=events / wall if wall > 0 else math.inf,
        wall_s=wall,
        binding_share={str(k): v / total_binding for k, v in sorted(binding_ns.items())},
        engine_counters=counters,
        quoting_nothing=idle_reason,
        time_quoting_nothing_s=idle_ns / _NS,
        start_ns=max(0, start_ns),
        time_in_state_s={st.label: ns / _NS for st, ns in state_ns.items()},
        time_quoting_s=(held.any_ns - first.any_ns) / _NS,
        time_two_sided_s=both_ns / _NS,
        time_bid_only_s=(held.bid_only_ns - first.bid_only_ns) / _NS,
        time_ask_only_s=(held.ask_only_ns - first.ask_only_ns) / _NS,
        mean_quoted_spread_bps=(
            (held.spread_bps_ns - first.spread_bps_ns) / both_ns if both_ns else None
        ),
        time_wanted_quoting_s=wanted_ns / _NS,
        time_wanted_two_sided_s=wanted_two_sided_ns / _NS,
        time_active_wanting_both_s=wanting_both_ns / _NS,
        time_resting_both_s=resting_both_ns / _NS,
        resting_two_sided_share=resting_both_ns / wanting_both_ns if wanting_both_ns else None,
        requests_per_fill=orders_sent / stats.fills if stats.fills else None,
        held_cycle_share=held_cycles / cycles if cycles else 0.0,
        quoting=_quoting(engine),
        market=exchange.instrument.describe(),
        settlement_currency=exchange.instrument.settlement_currency,
        pnl_settlement=exchange.pnl_settlement(),
        fees_settlement=stats.fees_settlement,
        maker_volume_settlement=stats.maker_volume_settlement,
        funding_usd=stats.funding_usd,
        funding_settlement=stats.funding_settlement,
        funding_payments=stats.funding_payments,
    )
    return result, rec


WARM_UP = "warm-up: reading the market before the counted part"
"""The manual halt that holds the engine's quotes during a warm-up."""


def warm_up(
    exchange: ExchangeCore, engine: QuoteEngine, until_ns: int
) -> tuple[Event | None, bool]:
    """Feed the engine every event before ``until_ns`` with its quotes held (a manual halt,
    lifted at the end): its estimators learn the market, it trades nothing, so it starts the
    counted part flat. Returns the first event at or after ``until_ns`` (None: the market
    ended) and whether the engine was started (asked the venue what it holds)."""
    engine.halt(WARM_UP, persist=False)
    started = False
    ev = exchange.pop_next()
    while ev is not None and ev.ts_ns < until_ns:
        ts = ev.ts_ns
        if not started:
            exchange.submit(engine.start(ts), ts)
            started = True
        actions = engine.on_event(ev)
        if actions:
            exchange.submit(actions, ts)
        ev = exchange.pop_next()
    engine.kill_switch.reset()
    engine.quoting_stats = QuotingStats()
    return ev, started


def _quoting(engine: QuoteEngine) -> dict[str, float]:
    q = engine.config.quoting
    stats = engine.quoting_stats
    n = stats.cycles or 1
    out: dict[str, float] = {}
    if q.fair_value:
        out["fair_shift_bps"] = stats.fair_shift_bps / n
    if q.adverse_floor:
        out["floor_bps"] = stats.floor_bps / n
        if engine.adverse is not None:
            out["adverse_bps"] = engine.adverse.bps
    if q.toxic_guard:
        out["toxic_share"] = stats.toxic_cycles / n
    return out


def _sample(
    rec: Recording,
    engine: QuoteEngine,
    exchange: ExchangeCore,
    t_s: float,
    limit: float,
    pnl: float,
    aq: float,
) -> None:
    bid, ask = exchange.best_resting()
    rec.t_s.append(t_s)
    rec.mid.append(engine.mid)
    rec.bid.append(bid)
    rec.ask.append(ask)
    rec.position.append(engine.position)
    rec.limit.append(limit)
    rec.pnl_usd.append(pnl)
    rec.utilisation.append(aq / limit if limit > 0 else 0.0)
    rec.binding.append(str(engine.kill_switch.binding_limit))
    rec.state.append(engine.kill_switch.state.label)


SHARPE_MIN_MINUTES = 60
"""One-minute PnL changes a Sharpe ratio needs before it means anything (an hour)."""


def _sharpe(equity: list[float]) -> float | None:
    """Sharpe ratio of one-minute PnL changes, annualised by sqrt(525,600) (minutes in a year:
    perpetuals trade around the clock). None with fewer than ``SHARPE_MIN_MINUTES`` changes or
    no variation: a figure from minutes of data is noise times 725."""
    minutes = np.asarray(equity[::60], dtype=float)
    if minutes.size < SHARPE_MIN_MINUTES + 1:
        return None
    changes = np.diff(minutes)
    sd = float(changes.std(ddof=1))
    if not sd > 0.0:
        return None
    return float(changes.mean() / sd * math.sqrt(_MINUTES_PER_YEAR))


def _max_drawdown(equity: list[float]) -> float:
    """Largest fall of equity from a running peak, USD."""
    if not equity:
        return 0.0
    curve = np.asarray(equity, dtype=float)
    return float(np.max(np.maximum.accumulate(curve) - curve))
