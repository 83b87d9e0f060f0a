"""Backtest throughput: replay of the Binance capture and an hour of the calm scenario."""

from __future__ import annotations

from pathlib import Path

from market_maker.backtest.session import replay_exchange, run_session
from market_maker.config import AppConfig
from market_maker.venues.replay import ReplayMarket

DATA = Path(__file__).resolve().parents[1] / "data" / "binance-usdm" / "btcusdt_20240808.gz"


def test_replay_binance_capture(benchmark):
    """Market events per second through replay + exchange + engine (target >= 50,000)."""
    result = benchmark.pedantic(
        lambda: run_session(AppConfig(), data=DATA, seed=1)[0], rounds=3, iterations=1
    )
    benchmark.extra_info["market_events"] = result.market_events
    benchmark.extra_info["market_events_per_s"] = result.market_events / result.wall_s
    benchmark.extra_info["events_per_s"] = result.events_per_s
    assert result.limit_breaches == 0


def _drain(cache: bool) -> int:
    market = ReplayMarket(DATA, cache=cache)
    n = 0
    while market.peek_ns() is not None:
        market.pop()
        n += 1
    return n


def test_replay_market_events_from_the_cache(benchmark):
    """Market events per second out of the decoded cache (target >= 150,000): opening the
    file (hash, read) and handing out every book and trade with the depth book kept."""
    _drain(True)  # builds the cache when this machine has none
    n = benchmark.pedantic(lambda: _drain(True), rounds=5, iterations=1)
    benchmark.extra_info["market_events"] = n
    benchmark.extra_info["market_events_per_s"] = n / benchmark.stats.stats.median


def _venue_alone() -> int:
    exchange = replay_exchange(ReplayMarket(DATA), seed=1)
    return sum(1 for _ in exchange.events())


def test_replay_and_venue_alone(benchmark):
    """The capture through the replay cache and the simulated exchange with no engine (what
    every backtest of the capture pays before it decides anything): market data delayed by
    the capture's feed latency, timers and account updates."""
    _venue_alone()  # builds the cache, reads the feed latency once
    n = benchmark.pedantic(_venue_alone, rounds=5, iterations=1)
    benchmark.extra_info["events"] = n
    benchmark.extra_info["events_per_s"] = n / benchmark.stats.stats.median


def test_replay_market_events_decoding_the_capture(benchmark):
    """The same from the gzip text (what every replay paid before the cache)."""
    n = benchmark.pedantic(lambda: _drain(False), rounds=3, iterations=1)
    benchmark.extra_info["market_events_per_s"] = n / benchmark.stats.stats.median


def test_calm_scenario_one_simulated_hour(benchmark):
    """Wall time for one simulated hour of `calm` (target < 30 s)."""
    result = benchmark.pedantic(
        lambda: run_session(AppConfig(), scenario="calm", seed=1, duration_s=3600)[0],
        rounds=1,
        iterations=1,
    )
    benchmark.extra_info["events"] = result.events
    benchmark.extra_info["events_per_s"] = result.events_per_s
    assert result.limit_breaches == 0
