"""One backtest from the command line's choices: build the market and run the engine on it.

Nothing is calibrated to the market beforehand: the engine learns the market's normal trade
rate as it goes (``estimators/cascade.py``), exactly as it does live.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from market_maker.backtest.runner import BacktestResult, Recording, run_backtest
from market_maker.backtest.scenarios import engine_config, with_simulator
from market_maker.backtest.scenarios import scenario as scenario_params
from market_maker.config import AppConfig, with_strategy
from market_maker.engine import QuoteEngine
from market_maker.venues.exchange import (
    FIFO,
    HYPERLIQUID,
    ExchangeCore,
    FeeModel,
    LatencyModel,
    VenueProfile,
)
from market_maker.venues.replay import ReplayMarket
from market_maker.venues.sim import simulated_exchange

__all__ = ["replay_exchange", "run_session"]

_NS = 1_000_000_000


def replay_exchange(
    market: ReplayMarket,
    seed: int,
    *,
    profile: VenueProfile | None = None,
    request_expiry_s: float | None = 1.0,
) -> ExchangeCore:
    """The simulated venue for our orders against a recorded market: 20 +/- 5 ms for requests
    and their answers, fills on their own stream at 25 ms plus up to tens of ms of jitter. The
    capture's venue picks the profile unless ``profile`` is given: Hyperliquid's block commits
    for a Hyperliquid capture, first in, first out for the others (Binance).
    ``request_expiry_s`` is the deadline the engine puts on its requests (Hyperliquid only)."""
    if profile is None:
        profile = HYPERLIQUID if market.venue == "hyperliquid" else FIFO
    return ExchangeCore(
        market.instrument,
        market,
        seed=seed,
        fees=FeeModel(maker_bps=1.5),
        order_latency=LatencyModel(base_ms=20.0, jitter_ms=5.0),
        fill_latency=LatencyModel(base_ms=25.0, jitter_ms=15.0),
        profile=profile,
        request_expiry_s=request_expiry_s,
    )


def run_session(
    config: AppConfig,
    *,
    strategy: str | None = None,
    scenario: str | None = None,
    data: Path | None = None,
    seed: int = 1,
    duration_s: float | None = None,
    start_s: float = 0.0,
    record: bool = False,
    progress: Callable[[float], None] | None = None,
) -> tuple[BacktestResult, Recording | None]:
    config = with_strategy(config, strategy)
    exchange: ExchangeCore
    replay: ReplayMarket | None = None
    if data is not None:
        market = replay = ReplayMarket(data, overrides=config.instrument)
        first = market.peek_ns() or 0
        if start_s > 0.0:
            # A later window of the capture (walk-forward): the depth book is built from the
            # skipped lines all the same; only their events are not traded on.
            start = first + int(start_s * _NS)
            while (t := market.peek_ns()) is not None and t < start:
                market.pop()
            first = market.peek_ns() or start
        exchange = replay_exchange(market, seed, request_expiry_s=config.orders.request_expiry_s)
        end_ns = None if duration_s is None else first + int(duration_s * _NS)
        source = f"data:{Path(data).name}"
        instrument = market.instrument
    else:
        params = scenario_params(scenario or "calm", duration_s=duration_s)
        params = with_simulator(params, config.simulator)
        config = engine_config(params, config)
        exchange = simulated_exchange(params, seed, request_expiry_s=config.orders.request_expiry_s)
        end_ns = int(params.duration_s * _NS)
        source = f"scenario:{scenario or 'calm'}"
        instrument = params.instrument
    engine = QuoteEngine(config, instrument)
    result, rec = run_backtest(
        exchange, engine, source=source, seed=seed, end_ns=end_ns, record=record, progress=progress
    )
    if replay is not None:
        stats = msgspec.structs.asdict(replay.stats)
        result = msgspec.structs.replace(result, capture=stats)
    return result, rec
