"""Streaming replay from the store: day partitions in order, one row group at a time.

``StoreMarket`` is a ``MarketSource`` like ``ReplayMarket`` and hands out the same events with
the same depth book at each of them (the rows are the replay's own output, see
``store/writer.py``). Memory holds one batch of rows and the depth book, whatever the range.
Two files that do not continue each other (another source, or a day missing) are a depth gap:
the depth book is emptied and re-syncs from the next snapshot in the data.

``from_ns`` starts the replay later (a segment's warm-up, a walk-forward window): events before
it are not handed out, yet the depth book is what it would be there. Files that end before it
and are followed by a gap are not read at all; the rows of the others before it are applied to
the depth book in bulk (numpy: each level's last change), without building their events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import msgspec
import numpy as np

from market_maker.config import InstrumentConfig
from market_maker.errors import StoreError
from market_maker.instruments import resolve_instrument
from market_maker.model import BookUpdate, Side, Trade
from market_maker.store.batch import Batch, apply_changes
from market_maker.store.schema import (
    BOOK,
    BUY_TRADE,
    METADATA_KEY,
    SELL_TRADE,
    STORE_VERSION,
    PartMeta,
)
from market_maker.store.writer import open_store
from market_maker.venues.replay import ReplayStats

__all__ = ["BATCH_ROWS", "StoreMarket", "StorePart", "store_parts"]

BATCH_ROWS = 65_536
_BUY = Side.BUY
_SELL = Side.SELL


class StorePart(msgspec.Struct, frozen=True):
    path: str
    bytes: int
    meta: PartMeta


def _read_meta(fs: Any, path: str) -> PartMeta:
    import pyarrow.parquet as pq

    with fs.open(path, "rb") as fh:
        metadata = pq.ParquetFile(fh).metadata.metadata or {}
    raw = metadata.get(METADATA_KEY)
    if raw is None:
        raise StoreError(f"{path}: not a market_maker store file")
    meta = msgspec.json.decode(raw, type=PartMeta)
    if meta.version != STORE_VERSION:
        raise StoreError(f"{path}: store version {meta.version}, this build reads {STORE_VERSION}")
    return meta


def store_parts(
    store: str,
    *,
    symbol: str | None = None,
    venue: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[StorePart]:
    """The store's files (optionally of one symbol, venue and day range, both ends included),
    in replay order: by day, then by first receive time."""
    fs, root = open_store(store)
    pattern = f"{root}/venue={venue or '*'}/symbol={symbol or '*'}/date=*/*.parquet"
    parts: list[StorePart] = []
    for path in sorted(fs.glob(pattern)):
        day = dt.date.fromisoformat(str(path).rsplit("date=", 1)[1].split("/", 1)[0])
        if (start is not None and day < start) or (end is not None and day > end):
            continue
        parts.append(StorePart(path=str(path), bytes=int(fs.size(path)), meta=_read_meta(fs, path)))
    parts.sort(key=lambda p: (p.meta.venue, p.meta.symbol, p.meta.day, p.meta.first_ns))
    return parts


class StoreMarket:
    """A ``MarketSource`` over ``symbol``'s days ``start``..``end`` (included) in ``store``."""

    def __init__(
        self,
        store: str,
        symbol: str,
        *,
        start: dt.date | None = None,
        end: dt.date | None = None,
        venue: str | None = None,
        overrides: InstrumentConfig | None = None,
        batch_rows: int = BATCH_ROWS,
        from_ns: int | None = None,
    ) -> None:
        self.store = store
        self._args = (symbol, start, end, venue, overrides, batch_rows, from_ns)
        self.from_ns = from_ns
        self._fs, _ = open_store(store)
        self.parts = store_parts(store, symbol=symbol, venue=venue, start=start, end=end)
        if not self.parts:
            span = f" from {start or 'the start'} to {end or 'the end'}"
            raise StoreError(f"{store}: no data for {symbol}{span}")
        venues = sorted({p.meta.venue for p in self.parts})
        if len(venues) > 1:
            raise StoreError(f"{store}: {symbol} is on {', '.join(venues)}: pick one with --venue")
        first = self.parts[0].meta
        for prev, part in zip(self.parts, self.parts[1:], strict=False):
            if part.meta.first_ns < prev.meta.last_ns:
                raise StoreError(
                    f"{part.path} overlaps {prev.path} in time: remove one of the sources"
                )
            if part.meta.tick_size != first.tick_size or part.meta.lot_size != first.lot_size:
                raise StoreError(f"{part.path}: another tick or lot size than {self.parts[0].path}")
        self.venue = first.venue
        self.symbol = first.symbol
        self.instrument = resolve_instrument(
            self.venue, self.symbol, price=first.price_hint, overrides=overrides
        )
        if self.instrument.tick_size != first.tick_size:
            raise StoreError(
                f"{store}: stored with tick {first.tick_size}, asked for "
                f"{self.instrument.tick_size}: import the capture again with that tick"
            )
        self.stats = ReplayStats()
        for part in self.parts:
            for name, value in part.meta.stats.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)
        self._batch_rows = batch_rows
        self._base_bids: dict[int, float] = {}  # the depth book as of the batch's start
        self._base_asks: dict[int, float] = {}
        self._rows_total = max(1, sum(p.meta.rows for p in self.parts))
        self._rows_done = 0
        self._batch: Batch | None = None
        self._batch_no = 0
        self._i = 0  # the batch's next event
        self._n = 0  # the batch's events, their rows and stamps (the batch's own lists)
        self._rows: list[int] = []
        self._stamps: list[int] = []
        self._seen_row = -1  # the row of the event peeked last: the changes before it apply
        self._carry: tuple[list[tuple[float, float]], list[tuple[float, float]]] = ([], [])
        self._batches = self._read()
        self._done = False
        self._view: tuple[dict[int, float], dict[int, float]] = ({}, {})
        self._view_of = (-1, 0)

    def reopen(self) -> StoreMarket:
        """The same range from its start (another reader: this one is not moved)."""
        symbol, start, end, venue, overrides, batch_rows, from_ns = self._args
        return StoreMarket(
            self.store,
            symbol,
            start=start,
            end=end,
            venue=venue,
            overrides=overrides,
            batch_rows=batch_rows,
            from_ns=from_ns,
        )

    # ----- MarketSource ----------------------------------------------------------------------

    def peek_ns(self) -> int | None:
        i = self._i
        if i < self._n:
            self._seen_row = self._rows[i]
            return self._stamps[i]
        return self._next_batch()

    def _next_batch(self) -> int | None:
        """Leave the batch (its changes applied to the book) for the next one with events."""
        while True:
            b = self._batch
            if b is not None and self._i < b.n:
                self._seen_row = b.event_rows[self._i]
                return b.stamps[self._i]  # type: ignore[no-any-return]
            if self._done:
                return None
            if b is not None:
                b.finish(self._base_bids, self._base_asks)
                self._carry = (b.tail_bids, b.tail_asks)
            b = self._batch = next(self._batches, None)
            self._batch_no += 1
            self._i = 0
            self._seen_row = -1
            if b is None:
                self._n = 0
                self._done = True
                return None
            self._n, self._rows, self._stamps = b.n, b.event_rows, b.stamps

    def pop(self) -> BookUpdate | Trade:
        kind, ts, xts, a, b = self.pop_parts()
        exchange_ts = None if xts < 0 else xts
        if kind == BOOK:
            return BookUpdate(ts_ns=ts, bids=a, asks=b, exchange_ts_ns=exchange_ts)
        aggressor = _BUY if kind == BUY_TRADE else _SELL
        return Trade(ts_ns=ts, price=a, size=b, aggressor=aggressor, exchange_ts_ns=exchange_ts)

    def pop_parts(self) -> tuple[int, int, int, Any, Any]:
        """The next event as ``(kind, ts_ns, exchange_ts_ns, a, b)`` without building it, as
        ``ReplayMarket.pop_parts`` (``venues/exchange.py``'s ``PartsSource``): a book with its
        bids and asks, or a trade with its price and size; IndexError when none was peeked."""
        b = self._batch
        i = self._i
        if b is None or i >= b.n:
            raise IndexError("pop from an empty market")
        self._i = i + 1
        self._seen_row = self._rows[i]
        kind = b.kinds[i]
        if kind == BOOK:
            bids, asks = b.levels(i)
            return kind, self._stamps[i], b.exchange[i], bids, asks
        return kind, self._stamps[i], b.exchange[i], b.values_a[i], b.values_b[i]

    def load(self) -> float:
        return 1.0

    def fraction_done(self) -> float:
        return 1.0 if self._done else min(1.0, self._rows_done / self._rows_total)

    def displayed_size(self, side: Side, price_ticks: int) -> float:
        """Size resting at a price in the depth book (Binance) or the last snapshot, as of
        the latest event peeked."""
        base = self._base_bids if side is _BUY else self._base_asks
        b = self._batch
        if b is None:
            return base.get(price_ticks, 0.0)
        key = price_ticks * 2 + (side is _SELL)
        return b.size_at(key, self._seen_row, base, price_ticks)

    @property
    def _bids(self) -> dict[int, float]:
        """The whole depth book's bids as of the latest event peeked (for checks: a view
        brought up to date change by change)."""
        return self._depth()[0]

    @property
    def _asks(self) -> dict[int, float]:
        return self._depth()[1]

    def _depth(self) -> tuple[dict[int, float], dict[int, float]]:
        b = self._batch
        if self._view_of[0] != self._batch_no:
            self._view = (dict(self._base_bids), dict(self._base_asks))
            self._view_of = (self._batch_no, 0)
        if b is not None:
            bids, asks = self._view
            self._view_of = (
                self._batch_no,
                b.apply_until(bids, asks, self._view_of[1], self._seen_row),
            )
        return self._view

    # ----- reading ---------------------------------------------------------------------------

    def _first_part(self) -> int:
        """The first file to read: files before ``from_ns`` that a gap separates from it hold
        nothing the replay from there needs (the gap empties the depth book)."""
        if self.from_ns is None:
            return 0
        parts = self.parts
        j = next((i for i, p in enumerate(parts) if p.meta.last_ns >= self.from_ns), len(parts))
        j = min(j, len(parts) - 1)
        while j > 0 and _continues(parts[j - 1].meta, parts[j].meta):
            j -= 1
        return j

    def _read(self) -> Iterator[Batch]:
        """The range's batches in order; a gap between files empties the depth book, and
        rows before ``from_ns`` are applied to it without their events."""
        import pyarrow.parquet as pq

        bids, asks = self._base_bids, self._base_asks
        prev: PartMeta | None = None
        skip_before = self.from_ns  # None once an event at or after from_ns is reached
        first = self._first_part()
        for part in self.parts[:first]:
            self._rows_done += part.meta.rows
        for part in self.parts[first:]:
            meta = part.meta
            if prev is not None and not _continues(prev, meta):
                bids.clear()  # a gap: the next snapshot rebuilds the depth book
                asks.clear()
                self._carry = ([], [])
                self.stats.depth_gaps += 1
            prev = meta
            with self._fs.open(part.path, "rb") as fh:
                for batch in pq.ParquetFile(fh).iter_batches(batch_size=self._batch_rows):
                    self._rows_done += batch.num_rows
                    if skip_before is not None:
                        start = _skip_rows(batch, skip_before, meta, bids, asks)
                        if start < 0:  # an event at or after from_ns in this batch
                            start = -start - 1
                            skip_before = None
                        if start:
                            self._carry = ([], [])  # the skipped books' levels
                        if start >= batch.num_rows:
                            continue
                        batch = batch.slice(start)
                    yield Batch(batch, meta, *self._carry)


def _continues(prev: PartMeta, meta: PartMeta) -> bool:
    """``meta``'s file is the next day of ``prev``'s source (the depth book carries over)."""
    return meta.source_key == prev.source_key and meta.part == prev.part + 1


def _skip_rows(
    batch: Any,
    before_ns: int,
    meta: PartMeta,
    bids: dict[int, float],
    asks: dict[int, float],
) -> int:
    """Apply the depth rows of the batch's leading events before ``before_ns`` (and of the
    rows that come before those events) to the depth book, without building the events.

    Returns how many rows were consumed, or ``-(n + 1)`` when the batch holds an event at or
    after ``before_ns`` (the first ``n`` rows consumed: the rest, that event's own depth and
    level rows first, are read as usual)."""
    kinds = batch.column(0).to_numpy()
    stamps = batch.column(1).to_numpy()
    is_event = (kinds == BOOK) | (kinds == BUY_TRADE) | (kinds == SELL_TRADE)
    late = np.flatnonzero(is_event & (stamps >= before_ns))
    stop = int(late[0]) if late.size else len(kinds)
    earlier = np.flatnonzero(is_event[:stop])
    cut = int(earlier[-1]) + 1 if earlier.size else 0
    if cut:
        ticks = batch.column(3).to_numpy()[:cut] // meta.ticks_per_step
        sizes = (batch.column(4).to_numpy()[:cut] * meta.lot.num) / meta.lot.den
        apply_changes(bids, asks, kinds[:cut], ticks, sizes)
    return -(cut + 1) if late.size else cut
