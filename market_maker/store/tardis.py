"""Tardis.dev CSV (Binance USD-M futures, ``binance-futures``) into the store.

Tardis's daily files, gzip as downloaded (docs.tardis.dev, "Downloadable CSV files"), times in
microseconds since the epoch (``timestamp`` the exchange's, ``local_timestamp`` Tardis's
receive time):

- ``incremental_book_L2``: ``exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,
  amount``; rows with ``is_snapshot`` true make up a full book (a new run of them replaces the
  book), the others set the ``amount`` at ``price`` (0 removes the level).
- ``trades``: ``exchange,symbol,timestamp,local_timestamp,id,side,price,amount``; ``side`` is
  the aggressor's.
- ``book_snapshot_25``: ``exchange,symbol,timestamp,local_timestamp,asks[0].price,
  asks[0].amount,bids[0].price,bids[0].amount,...``: used when no ``incremental_book_L2`` is
  given (each row a full 25-level book).

The files of one symbol are merged by ``local_timestamp`` into a Binance capture (REST
snapshots, ``@depth`` diffs with consecutive update ids, ``@trade``, and a ``@bookTicker``
whenever the best bid or ask changes, which is where the replay takes the touch from) and the
capture goes through the replay's decoder like any other (``store/writer.py``).
"""

from __future__ import annotations

import csv
import gzip
import heapq
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec

from market_maker.config import InstrumentConfig
from market_maker.errors import StoreError
from market_maker.store.schema import PartMeta
from market_maker.store.writer import import_capture

__all__ = ["TARDIS_KINDS", "import_tardis", "is_tardis_csv", "tardis_group", "tardis_to_capture"]

_NS_PER_US = 1_000
_VENUES = {"binance-futures": "binance-usdm"}
_L2 = ["exchange", "symbol", "timestamp", "local_timestamp", "is_snapshot", "side", "price"]
_TRADES = ["exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"]
_SNAP = ["exchange", "symbol", "timestamp", "local_timestamp", "asks[0].price"]
TARDIS_KINDS = ("incremental_book_L2", "trades", "book_snapshot_25")
_encode = msgspec.json.Encoder().encode


def _header(path: Path) -> list[str]:
    try:
        with gzip.open(path, "rt", newline="") as fh:
            return next(csv.reader(fh), [])
    except (OSError, EOFError, UnicodeDecodeError):
        return []


def _kind(header: list[str]) -> str | None:
    if header[: len(_L2)] == _L2:
        return "incremental_book_L2"
    if header == _TRADES:
        return "trades"
    if header[: len(_SNAP)] == _SNAP:
        return "book_snapshot_25"
    return None


def is_tardis_csv(path: Path) -> bool:
    """A gzip CSV with one of the three Tardis headers."""
    return _kind(_header(path)) is not None


def tardis_group(path: Path) -> tuple[str, str, str]:
    """``(exchange, symbol, UTC day of the first row)``: the files imported together."""
    import datetime as dt

    for local_us, _, _, row in _rows(path, 0):
        day = dt.datetime.fromtimestamp(local_us // 1_000_000, tz=dt.UTC).date().isoformat()
        return row[0], row[1], day
    raise StoreError(f"{path}: no rows")


def _rows(path: Path, order: int) -> Iterator[tuple[int, int, int, list[str]]]:
    """``(local_timestamp, file order, row number, row)``, for ``heapq.merge``."""
    with gzip.open(path, "rt", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for number, row in enumerate(reader, start=2):
            try:
                yield int(row[3]), order, number, row
            except (IndexError, ValueError):
                raise StoreError(f"{path}: row {number}: no local_timestamp") from None


class _Book:
    """The converter's book (price and amount texts by price), for the touch and snapshots."""

    def __init__(self) -> None:
        self.sides: tuple[dict[float, tuple[str, str]], dict[float, tuple[str, str]]] = ({}, {})
        self._heaps: tuple[list[float], list[float]] = ([], [])  # -bid prices, ask prices

    def clear(self) -> None:
        for side, heap in zip(self.sides, self._heaps, strict=True):
            side.clear()
            heap.clear()

    def set(self, bid: bool, price: str, amount: str) -> None:
        i = 0 if bid else 1
        value = float(price)
        if float(amount) > 0.0:
            if value not in self.sides[i]:
                heapq.heappush(self._heaps[i], -value if bid else value)
            self.sides[i][value] = (price, amount)
        else:
            self.sides[i].pop(value, None)

    def best(self, bid: bool) -> tuple[str, str] | None:
        i = 0 if bid else 1
        heap, side = self._heaps[i], self.sides[i]
        while heap and (-heap[0] if bid else heap[0]) not in side:
            heapq.heappop(heap)  # a level removed since it was pushed
        if not heap:
            return None
        return side[-heap[0] if bid else heap[0]]

    def levels(self, bid: bool) -> list[tuple[str, str]]:
        side = self.sides[0 if bid else 1]
        return [side[p] for p in sorted(side, reverse=bid)]


class _Capture:
    """Binance capture lines written from the merged Tardis rows."""

    def __init__(self, out: gzip.GzipFile, symbol: str) -> None:
        self.out = out
        self.stream = symbol.lower()
        self.book = _Book()
        self.update_id = 1
        self.touch: tuple[tuple[str, str], tuple[str, str]] | None = None
        self.lines = 0

    def line(self, local_us: int, message: object) -> None:
        self.out.write(b"%d %s\n" % (local_us * _NS_PER_US, _encode(message)))
        self.lines += 1

    def snapshot(self, local_us: int, t_us: int) -> None:
        # USD-M's REST depth snapshot carries the venue's times (E, T); spot's does not.
        self.line(
            local_us,
            {
                "lastUpdateId": self.update_id,
                "E": t_us // 1000,
                "T": t_us // 1000,
                "bids": self.book.levels(True),
                "asks": self.book.levels(False),
            },
        )

    def diff(self, local_us: int, t_us: int, b: list[list[str]], a: list[list[str]]) -> None:
        u = self.update_id  # the first diff after a snapshot spans its id; each next continues
        data = {"E": t_us // 1000, "T": t_us // 1000, "U": u, "u": u + 1, "pu": u, "b": b, "a": a}
        self.line(local_us, {"stream": f"{self.stream}@depth@0ms", "data": data})
        self.update_id = u + 1

    def trade(self, row: list[str]) -> None:
        _, _, t_us, local_us, trade_id, side, price, amount = row
        data = {"T": int(t_us) // 1000, "t": trade_id, "p": price, "q": amount, "m": side == "sell"}
        self.line(int(local_us), {"stream": f"{self.stream}@trade", "data": data})

    def ticker(self, local_us: int, t_us: int) -> None:
        bid, ask = self.book.best(True), self.book.best(False)
        if bid is None or ask is None or (bid, ask) == self.touch:
            return
        self.touch = (bid, ask)
        ms = t_us // 1000  # USD-M's bookTicker carries the event type and the venue's times
        data = {
            "e": "bookTicker",
            "u": self.update_id,
            "E": ms,
            "T": ms,
            "b": bid[0],
            "B": bid[1],
            "a": ask[0],
            "A": ask[1],
        }
        self.line(local_us, {"stream": f"{self.stream}@bookTicker", "data": data})


def tardis_to_capture(sources: list[Path], out: Path) -> tuple[str, str]:
    """Write Tardis CSV files of one symbol as one Binance capture at ``out``; returns
    ``(venue, symbol)``."""
    kinds: dict[str, Path] = {}
    for path in sources:
        kind = _kind(_header(path))
        if kind is None:
            raise StoreError(f"{path}: not a Tardis CSV ({', '.join(TARDIS_KINDS)}, gzip)")
        if kind in kinds:
            raise StoreError(f"{path}: a second {kind} file (import one day at a time)")
        kinds[kind] = path
    if "book_snapshot_25" in kinds and "incremental_book_L2" in kinds:
        del kinds["book_snapshot_25"]  # the incremental book says all it says
    names = sorted(kinds)
    merged = heapq.merge(*(_rows(kinds[k], i) for i, k in enumerate(names)))
    venue = symbol = ""
    with gzip.open(out, "wb") as fh:
        capture: _Capture | None = None
        group: tuple[int, str, list[list[str]], list[list[str]], int] | None = None
        for local_us, order, number, row in merged:
            kind = names[order]
            if capture is None:
                venue = _VENUES.get(row[0], "")
                if not venue:
                    raise StoreError(
                        f"{kinds[kind]}: exchange {row[0]!r}; importable: {', '.join(_VENUES)}"
                    )
                symbol = row[1]
                capture = _Capture(fh, symbol)
            if row[1] != symbol or _VENUES.get(row[0]) != venue:
                raise StoreError(f"{kinds[kind]}: row {number}: another market than {symbol}")
            if group is not None and (
                kind != "incremental_book_L2" or group[0] != local_us or group[1] != row[4]
            ):
                _flush(capture, group)
                group = None
            if kind == "trades":
                capture.trade(row)
            elif kind == "incremental_book_L2":
                if group is None:
                    if row[4] == "true" and capture.book.sides != ({}, {}):
                        capture.book.clear()  # a new snapshot replaces the book
                    group = (local_us, row[4], [], [], int(row[2]))
                level = [row[6], row[7]]
                capture.book.set(row[5] == "bid", row[6], row[7])
                (group[2] if row[5] == "bid" else group[3]).append(level)
            else:
                capture.book.clear()
                for i in range(4, len(row) - 3, 4):
                    for bid, at in ((False, i), (True, i + 2)):
                        if row[at]:
                            capture.book.set(bid, row[at], row[at + 1])
                capture.snapshot(local_us, int(row[2]))
                capture.ticker(local_us, int(row[2]))
        if capture is not None and group is not None:
            _flush(capture, group)
    if capture is None:
        raise StoreError(f"{', '.join(map(str, sources))}: no rows")
    return venue, symbol


def _flush(
    capture: _Capture, group: tuple[int, str, list[list[str]], list[list[str]], int]
) -> None:
    local_us, snapshot, bids, asks, t_us = group
    if snapshot == "true":
        capture.snapshot(local_us, t_us)
    else:
        capture.diff(local_us, t_us, bids, asks)
    capture.ticker(local_us, t_us)


def import_tardis(
    sources: list[Path], store: str, *, overrides: InstrumentConfig | None = None
) -> list[PartMeta]:
    """``import_capture`` for the Tardis CSV files of one symbol (one day of each kind)."""
    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "tardis.gz"
        venue, _ = tardis_to_capture(sources, capture)
        name = "+".join(sorted(p.name for p in sources))
        # The converted lines are the venue's as Tardis names it: say which market they are
        # (a book ticker and trades alone read the same on USD-M and spot).
        if venue.startswith("binance-") and (overrides is None or overrides.market is None):
            market = venue if venue in ("binance-usdm", "binance-coinm", "binance-spot") else None
            if market is not None:
                overrides = msgspec.structs.replace(overrides or InstrumentConfig(), market=market)
        return import_capture(capture, store, overrides=overrides, source_name=name)
