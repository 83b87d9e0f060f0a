"""Market data reaches the engine a feed latency after the venue's book changed."""

import pytest

from market_maker.backtest.session import (
    DEFAULT_FEED_LATENCY_MS,
    capture_feed_latency,
    feed_latency_from_delays,
    run_session,
)
from market_maker.config import AppConfig
from tests.backtest.test_backtest import BINANCE, HYPERLIQUID


def test_a_capture_with_sane_clocks_gives_its_floor_and_median_jitter():
    delays = [30.0 + i % 50 for i in range(1_000)]  # 30 to 79 ms
    feed = feed_latency_from_delays(delays)
    assert feed.source == "capture"
    assert feed.base_ms == pytest.approx(32.0)  # the 5th percentile
    assert feed.jitter_ms == pytest.approx(55.0 - 32.0)  # the median above it


@pytest.mark.parametrize("offset_ms", [-1_268.0, 5_000.0])
def test_clocks_set_apart_are_an_offset_the_default_latency_keeps_their_jitter(offset_ms):
    delays = [offset_ms + i % 10 for i in range(1_000)]
    feed = feed_latency_from_delays(delays)
    assert feed.source == "default" and feed.base_ms == DEFAULT_FEED_LATENCY_MS
    assert feed.jitter_ms == pytest.approx(5.0 - 0.0)
    assert "offset" in feed.detail


def test_too_few_stamps_give_the_stated_default():
    feed = feed_latency_from_delays([10.0] * 99)
    assert feed.source == "default" and feed.base_ms == DEFAULT_FEED_LATENCY_MS


def test_the_repository_captures_say_what_their_stamps_show():
    # Binance: the capture machine's clock ran 1.27 s behind the venue's.
    binance = capture_feed_latency(BINANCE)
    assert binance.source == "default" and "-1,268 ms apart" in binance.detail
    assert 0.5 < binance.jitter_ms < 20.0
    # Hyperliquid: 110 stamped events, a 262 ms floor.
    hyper = capture_feed_latency(HYPERLIQUID)
    assert hyper.source == "capture" and 200.0 < hyper.base_ms < 300.0


def test_every_backtest_states_its_latencies():
    r, _ = run_session(AppConfig(), data=BINANCE, duration_s=30.0)
    assert r.latency is not None
    assert r.latency.feed_ms == DEFAULT_FEED_LATENCY_MS and r.latency.feed_source == "default"
    assert r.latency.order_ms == 20.0
    sim, _ = run_session(AppConfig(), scenario="calm", duration_s=30.0, feed_latency_ms=40.0)
    assert sim.latency is not None and sim.latency.feed_ms == 40.0


@pytest.mark.slow
def test_a_slower_feed_on_the_capture_means_more_refusals_and_less_edge():
    """The engine quotes on an older book: its post-only quotes cross more often and the
    market has moved by the time they rest. Pooled over both strategies and three seeds:
    refusals 47 / 65 / 90 / 157 and edge before fees -1.59 / -2.04 / -2.02 / -1.81 bps at
    0 / 25 / 50 / 100 ms (one 344 s capture does not order near latencies; far ones it does).
    Before GLFT rested backups: 30 / 87 / 123 / 232 and -0.67 / -1.29 / -1.00 / -1.25."""

    def pooled(latency_ms: float) -> tuple[int, float]:
        refusals = 0
        pnl_before_fees = volume = 0.0
        for kind in ("glft", "ladder"):
            for seed in (1, 2, 3):
                r, _ = run_session(
                    AppConfig(), strategy=kind, data=BINANCE, seed=seed, feed_latency_ms=latency_ms
                )
                refusals += r.rejections
                pnl_before_fees += r.pnl_usd + r.fees_usd
                volume += r.maker_volume_usd
        return refusals, pnl_before_fees / volume * 1e4

    fast_refusals, fast_edge = pooled(0.0)
    slow_refusals, slow_edge = pooled(100.0)
    assert slow_refusals > 2 * fast_refusals
    assert slow_edge < fast_edge - 0.1


def test_jitter_delays_market_data_but_never_reorders_it():
    """One stream: a book cannot overtake the trade before it (reordered trades bunched into
    a burst read as a cascade, and the engine halted on the BTC capture)."""
    from market_maker.backtest.session import FeedLatency, replay_exchange
    from market_maker.model import BookUpdate, Trade
    from market_maker.venues.replay import ReplayMarket

    def market_events(feed: FeedLatency) -> list:
        exchange = replay_exchange(ReplayMarket(BINANCE), 1, feed_latency=feed)
        out = []
        while (ev := exchange.pop_next()) is not None and len(out) < 20_000:
            if isinstance(ev, Trade):
                out.append((ev.price, ev.size, ev.aggressor))
            elif isinstance(ev, BookUpdate):
                out.append((ev.bids[:1], ev.asks[:1]))
        return out

    instant = market_events(FeedLatency(base_ms=0.0, jitter_ms=0.0, source="given"))
    late = market_events(FeedLatency(base_ms=25.0, jitter_ms=10.0, source="given"))
    assert len(instant) == 20_000 and late == instant
