"""The replay cache: a capture decoded once replays the same events, the same depth book at each
of them and the same stats as decoding it again; anything wrong with the file only costs a
rebuild."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _book_by_applying(ops, event):
    """The reference: the depth book with every change before event ``event`` applied in turn
    (what a replay from the cache did on every event before it became a lookup)."""
    bids, asks = {}, {}
    for at, code, ticks, size in ops:
        if at > event:
            break
        if code == replay_cache.CLEAR:
            bids.clear()
            asks.clear()
            continue
        book = bids if code == replay_cache.SET_BID else asks
        if size > 0.0:
            book[ticks] = size
        else:
            book.pop(ticks, None)
    return bids, asks


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),  # events to the next change
            st.sampled_from([replay_cache.SET_BID, replay_cache.SET_ASK, replay_cache.CLEAR]),
            st.integers(0, 6),
            st.sampled_from([0.0, 0.5, 1.0, 2.0]),
        ),
        max_size=60,
    )
)
def test_a_level_looked_up_in_the_cache_is_the_book_built_change_by_change(changes):
    """Several changes at one instant, a level set and deleted, clears between and at the same
    instant as sets (a snapshot, a re-sync): the lookup agrees with applying every change."""
    decoded = replay_cache.DecodedCapture()
    ops, event = [], 0
    for step, code, ticks, size in changes:
        event += step
        decoded.add_op(event, code, ticks, size)
        ops.append((event, code, ticks, size))
    decoded.index_depth()
    for at in range(-1, event + 2):
        bids, asks = _book_by_applying(ops, at)
        for ticks in range(7):
            assert decoded.size_at(ticks * 2, at) == bids.get(ticks, 0.0)
            assert decoded.size_at(ticks * 2 + 1, at) == asks.get(ticks, 0.0)
        assert decoded.book_at(at) == (bids, asks)


def test_a_replay_from_the_cache_builds_no_book_and_reads_only_the_levels_asked(cache):
    """The depth book is looked up where the venue asks, never rebuilt per event: after the
    whole BTC capture the cached replay holds no book of its own, and its memory beyond the
    file's columns does not grow with the events."""
    ReplayMarket(BINANCE)  # builds the cache
    market = ReplayMarket(BINANCE)
    assert market.cached
    events = 0
    while market.peek_ns() is not None:
        market.pop()
        events += 1
    assert events == 87_402
    assert market._bids == {} and market._asks == {}
    assert len(market._cache.depth_key) > 400_000  # the changes it did not apply
    assert len(market.depth(Side.BUY)) > 50  # and the book they make is there to read


def test_the_caches_event_kinds_are_the_exchanges():
    from market_maker.venues import exchange

    assert (replay_cache.BOOK, replay_cache.BUY_TRADE, replay_cache.SELL_TRADE) == (
        exchange.MARKET_BOOK,
        exchange.MARKET_BUY,
        exchange.MARKET_SELL,
    )


@pytest.mark.parametrize("capture", [BINANCE, HYPERLIQUID], ids=["binance", "hyperliquid"])
def test_parts_from_the_cache_are_the_events_from_the_capture(cache, capture):
    decoded = ReplayMarket(capture, cache=False)
    ReplayMarket(capture)
    cached = ReplayMarket(capture)
    again = ReplayMarket(capture)
    n = 0
    while decoded.peek_ns() is not None:
        assert cached.peek_ns() == again.peek_ns() == decoded.peek_ns()
        ev = decoded.pop()
        assert again.pop() == ev
        kind, ts, xts, a, b = cached.pop_parts()
        assert ts == ev.ts_ns and xts == (-1 if ev.exchange_ts_ns is None else ev.exchange_ts_ns)
        if isinstance(ev, BookUpdate):
            assert (kind, a, b) == (replay_cache.BOOK, ev.bids, ev.asks)
        else:
            buy = ev.aggressor is Side.BUY
            assert (kind, a, b) == (
                replay_cache.BUY_TRADE if buy else replay_cache.SELL_TRADE,
                ev.price,
                ev.size,
            )
        n += 1
    assert cached.peek_ns() is None and n > 100
    with pytest.raises(IndexError):
        cached.pop_parts()


def test_a_backtest_reads_the_depth_book_only_where_an_order_of_ours_joins_it(cache, monkeypatch):
    """One lookup per order that rests (a placement, or the new order of a modify), none per
    market event: a few hundred lookups against 445,000 depth changes on the BTC capture."""
    from market_maker.venues.exchange import ExchangeCore

    lookups = []
    size_at = replay_cache.DecodedCapture.size_at

    def counted(self, key, event):
        lookups.append(key)
        return size_at(self, key, event)

    monkeypatch.setattr(replay_cache.DecodedCapture, "size_at", counted)
    venues: list[ExchangeCore] = []
    init = ExchangeCore.__init__

    def kept(self, *args, **kwargs):
        init(self, *args, **kwargs)
        venues.append(self)

    monkeypatch.setattr(ExchangeCore, "__init__", kept)
    result, _ = run_session(AppConfig(), data=BINANCE, seed=1)
    stats = venues[-1].stats
    assert result.market_events == 87_402 and stats.placed + stats.modifies > 400
    assert stats.placed <= len(lookups) <= stats.placed + stats.modifies
    assert len(lookups) < 0.01 * 445_263
