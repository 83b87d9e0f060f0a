"""One backtest from the command line's choices: build the market and run the engine on it.

Nothing is calibrated to the market beforehand: the engine learns the market's normal trade
rate as it goes (``estimators/cascade.py``), exactly as it does live.

Market data reaches the engine a feed latency after the venue's book changed, as it does live.
For a capture it is read from the capture's own stamps (``feed_latency_from_delays``): each
event's receive time minus the venue's time where it has both. A capture's clock can be set
apart from the venue's (a receive stamp before the venue's, or a second away): the difference is
then an offset, not a latency, and the stated default (25 ms) is used with the capture's
jitter. ``--feed-latency-ms`` sets it for any backtest; the summary says which was used.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from market_maker.backtest.runner import BacktestResult, Latencies, Recording, run_backtest
from market_maker.backtest.scenarios import engine_config, with_simulator
from market_maker.backtest.scenarios import scenario as scenario_params
from market_maker.config import AppConfig, with_strategy
from market_maker.engine import QuoteEngine
from market_maker.errors import ConfigError
from market_maker.fees import apply_fees
from market_maker.funding import FundingSeries, funding_model
from market_maker.model import Instrument
from market_maker.venues.exchange import (
    FIFO,
    HYPERLIQUID,
    ExchangeCore,
    FeeModel,
    LatencyModel,
    VenueProfile,
)
from market_maker.venues.replay import ReplayMarket, capture_funding
from market_maker.venues.sim import simulated_exchange

if TYPE_CHECKING:
    from market_maker.store import StoreMarket

__all__ = [
    "DEFAULT_FEED_LATENCY_MS",
    "FeedLatency",
    "StoreRange",
    "capture_feed_latency",
    "feed_latency_from_delays",
    "replay_exchange",
    "run_session",
]

_NS = 1_000_000_000
DEFAULT_FEED_LATENCY_MS = 25.0
"""Market data's one-way latency where the capture cannot tell it: a colocated-region client
of a crypto venue's public streams (tens of milliseconds)."""
_MIN_DELAYS = 100
_MAX_PLAUSIBLE_MS = 1_000.0


class FeedLatency(msgspec.Struct, frozen=True, kw_only=True):
    """The market-data latency a backtest used: ``base_ms`` plus exponential jitter of mean
    ``jitter_ms``; ``source`` says where it came from (capture, default, given, scenario)."""

    base_ms: float
    jitter_ms: float
    source: str
    detail: str = ""

    @property
    def model(self) -> LatencyModel:
        return LatencyModel(base_ms=self.base_ms, jitter_ms=self.jitter_ms)


def feed_latency_from_delays(delays_ms: list[float]) -> FeedLatency:
    """The feed latency a capture shows: receive minus venue stamps, in milliseconds.

    The floor (5th percentile) is the latency every message pays, and the median's distance
    above it the jitter (robust to the backlog a stream replays when it connects). A floor
    below 0 or beyond a second is a clock offset between the two clocks: the default latency
    then, with the capture's jitter (which no offset changes)."""
    n = len(delays_ms)
    if n < _MIN_DELAYS:
        return FeedLatency(
            base_ms=DEFAULT_FEED_LATENCY_MS,
            jitter_ms=0.2 * DEFAULT_FEED_LATENCY_MS,
            source="default",
            detail=f"{n} events with both stamps",
        )
    ordered = sorted(delays_ms)
    floor = ordered[n // 20]
    median = ordered[n // 2]
    jitter = max(0.0, median - floor)
    if floor < 0.0 or floor > _MAX_PLAUSIBLE_MS:
        return FeedLatency(
            base_ms=DEFAULT_FEED_LATENCY_MS,
            jitter_ms=jitter,
            source="default",
            detail=f"the capture's clocks are {median:,.0f} ms apart: an offset, not a latency",
        )
    return FeedLatency(base_ms=floor, jitter_ms=jitter, source="capture")


class StoreRange(msgspec.Struct, frozen=True, kw_only=True):
    """Days ``start``..``end`` (both included; None: from the first, to the last) of ``symbol``
    in the market-data store at ``store`` (a folder or fsspec URL).

    Within them, a segment (``backtest/segments.py``): the replay starts at ``from_ns`` (the
    depth book built from the rows before), the events before ``count_from_ns`` are a
    warm-up (``runner.warm_up``: nothing traded, nothing counted) and it ends before
    ``until_ns``. All in Unix epoch nanoseconds; None: the range's own ends."""

    store: str
    symbol: str
    start: dt.date | None = None
    end: dt.date | None = None
    venue: str | None = None
    from_ns: int | None = None
    count_from_ns: int | None = None
    until_ns: int | None = None

    def open(self, config: AppConfig | None = None) -> StoreMarket:
        from market_maker.store import StoreMarket

        return StoreMarket(
            self.store,
            self.symbol,
            start=self.start,
            end=self.end,
            venue=self.venue,
            overrides=None if config is None else config.instrument,
            from_ns=self.from_ns,
        )

    def label(self) -> str:
        return f"store:{self.symbol}:{self.start or 'first'}..{self.end or 'last'}"


@functools.lru_cache(maxsize=16)
def capture_feed_latency(
    path: Path, instrument: Instrument | None = None, *, limit: int = 20_000
) -> FeedLatency:
    """``feed_latency_from_delays`` over the first ``limit`` events of the capture at ``path``
    that carry the venue's time (read once per process: a sweep replays a capture many times)."""
    return feed_latency_from_delays(ReplayMarket(path, instrument).exchange_delays_ms(limit))


def _market_feed_latency(market: ReplayMarket | StoreMarket, limit: int) -> FeedLatency:
    delays: list[float] = []
    while len(delays) < limit and market.peek_ns() is not None:
        ev = market.pop()
        if ev.exchange_ts_ns is not None:
            delays.append((ev.ts_ns - ev.exchange_ts_ns) / 1e6)
    return feed_latency_from_delays(delays)


def replay_exchange(
    market: ReplayMarket | StoreMarket,
    seed: int,
    *,
    profile: VenueProfile | None = None,
    request_expiry_s: float | None = 1.0,
    feed_latency: FeedLatency | None = None,
    instrument: Instrument | None = None,
    funding_rate: float | None = None,
    funding_interval_s: float | None = None,
    funding_series: FundingSeries | None = None,
    initial_base: float = 0.0,
    initial_quote: float | None = None,
) -> ExchangeCore:
    """The simulated venue for our orders against a recorded market: 20 +/- 5 ms for requests
    and their answers, fills on their own stream at 25 ms plus up to tens of ms of jitter. The
    capture's venue picks the profile unless ``profile`` is given: Hyperliquid's block commits
    for a Hyperliquid capture, first in, first out for the others (Binance).
    ``request_expiry_s`` is the deadline the engine puts on its requests (Hyperliquid only);
    ``feed_latency`` delays market data on its way to the engine (default: the capture's,
    ``capture_feed_latency``). ``instrument`` (default the market's) carries the fees charged
    (``fees.apply_fees``; unset rates: 1.5 bp maker, 4.5 bp taker); ``funding_rate`` per
    funding interval (the venue's, ``funding.funding_model``, or ``funding_interval_s``) pays
    funding on the position at each funding time the capture crosses; None: no funding.
    Spot: ``initial_base`` of the base asset and ``initial_quote`` of the quote currency held
    at the start (default the 10,000 starting equity)."""
    inst = instrument or market.instrument
    rates = funding_series
    if rates is None and funding_rate is not None:
        rates = FundingSeries.constant(funding_rate)
    funding = None if rates is None else funding_model(inst, funding_interval_s)
    if profile is None:
        profile = HYPERLIQUID if market.venue == "hyperliquid" else FIFO
    if feed_latency is None:
        if isinstance(market, ReplayMarket):
            feed_latency = capture_feed_latency(market.path, market.instrument)
        else:
            feed_latency = _market_feed_latency(market.reopen(), 20_000)
    return ExchangeCore(
        inst,
        market,
        seed=seed,
        fees=FeeModel(
            maker_bps=_or(inst.maker_fee_bps, 1.5), taker_bps=_or(inst.taker_fee_bps, 4.5)
        ),
        funding=funding,
        funding_rates=rates,
        order_latency=LatencyModel(base_ms=20.0, jitter_ms=5.0),
        fill_latency=LatencyModel(base_ms=25.0, jitter_ms=15.0),
        profile=profile,
        request_expiry_s=request_expiry_s,
        market_data_latency=feed_latency.model,
        initial_base=initial_base,
        initial_equity=10_000.0 if initial_quote is None else initial_quote,
    )


def run_session(
    config: AppConfig,
    *,
    strategy: str | None = None,
    scenario: str | None = None,
    data: Path | None = None,
    store: StoreRange | None = None,
    seed: int = 1,
    duration_s: float | None = None,
    start_s: float = 0.0,
    record: bool = False,
    progress: Callable[[float], None] | None = None,
    feed_latency_ms: float | None = None,
) -> tuple[BacktestResult, Recording | None]:
    """``feed_latency_ms``: market data's latency (jitter a fifth of it); default: the
    capture's (``capture_feed_latency``) or the scenario's. ``store``: days of the market-data
    store instead of a capture (the same events as the capture they were imported from)."""
    config = with_strategy(config, strategy)
    given = (
        None
        if feed_latency_ms is None
        else FeedLatency(base_ms=feed_latency_ms, jitter_ms=0.2 * feed_latency_ms, source="given")
    )
    exchange: ExchangeCore
    replay: ReplayMarket | StoreMarket | None = None
    notes: list[str] = []
    if data is not None or store is not None:
        market: ReplayMarket | StoreMarket
        if store is not None:
            market = replay = store.open(config)
            source = store.label()
        else:
            assert data is not None
            market = replay = ReplayMarket(data, overrides=config.instrument)
            source = f"data:{market.path.name}"
        first = market.peek_ns() or 0
        if start_s > 0.0:
            # A later window of the capture (walk-forward): the depth book is built from the
            # skipped lines all the same; only their events are not traded on.
            start = first + int(start_s * _NS)
            while (t := market.peek_ns()) is not None and t < start:
                market.pop()
            first = market.peek_ns() or start
        if given is not None:
            feed = given
        elif isinstance(market, ReplayMarket):
            feed = capture_feed_latency(market.path, market.instrument)
        else:
            feed = _market_feed_latency(market.reopen(), 20_000)
        instrument, rates = apply_fees(market.instrument, config.fees)
        held = config.instrument
        _spot_balances_apply(instrument, held.base_balance, held.quote_balance)
        series = None
        if config.funding.rate is None and isinstance(market, ReplayMarket) and market.has_funding:
            points = capture_funding(market.path, market.venue)
            if points:
                series = FundingSeries.from_points(points)
        exchange = replay_exchange(
            market,
            seed,
            request_expiry_s=config.orders.request_expiry_s,
            feed_latency=feed,
            instrument=instrument,
            funding_rate=config.funding.rate,
            funding_interval_s=config.funding.interval_s,
            funding_series=series,
            initial_base=held.base_balance or 0.0,
            initial_quote=held.quote_balance,
        )
        end_ns = None if duration_s is None else first + int(duration_s * _NS)
        if store is not None and store.until_ns is not None:
            end_ns = store.until_ns - 1 if end_ns is None else min(end_ns, store.until_ns - 1)
        notes.append(f"market: {instrument.describe()}")
        if instrument.spot:
            notes.append(
                f"balances at the start: {held.base_balance or 0.0:g} base, "
                f"{exchange.initial_equity:,.2f} {instrument.quote_currency}"
            )
        evidence = getattr(market, "evidence", "")
        if evidence:
            notes.append(f"recognised from the capture: {evidence}")
        notes.append(
            f"fees: maker {rates.maker_bps:g} bp, taker {rates.taker_bps:g} bp ({rates.source})"
        )
        funding = exchange.funding
        if funding is None:
            notes.append(
                "funding: none ("
                + ("spot" if instrument.spot else "no rate given: --funding-rate or [funding] rate")
                + ")"
            )
        elif series is not None:
            notes.append(
                f"funding: the capture's rates ({len(series.steps)} lines), every "
                f"{funding.interval_s:g} s ({funding.venue})"
            )
        else:
            notes.append(
                f"funding: {config.funding.rate:+g} every {funding.interval_s:g} s "
                f"({funding.venue})"
            )
    else:
        params = scenario_params(scenario or "calm", duration_s=duration_s)
        params = with_simulator(params, config.simulator)
        if config.funding.rate is not None or config.funding.interval_s is not None:
            params = msgspec.structs.replace(
                params,
                funding_rate=_or(config.funding.rate, params.funding_rate),
                funding_interval_s=_or(config.funding.interval_s, params.funding_interval_s),
            )
        if config.fees.maker_bps is not None or config.fees.taker_bps is not None:
            params = msgspec.structs.replace(
                params,
                maker_fee_bps=_or(config.fees.maker_bps, params.maker_fee_bps),
                taker_fee_bps=_or(config.fees.taker_bps, params.taker_fee_bps),
            )
        if given is not None:
            params = msgspec.structs.replace(params, market_data_latency_ms=given.base_ms)
        feed = given or FeedLatency(
            base_ms=params.market_data_latency_ms,
            jitter_ms=0.2 * params.market_data_latency_ms,
            source="scenario",
        )
        config = engine_config(params, config)
        exchange = simulated_exchange(params, seed, request_expiry_s=config.orders.request_expiry_s)
        end_ns = int(params.duration_s * _NS)
        source = f"scenario:{scenario or 'calm'}"
        instrument = params.instrument
        _spot_balances_apply(
            instrument, config.instrument.base_balance, config.instrument.quote_balance
        )
    engine = QuoteEngine(config, instrument)
    result, rec = run_backtest(
        exchange,
        engine,
        source=source,
        seed=seed,
        end_ns=end_ns,
        record=record,
        progress=progress,
        count_from_ns=None if store is None else store.count_from_ns,
    )
    latency = Latencies(
        feed_ms=feed.base_ms,
        feed_jitter_ms=feed.jitter_ms,
        feed_source=feed.source,
        feed_detail=feed.detail,
        order_ms=exchange.order_latency.base_ms,
        fill_ms=exchange.fill_latency.base_ms,
    )
    result = msgspec.structs.replace(result, latency=latency)
    if replay is not None:
        stats = msgspec.structs.asdict(replay.stats)
        result = msgspec.structs.replace(result, capture=stats)
        if (
            replay.venue.startswith("binance")
            and not replay.stats.depth_diffs
            and not replay.stats.depth_snapshots
        ):
            notes.append(
                "no depth in the capture: an order's queue ahead is the displayed touch size"
            )
    result = msgspec.structs.replace(result, notes=notes)
    return result, rec


def _spot_balances_apply(instrument: Instrument, base: float | None, quote: float | None) -> None:
    """Starting balances are a spot account's: refused (one error line) for a perpetual."""
    if instrument.spot or (base is None and quote is None):
        return
    names = " and ".join(
        n for n, v in (("base_balance", base), ("quote_balance", quote)) if v is not None
    )
    raise ConfigError(
        f"[instrument] {names}: starting balances apply to spot markets only "
        f"({instrument.describe()}); a perpetual's account is its equity"
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
