"""Decode cost of Hyperliquid frames: an ``l2Book`` frame to a ``BookUpdate`` (envelope, wire
type, exact-string prices to floats) and a ``trades`` frame to ``Trade`` events."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from market_maker.venues.hyperliquid.messages import FrameDecoder, book_event, trade_events

DATA = Path(__file__).resolve().parents[1] / "data" / "hyperliquid" / "btc_20250126.gz"


def _frame(channel: str) -> str:
    with gzip.open(DATA, "rt") as fh:
        for line in fh:
            body = line.partition(" ")[2]
            if f'"channel":"{channel}"' in body:
                return body
    raise LookupError(channel)


@pytest.mark.parametrize(
    "channel, convert", [("l2Book", book_event), ("trades", trade_events)], ids=["l2book", "trades"]
)
def test_decode_frame(benchmark, channel, convert):
    """One frame from the capture (a 20-level ``l2Book``, a ``trades`` batch) to events."""
    frame = _frame(channel)
    decoder = FrameDecoder()

    def decode() -> object:
        got = decoder.decode(frame)
        assert got is not None
        return convert(got[1], 0)

    out = benchmark(decode)
    benchmark.extra_info["events"] = 1 if channel == "l2Book" else len(out)
