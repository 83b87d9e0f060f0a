"""Hyperliquid's own archive of ``l2Book`` snapshots into the store.

The archive (``s3://hyperliquid-archive/market_data/[date]/[hour]/l2Book/[coin].lz4``,
Hyperliquid docs, "Historical data") is an LZ4 frame of JSON lines, one snapshot each:
``{"time": "2025-03-11T09:00:03.296545473", "ver_num": 1, "raw": {"channel": "l2Book",
"data": {"coin": ..., "time": <ms>, "levels": [[bids], [asks]]}}}``: the websocket message our
recorder keeps, stamped with the archiver's receive time (UTC, nanoseconds). Each line becomes
a capture line (``<receive ns> <raw>``) and the capture goes through the replay's decoder like
any other (``store/writer.py``), so the store's events are exactly the replay's.
"""

from __future__ import annotations

import datetime as dt
import gzip
import tempfile
from pathlib import Path

import msgspec

from market_maker.config import InstrumentConfig
from market_maker.errors import StoreError
from market_maker.store.schema import PartMeta
from market_maker.store.writer import import_capture

__all__ = ["archive_to_capture", "import_hl_archive", "is_hl_archive"]

_NS_PER_S = 1_000_000_000
_LZ4_MAGIC = b"\x04\x22\x4d\x18"


class _ArchiveLine(msgspec.Struct):
    time: str
    raw: msgspec.Raw
    ver_num: int = 1


_line = msgspec.json.Decoder(_ArchiveLine)


def is_hl_archive(path: Path) -> bool:
    """An LZ4 frame (what the archive's files are); captures are gzip."""
    with open(path, "rb") as fh:
        return fh.read(4) == _LZ4_MAGIC


def _receive_ns(stamp: str) -> int:
    """``2025-03-11T09:00:03.296545473`` (UTC, up to nanoseconds) in ns since the epoch."""
    whole, _, frac = stamp.partition(".")
    if len(frac) > 9 or (frac and not frac.isdigit()):
        raise ValueError(f"bad time {stamp!r}")
    day = dt.datetime.fromisoformat(whole).replace(tzinfo=dt.UTC)
    return int(day.timestamp()) * _NS_PER_S + int((frac or "0").ljust(9, "0"))


def archive_to_capture(src: Path, out: Path) -> int:
    """Write the archive file ``src`` as a capture at ``out``; returns its lines (a line that
    is not an archive line is refused with its number)."""
    import pyarrow as pa

    lines = 0
    with pa.input_stream(str(src), compression="lz4") as fh, gzip.open(out, "wb") as dst:
        pending = b""
        while chunk := fh.read(1 << 20):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for text in complete:
                lines += _write(dst, text, lines + 1, src)
        if pending.strip():
            lines += _write(dst, pending, lines + 1, src)
    return lines


def _write(dst: gzip.GzipFile, text: bytes, number: int, src: Path) -> int:
    if not text.strip():
        return 0
    try:
        line = _line.decode(text)
        ns = _receive_ns(line.time)
    except (msgspec.DecodeError, ValueError) as exc:
        raise StoreError(f"{src}: line {number}: not a Hyperliquid archive line: {exc}") from None
    dst.write(b"%d %s\n" % (ns, bytes(line.raw)))
    return 1


def import_hl_archive(
    path: str | Path, store: str, *, overrides: InstrumentConfig | None = None
) -> list[PartMeta]:
    """``import_capture`` for a Hyperliquid archive file (``[coin].lz4``)."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / f"{path.stem}_{path.parent.parent.name or 'archive'}.gz"
        if archive_to_capture(path, capture) == 0:
            raise StoreError(f"{path}: an empty archive file")
        return import_capture(capture, store, overrides=overrides, source_name=path.name)
