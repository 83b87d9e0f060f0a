"""The replay cache: a capture decoded once replays the same events, the same depth book at each
of them and the same stats as decoding it again; anything wrong with the file only costs a
rebuild."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import msgspec
import pytest

from market_maker.backtest.calibrate import calibrate
from market_maker.backtest.session import run_session
from market_maker.config import AppConfig, InstrumentConfig
from market_maker.model import BookUpdate, Side
from market_maker.venues import replay_cache
from market_maker.venues.replay import ReplayMarket
from market_maker.venues.replay_cache import cache_path
from tests.test_config import ROOT

BINANCE = ROOT / "data" / "binance-usdm" / "btcusdt_20240808.gz"
HYPERLIQUID = ROOT / "data" / "hyperliquid" / "btc_20250126.gz"


def replay(market: ReplayMarket, every: int = 1) -> tuple[list, list]:
    """Every event, and after every ``every``-th book the displayed size at 9 prices a side
    around its touch (what the venue's queue model reads when we place)."""
    events, depth = [], []
    tick = market.instrument.tick_size
    while market.peek_ns() is not None:
        ev = market.pop()
        events.append(ev)
        if isinstance(ev, BookUpdate) and len(events) % every == 0:
            bid = int(ev.bids[0][0] / tick + 0.5)
            ask = int(ev.asks[0][0] / tick + 0.5)
            depth.append(
                [market.displayed_size(Side.BUY, bid - d) for d in range(9)]
                + [market.displayed_size(Side.SELL, ask + d) for d in range(9)]
            )
    return events, depth


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("MM_CACHE_DIR", str(folder))
    return folder


@pytest.mark.parametrize("capture", [BINANCE, HYPERLIQUID], ids=["binance", "hyperliquid"])
def test_a_cached_replay_is_the_decoded_replay(cache, capture):
    decoded = ReplayMarket(capture, cache=False)
    expected = replay(decoded)
    first = ReplayMarket(capture)  # decodes and writes the cache
    second = ReplayMarket(capture)  # reads it
    assert first.cached and second.cached
    assert len(list(cache.glob("*.mmreplay"))) == 1
    assert replay(first) == expected
    assert replay(second) == expected
    assert sum(any(sizes) for sizes in expected[1]) > 0.5 * len(expected[1])  # depth is read
    assert second.stats == decoded.stats
    assert second.stats.books + second.stats.trades == len(expected[0])


def test_the_second_replay_never_reads_the_captures_text(cache, monkeypatch):
    expected = replay(ReplayMarket(BINANCE), every=50)

    def no_decoding(self):
        raise AssertionError("decoded the capture again")

    monkeypatch.setattr(ReplayMarket, "_read_one", no_decoding)
    assert replay(ReplayMarket(BINANCE), every=50) == expected


def test_a_changed_capture_tick_or_decoder_gets_its_own_file(cache, tmp_path, monkeypatch):
    lines = gzip.decompress(HYPERLIQUID.read_bytes()).split(b"\n")
    capture = tmp_path / "hl.gz"
    capture.write_bytes(gzip.compress(b"\n".join(lines)))
    ReplayMarket(capture)
    capture.write_bytes(gzip.compress(b"\n".join(lines[:-5])))  # the same name, other data
    shorter = ReplayMarket(capture)
    assert len(replay(shorter)[0]) == len(replay(ReplayMarket(capture, cache=False))[0])
    ReplayMarket(capture, overrides=InstrumentConfig(tick_size=0.5))
    monkeypatch.setattr(replay_cache, "DECODER_VERSION", replay_cache.DECODER_VERSION + 1)
    ReplayMarket(capture)
    assert len(list(cache.glob("*.mmreplay"))) == 4


@pytest.mark.parametrize("damage", ["truncated", "magic", "header", "empty", "longer"])
def test_a_damaged_cache_file_is_rebuilt(cache, damage):
    expected = replay(ReplayMarket(HYPERLIQUID, cache=False))
    ReplayMarket(HYPERLIQUID)
    file, _ = cache_path(HYPERLIQUID, 1.0, "hyperliquid")
    blob = file.read_bytes()
    damaged = {
        "truncated": blob[: len(blob) - 9],
        "magic": b"X" + blob[1:],
        "header": blob[:14] + b"{" + blob[15:],
        "empty": b"",
        "longer": blob + b"\x00" * 8,
    }[damage]
    file.write_bytes(damaged)
    market = ReplayMarket(HYPERLIQUID)
    assert replay(market) == expected
    assert file.read_bytes() == blob  # written again whole


def test_an_unwritable_cache_folder_still_replays(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("MM_CACHE_DIR", str(blocker / "replay"))
    expected = replay(ReplayMarket(HYPERLIQUID, cache=False))
    market = ReplayMarket(HYPERLIQUID)
    assert market.cached
    assert replay(market) == expected


def test_cache_off_decodes_every_time(tmp_path, monkeypatch):
    monkeypatch.setenv("MM_CACHE_DIR", "off")
    market = ReplayMarket(HYPERLIQUID)
    assert not market.cached
    assert replay(market)[0]


def test_calibration_reads_the_cache_and_gets_the_same_fit(cache, monkeypatch):
    assert ReplayMarket(BINANCE).trade_times_s(5_000) == ReplayMarket(
        BINANCE, cache=False
    ).trade_times_s(5_000)
    monkeypatch.setenv("MM_CACHE_DIR", "off")
    decoded = calibrate(HYPERLIQUID)
    monkeypatch.setenv("MM_CACHE_DIR", str(cache))
    ReplayMarket(HYPERLIQUID)
    assert calibrate(HYPERLIQUID) == decoded


def test_a_backtest_from_the_cache_is_the_backtest_from_the_capture(cache, monkeypatch):
    def run() -> dict:
        result, _ = run_session(AppConfig(), data=BINANCE, seed=3, duration_s=600)
        fields = msgspec.structs.asdict(result)
        for timing in ("wall_s", "events_per_s", "cycle_us_p50", "cycle_us_p99"):
            fields.pop(timing)
        return fields

    monkeypatch.setenv("MM_CACHE_DIR", "off")
    decoded = run()
    assert decoded["fills"] > 10
    monkeypatch.setenv("MM_CACHE_DIR", str(cache))
    run()  # builds the cache
    assert os.listdir(cache)
    assert run() == decoded
