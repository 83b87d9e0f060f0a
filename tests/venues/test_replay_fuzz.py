"""Fuzzed captures: any corruption of any line is skipped and counted, never a crash or a hang,
and every event the replay hands the engine is a usable number."""

from __future__ import annotations

import gzip
import math
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market_maker.instruments import resolve_instrument
from market_maker.model import BookUpdate
from market_maker.venues.replay import ReplayMarket
from tests.test_config import ROOT

CAPTURES = {
    "binance": ROOT / "data" / "binance-usdm" / "btcusdt_20240808.gz",
    "hyperliquid": ROOT / "data" / "hyperliquid" / "btc_20250126.gz",
}
RULES = {
    "binance": resolve_instrument("binance-usdm", "BTCUSDT"),
    "hyperliquid": resolve_instrument("hyperliquid", "BTC"),
}
TOKENS = [
    b"nan",
    b"-inf",
    b"1e400",
    b"-1",
    b"0",
    b"1e308",
    b'"',
    b"{",
    b"]",
    b",",
    b"\xff\xfe",
    b"null",
    b"9999999999999999999999999",
    b"",
    b" ",
    b"\x00",
]


@cache
def sample(name: str) -> tuple[bytes, ...]:
    with gzip.open(CAPTURES[name], "rb") as fh:
        return tuple(fh.read().rstrip(b"\n").split(b"\n")[:400])


corruption = st.one_of(
    st.tuples(st.just("replace"), st.integers(0, 10_000), st.sampled_from(TOKENS)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(b"")),
    st.tuples(
        st.just("stamp"), st.integers(0, 10_000), st.sampled_from([b"9", b"0", b"-", b"1" * 40])
    ),
    st.tuples(st.just("swap"), st.integers(0, 10_000), st.just(b"")),
    st.tuples(st.just("duplicate"), st.integers(0, 10_000), st.just(b"")),
    st.tuples(st.just("drop"), st.integers(0, 10_000), st.just(b"")),
)


def corrupt(lines: list[bytes], op: str, where: int, token: bytes) -> None:
    i = where % len(lines)
    line = lines[i]
    if op == "replace" and line:
        # Overwrite a value after a random quote or colon with the token.
        cut = [j for j, ch in enumerate(line) if ch in b'":'] or [0]
        j = cut[where % len(cut)] + 1
        lines[i] = line[:j] + token + line[j + (where % 7) :]
    elif op == "truncate":
        lines[i] = line[: where % (len(line) + 1)]
    elif op == "stamp":
        lines[i] = token + line
    elif op == "swap" and i + 1 < len(lines):
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    elif op == "duplicate":
        lines.insert(i, line)
    elif op == "drop":
        del lines[i]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(sorted(CAPTURES)),
    ops=st.lists(corruption, min_size=1, max_size=12),
)
def test_any_corrupted_capture_replays_to_usable_events(tmp_path, name, ops):
    lines = list(sample(name))
    for op in ops:
        corrupt(lines, *op)
    path = tmp_path / f"{name}.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    # The rules are given: a corrupted symbol in the first line is a clear "unknown symbol"
    # refusal (tests/venues/test_instruments.py), not what this test is about.
    market = ReplayMarket(path, RULES[name])  # decoded into the replay cache, then read from it
    assert market.cached
    last = -1
    events = 0
    seen = []
    while market.peek_ns() is not None:
        ev = market.pop()
        seen.append(ev)
        events += 1
        assert ev.ts_ns >= last  # the engine sees time move forward only
        last = ev.ts_ns
        if isinstance(ev, BookUpdate):
            values = [v for side in (ev.bids, ev.asks) for level in side for v in level]
        else:
            values = [ev.price, ev.size]
        assert all(math.isfinite(v) and 0.0 <= v < 1e12 for v in values)
    # Bounded: a corruption never creates events out of nothing.
    assert events <= 3 * len(lines)
    assert market.stats.books + market.stats.trades == events  # every event accounted for
    # The cache changes nothing: the same events and counts as decoding the text again.
    decoded = ReplayMarket(path, RULES[name], cache=False)
    again = []
    while decoded.peek_ns() is not None:
        again.append(decoded.pop())
    assert again == seen
    assert decoded.stats == market.stats
