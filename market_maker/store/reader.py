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
from market_maker.store.schema import (
    ASK,
    BID,
    BOOK,
    BOOK_ASK,
    BOOK_BID,
    BUY_TRADE,
    CLEAR,
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
        self._bids: dict[int, float] = {}
        self._asks: dict[int, float] = {}
        self._rows_total = max(1, sum(p.meta.rows for p in self.parts))
        self._rows_done = 0
        self._next: BookUpdate | Trade | None = None
        self._events = self._stream()
        self._done = False

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
        if self._next is None:
            if self._done:
                return None
            self._next = next(self._events, None)
            if self._next is None:
                self._done = True
                return None
        return self._next.ts_ns

    def pop(self) -> BookUpdate | Trade:
        ev = self._next
        if ev is None:
            raise IndexError("pop from an empty market")
        self._next = None
        return ev

    def load(self) -> float:
        return 1.0

    def fraction_done(self) -> float:
        return 1.0 if self._done else min(1.0, self._rows_done / self._rows_total)

    def displayed_size(self, side: Side, price_ticks: int) -> float:
        """Size resting at a price in the depth book (Binance) or the last snapshot."""
        return (self._bids if side is Side.BUY else self._asks).get(price_ticks, 0.0)

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

    def _stream(self) -> Iterator[BookUpdate | Trade]:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        bids, asks = self._bids, self._asks
        prev: PartMeta | None = None
        level_bids: list[tuple[float, float]] = []  # the next book's levels (rows before it)
        level_asks: list[tuple[float, float]] = []
        skip_before = self.from_ns  # None once an event at or after from_ns is reached
        first = self._first_part()
        for part in self.parts[:first]:
            self._rows_done += part.meta.rows
        for part in self.parts[first:]:
            meta = part.meta
            if prev is not None and not _continues(prev, meta):
                bids.clear()  # a gap: the next snapshot rebuilds the depth book
                asks.clear()
                self.stats.depth_gaps += 1
            prev = meta
            num, den = meta.price_step.num, meta.price_step.den
            lot_num, lot_den = meta.lot.num, meta.lot.den
            per_tick = meta.ticks_per_step
            with self._fs.open(part.path, "rb") as fh:
                for batch in pq.ParquetFile(fh).iter_batches(batch_size=self._batch_rows):
                    self._rows_done += batch.num_rows
                    start = 0
                    if skip_before is not None:
                        start = _skip_rows(batch, skip_before, per_tick, meta, bids, asks)
                        if start < 0:  # an event at or after from_ns in this batch
                            start = -start - 1
                            skip_before = None
                        if start:
                            level_bids = []  # the skipped books' levels
                            level_asks = []
                        if start >= batch.num_rows:
                            continue
                        batch = batch.slice(start)
                    kinds = batch.column(0).to_numpy().tolist()
                    stamps = batch.column(1).to_numpy().tolist()
                    exchange = pc.fill_null(batch.column(2), -1).to_numpy().tolist()
                    units = batch.column(3).to_numpy()
                    lots = batch.column(4).to_numpy()
                    prices = ((units * num) / den).tolist()
                    ticks = (units // per_tick).tolist()
                    sizes = ((lots * lot_num) / lot_den).tolist()
                    for j, kind in enumerate(kinds):
                        if kind == BID:
                            if sizes[j] > 0.0:
                                bids[ticks[j]] = sizes[j]
                            else:
                                bids.pop(ticks[j], None)
                        elif kind == ASK:
                            if sizes[j] > 0.0:
                                asks[ticks[j]] = sizes[j]
                            else:
                                asks.pop(ticks[j], None)
                        elif kind == BOOK_BID:
                            level_bids.append((prices[j], sizes[j]))
                        elif kind == BOOK_ASK:
                            level_asks.append((prices[j], sizes[j]))
                        elif kind == BOOK:
                            xts = exchange[j]
                            yield BookUpdate(
                                ts_ns=stamps[j],
                                bids=tuple(level_bids),
                                asks=tuple(level_asks),
                                exchange_ts_ns=None if xts < 0 else xts,
                            )
                            level_bids = []
                            level_asks = []
                        elif kind == CLEAR:
                            bids.clear()
                            asks.clear()
                        else:
                            xts = exchange[j]
                            yield Trade(
                                ts_ns=stamps[j],
                                price=prices[j],
                                size=sizes[j],
                                aggressor=_BUY if kind == BUY_TRADE else _SELL,
                                exchange_ts_ns=None if xts < 0 else xts,
                            )


def _continues(prev: PartMeta, meta: PartMeta) -> bool:
    """``meta``'s file is the next day of ``prev``'s source (the depth book carries over)."""
    return meta.source_key == prev.source_key and meta.part == prev.part + 1


def _skip_rows(
    batch: Any,
    before_ns: int,
    per_tick: int,
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
        k = kinds[:cut]
        clears = np.flatnonzero(k == CLEAR)
        begin = 0
        if clears.size:
            bids.clear()
            asks.clear()
            begin = int(clears[-1]) + 1
        k = k[begin:]
        depth = np.flatnonzero((k == BID) | (k == ASK)) + begin
        if depth.size:
            ticks = batch.column(3).to_numpy()[depth] // per_tick
            lots = batch.column(4).to_numpy()[depth]
            side = kinds[depth] == BID
            # Each level's last change: unique over (side, tick) of the reversed rows.
            key = ticks * 2 + side
            _, last = np.unique(key[::-1], return_index=True)
            last = len(key) - 1 - last
            sizes = (lots[last] * meta.lot.num) / meta.lot.den
            for is_bid, tick, size in zip(
                side[last].tolist(), ticks[last].tolist(), sizes.tolist(), strict=True
            ):
                book = bids if is_bid else asks
                if size > 0.0:
                    book[tick] = size
                else:
                    book.pop(tick, None)
    return -(cut + 1) if late.size else cut
