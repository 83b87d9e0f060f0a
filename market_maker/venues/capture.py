"""Writing captures: the format ``venues/replay.py`` reads (``<receive ns> <raw JSON>`` lines).

``CaptureWriter`` appends lines to a gzip file as a series of complete gzip members, one per
``flush_interval_s``: gzip readers treat consecutive members as one stream, and a recorder
killed at any moment leaves every member written so far readable (at worst the last one is
cut short, which replay reads up to where it ends). Each flush reaches the disk (``fsync``).
"""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path
from typing import BinaryIO

__all__ = ["CaptureWriter"]


class CaptureWriter:
    def __init__(self, path: str | Path, *, flush_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.lines = 0
        self.bytes_written = 0
        self._fh: BinaryIO = open(self.path, "wb")  # noqa: SIM115 (closed in close())
        self._pending: list[bytes] = []
        self._last_flush = time.monotonic()

    def write(self, ns: int, text: str) -> None:
        """One received frame, stamped with its local receive time (ns)."""
        self._pending.append(b"%d %s\n" % (ns, text.replace("\n", " ").encode()))
        self.lines += 1
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Write what is pending as one complete gzip member and sync it to disk."""
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        member = gzip.compress(b"".join(self._pending), compresslevel=6)
        self._pending.clear()
        self._fh.write(member)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.bytes_written += len(member)

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()
