"""Decoded captures on disk: a capture's gzip and JSON are paid for once, not on every run.

The first replay of a capture decodes it the ordinary way (``ReplayMarket`` with its reorder
window, depth sync and checks) and writes what came out into a compact binary file: the books
and trades in the order the market hands them out, and every change to the depth book with the
event it precedes. Later replays, sweeps and calibration read that file instead of the capture
and see the same events, the same depth book at every event and the same ``ReplayStats``.

The file is keyed by the capture's SHA-256, the tick size its prices were converted with and
``DECODER_VERSION`` (raise it whenever decoding changes what comes out), and lives in
``$MM_CACHE_DIR`` (default ``$XDG_CACHE_HOME/market_maker/replay``, else
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
from pathlib import Path
from typing import Any

import msgspec

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

DECODER_VERSION = 2
MAGIC = b"MMREPLAY"

# Event kinds and depth-book operations.
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
    ("op_event", "q"),  # depth operations: the index of the event they come before
    ("op_code", "b"),  # SET_BID, SET_ASK (size 0 deletes) or CLEAR
    ("op_ticks", "q"),
    ("op_size", "d"),
)


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
        self.op_event = array("q")
        self.op_code = array("b")
        self.op_ticks = array("q")
        self.op_size = array("d")
        self.stats: dict[str, int] = {}

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
        self.op_event.append(event)
        self.op_code.append(code)
        self.op_ticks.append(ticks)
        self.op_size.append(size)

    # ----- reading -----------------------------------------------------------------------

    def columns(self) -> dict[str, Any]:
        """Every column as a list (indexing a list is cheaper than an array in a loop)."""
        return {name: getattr(self, name).tolist() for name, _ in _COLUMNS}

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
