"""Decode cost of Hyperliquid frames: an ``l2Book`` frame to a ``BookUpdate`` (envelope, wire
type, exact-string prices to floats) and a ``trades`` frame to ``Trade`` events."""

from __future__ import annotations

import gzip
from pathlib import Path

from market_maker.venues.hyperliquid.messages import FrameDecoder, book_event, trade_events

DATA = Path(__file__).resolve().parents[1] / "data" / "hyperliquid" / "btc_20250126.gz"


def _frame(channel: str) -> str:
    with gzip.open(DATA, "rt") as fh:
        for line in fh:
            body = line.partition(" ")[2]
            if f'"channel":"{channel}"' in body:
                return body
    raise LookupError(channel)


def test_decode_l2book_frame(benchmark):
    """One 20-level ``l2Book`` frame from the capture to a ``BookUpdate``."""
    frame = _frame("l2Book")
    decoder = FrameDecoder()

    def decode() -> object:
        got = decoder.decode(frame)
        assert got is not None
        return book_event(got[1], 0)  # type: ignore[arg-type]

    book = benchmark(decode)
    benchmark.extra_info["levels"] = len(book.bids) + len(book.asks)


def test_decode_trades_frame(benchmark):
    frame = _frame("trades")
    decoder = FrameDecoder()

    def decode() -> object:
        got = decoder.decode(frame)
        assert got is not None
        return trade_events(got[1], 0)  # type: ignore[arg-type]

    trades = benchmark(decode)
    benchmark.extra_info["trades"] = len(trades)
