"""Decoded captures on disk: a capture's gzip and JSON are paid for once, not on every run.

The first replay of a capture decodes it the ordinary way (``ReplayMarket`` with its reorder
window, depth sync and checks) and writes what came out into a compact binary file: the books
and trades in the order the market hands them out, and every change to the depth book with the
event it precedes. Later replays, sweeps and calibration read that file instead of the capture
and see the same events, the same depth book at every event and the same ``ReplayStats``.

The depth book is not rebuilt on a replay from the file: the changes are kept sorted by price
level (side and ticks), then by the event they precede, so the size at one level as of event
``i`` is the last change there before it, found by bisection (``size_at``, O(log n)). The
simulated exchange reads the book only where one of our orders joins a level (a few thousand
times a run), while the BTC capture holds 445,000 changes. A change that the same instant's
full replacement of the book (a snapshot, a re-sync) overwrites is dropped when the file is
written; what the replacement removed is one ``clear_event``.

The file is keyed by the capture's SHA-256, the tick size its prices were converted with and
``DECODER_VERSION`` (raise it whenever decoding changes what comes out, or the layout), and
lives in ``$MM_CACHE_DIR`` (default ``$XDG_CACHE_HOME/market_maker/replay``, else
``~/.cache/market_maker/replay``; ``MM_CACHE_DIR=off`` turns the cache off). A file that is
missing, unreadable or from another version is rebuilt; a cache folder that cannot be written
only costs the next run a decode. Files are written under a temporary name and renamed, so the
processes of one sweep may race to build one.

Layout: ``MAGIC``, a little-endian u32 header length, a JSON header (version, key, byte order,
array lengths, stats), then the arrays of ``_COLUMNS`` as raw machine values in that order.
The whole capture is held in memory as arrays (about 190 bytes per event on the Binance
capture, most of it depth-book changes).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from market_maker.model import BookUpdate, Side, Trade

__all__ = [
    "DECODER_VERSION",
    "DecodedCapture",
    "cache_dir",
    "cache_enabled",
    "cache_path",
    "load_cached",
    "save_cached",
]

DECODER_VERSION = 3
MAGIC = b"MMREPLAY"

# Event kinds (``venues/exchange.py``'s ``MARKET_BOOK``, ``MARKET_BUY``, ``MARKET_SELL``) and
# depth-book operations while the cache is built.
BOOK, BUY_TRADE, SELL_TRADE = 0, 1, 2
SET_BID, SET_ASK, CLEAR = 0, 1, 2

_NONE = -1  # an exchange time the venue did not give

_COLUMNS: tuple[tuple[str, str], ...] = (
    ("kind", "b"),  # BOOK, BUY_TRADE or SELL_TRADE
    ("ts_ns", "q"),
    ("exchange_ts_ns", "q"),  # _NONE when absent
    ("price", "d"),  # trades
    ("size", "d"),  # trades
    ("levels", "q"),  # books: bid levels << 32 | ask levels
    ("level_values", "d"),  # books: price, size, ... bids then asks, best first
    # Depth-book changes sorted by level, then by the event they come before (file order
    # within one event): level key ``ticks * 2`` for a bid, ``ticks * 2 + 1`` for an ask.
    ("depth_key", "q"),
    ("depth_event", "q"),
    ("depth_size", "d"),  # 0: the level was deleted
    ("clear_event", "q"),  # events before which the whole book was replaced, ascending
)
_EVENT_COLUMNS = ("kind", "exchange_ts_ns", "price", "size", "levels", "level_values")


def _q(values: Any) -> array[int]:
    """A numpy integer array as an ``array('q')``."""
    out = array("q")
    out.frombytes(np.ascontiguousarray(values, dtype=np.int64).tobytes())
    return out


class _Header(msgspec.Struct):
    version: int
    key: str
    byteorder: str
    lengths: dict[str, int]
    stats: dict[str, int]


class DecodedCapture:
    """A capture's decoded events and depth-book changes as typed arrays (see ``_COLUMNS``)."""

    def __init__(self) -> None:
        self.kind = array("b")
        self.ts_ns = array("q")
        self.exchange_ts_ns = array("q")
        self.price = array("d")
        self.size = array("d")
        self.levels = array("q")
        self.level_values = array("d")
        self.depth_key = array("q")
        self.depth_event = array("q")
        self.depth_size = array("d")
        self.clear_event = array("q")
        self.stats: dict[str, int] = {}
        # The depth-book changes in the order they happened, while the cache is built
        # (``add_op``: event, code and ticks, and the size); ``index_depth`` sorts them into
        # the depth columns.
        self._op_ints = array("q")
        self._op_sizes = array("d")

    def __len__(self) -> int:
        return len(self.kind)

    # ----- building (the first replay) ---------------------------------------------------

    def add_event(self, ev: BookUpdate | Trade) -> None:
        self.ts_ns.append(ev.ts_ns)
        xts = ev.exchange_ts_ns
        self.exchange_ts_ns.append(_NONE if xts is None else xts)
        if isinstance(ev, Trade):
            self.kind.append(BUY_TRADE if ev.aggressor is Side.BUY else SELL_TRADE)
            self.price.append(ev.price)
            self.size.append(ev.size)
            self.levels.append(0)
            return
        self.kind.append(BOOK)
        self.price.append(0.0)
        self.size.append(0.0)
        self.levels.append(len(ev.bids) << 32 | len(ev.asks))
        values = self.level_values
        for px, sz in ev.bids + ev.asks:
            values.append(px)
            values.append(sz)

    def add_op(self, event: int, code: int, ticks: int = 0, size: float = 0.0) -> None:
        """The depth book changed before event number ``event`` (non-decreasing): a level set
        (``SET_BID``/``SET_ASK``, size 0 deletes it) or the whole book cleared (``CLEAR``)."""
        self._op_ints.extend((event, code, ticks))
        self._op_sizes.append(size if size > 0.0 else 0.0)

    def index_depth(self) -> None:
        """Sort the changes ``add_op`` recorded into the depth columns (once, when built)."""
        ints = np.frombuffer(self._op_ints, dtype=np.int64).reshape(-1, 3)
        sizes = np.frombuffer(self._op_sizes, dtype=np.float64)
        self._op_ints, self._op_sizes = array("q"), array("d")
        events, codes, ticks = ints[:, 0], ints[:, 1], ints[:, 2]
        is_clear = codes == CLEAR
        clear_at = np.flatnonzero(is_clear)
        clear_events = events[clear_at]
        # A change before a clear at the same event is overwritten by it: dropped. The last
        # clear at each change's event (if any) is found by bisection on the clears' events.
        keep = ~is_clear
        if len(clear_at):
            last = np.maximum(np.searchsorted(clear_events, events, side="right") - 1, 0)
            keep &= ~((clear_events[last] == events) & (clear_at[last] > np.arange(len(events))))
        keys = ticks[keep] * 2 + (codes[keep] == SET_ASK)
        order = np.argsort(keys, kind="stable")  # each level's changes stay in time order
        self.depth_key = _q(keys[order])
        self.depth_event = _q(events[keep][order])
        self.depth_size = array("d", sizes[keep][order].tobytes())
        self.clear_event = _q(np.unique(clear_events))

    # ----- reading -----------------------------------------------------------------------

    def columns(self) -> dict[str, Any]:
        """The event columns as lists (indexing a list is cheaper than an array in a loop)."""
        return {name: getattr(self, name).tolist() for name in _EVENT_COLUMNS}

    def size_at(self, key: int, event: int) -> float:
        """The depth book's size at level ``key`` (``ticks * 2``, plus 1 for an ask) with the
        changes before event number ``event`` applied (0: none there)."""
        keys = self.depth_key
        lo = bisect_left(keys, key)
        hi = bisect_right(keys, key, lo)
        at = bisect_right(self.depth_event, event, lo, hi) - 1
        if at < lo:
            return 0.0
        clears = self.clear_event
        c = bisect_right(clears, event) - 1
        if c >= 0 and clears[c] > self.depth_event[at]:
            return 0.0  # the book was replaced since, without this level
        return self.depth_size[at]

    def book_at(self, event: int) -> tuple[dict[int, float], dict[int, float]]:
        """The whole depth book (bids, asks: ticks to size) with the changes before event
        number ``event`` applied: O(levels ever set x log)."""
        bids: dict[int, float] = {}
        asks: dict[int, float] = {}
        keys = self.depth_key
        at = 0
        while at < len(keys):
            key = keys[at]
            size = self.size_at(key, event)
            if size > 0.0:
                (asks if key & 1 else bids)[key >> 1] = size
            at = bisect_right(keys, key, at)
        return bids, asks

    def trade_times_s(self, limit: int) -> list[float]:
        """Receive times (s) of up to ``limit`` aggressive orders: the prints of one order
        (same exchange time and side) count once."""
        out: list[float] = []
        last: tuple[int, int] | None = None
        kinds = self.kind
        xts = self.exchange_ts_ns
        ts = self.ts_ns
        for i in range(len(kinds)):
            kind = kinds[i]
            if kind == BOOK:
                continue
            key = (xts[i], kind)
            if key[0] == _NONE or key != last:
                if len(out) >= limit:
                    break
                out.append(ts[i] / 1e9)
                last = key
        return out


def cache_enabled() -> bool:
    """False when ``MM_CACHE_DIR`` is ``off``: every replay decodes its capture."""
    return os.environ.get("MM_CACHE_DIR", "").strip().lower() != "off"


def cache_dir() -> Path:
    """Where decoded captures are kept: ``$MM_CACHE_DIR``, else the user's cache folder."""
    env = os.environ.get("MM_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "market_maker" / "replay"


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def cache_path(capture: str | Path, tick_size: float, market: str = "") -> tuple[Path, str]:
    """``(file, key)`` of the decoded form of ``capture`` at ``tick_size`` read as ``market``
    (a capture read as spot decodes its depth differently)."""
    tag = f"-{market}" if market else ""
    key = f"{_file_hash(Path(capture))[:40]}-t{tick_size!r}{tag}-v{DECODER_VERSION}"
    return cache_dir() / f"{key}.mmreplay", key


def load_cached(file: Path, key: str) -> DecodedCapture | None:
    """The decoded capture in ``file``, or None when it is absent, damaged or not ``key``'s."""
    try:
        blob = file.read_bytes()
    except OSError:
        return None
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 4:
        return None
    at = len(MAGIC)
    size = int.from_bytes(blob[at : at + 4], "little")
    at += 4
    try:
        header = msgspec.json.decode(blob[at : at + size], type=_Header)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if header.version != DECODER_VERSION or header.key != key or header.byteorder != sys.byteorder:
        return None
    at += size
    out = DecodedCapture()
    view = memoryview(blob)
    for name, code in _COLUMNS:
        column = array(code)
        n = header.lengths.get(name, -1) * column.itemsize
        if n < 0 or at + n > len(blob):
            return None
        column.frombytes(view[at : at + n])
        at += n
        setattr(out, name, column)
    if at != len(blob):
        return None
    out.stats = header.stats
    return out


def save_cached(decoded: DecodedCapture, file: Path, key: str) -> bool:
    """Write ``decoded`` to ``file`` atomically; False when the folder cannot be written."""
    header = msgspec.json.encode(
        _Header(
            version=DECODER_VERSION,
            key=key,
            byteorder=sys.byteorder,
            lengths={name: len(getattr(decoded, name)) for name, _ in _COLUMNS},
            stats=decoded.stats,
        )
    )
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=file.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(MAGIC)
                fh.write(len(header).to_bytes(4, "little"))
                fh.write(header)
                for name, _ in _COLUMNS:
                    getattr(decoded, name).tofile(fh)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is shared like the data
            os.replace(tmp, file)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return False
    return True
