"""Streaming replay from the store: day partitions in order, one row group at a time.

``StoreMarket`` is a ``MarketSource`` like ``ReplayMarket`` and hands out the same events with
the same depth book at each of them (the rows are the replay's own output, see
``store/writer.py``). Memory holds one batch of rows and the depth book, whatever the range.
Two files that do not continue each other (another source, or a day missing) are a depth gap:
the depth book is emptied and re-syncs from the next snapshot in the data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import msgspec

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
    ) -> None:
        self.store = store
        self._args = (symbol, start, end, venue, overrides, batch_rows)
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
        symbol, start, end, venue, overrides, batch_rows = self._args
        return StoreMarket(
            self.store,
            symbol,
            start=start,
            end=end,
            venue=venue,
            overrides=overrides,
            batch_rows=batch_rows,
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

    def _stream(self) -> Iterator[BookUpdate | Trade]:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        bids, asks = self._bids, self._asks
        prev: PartMeta | None = None
        level_bids: list[tuple[float, float]] = []  # the next book's levels (rows before it)
        level_asks: list[tuple[float, float]] = []
        for part in self.parts:
            meta = part.meta
            if prev is not None and not (
                meta.source_key == prev.source_key and meta.part == prev.part + 1
            ):
                bids.clear()  # a gap: the next snapshot rebuilds the depth book
                asks.clear()
                self.stats.depth_gaps += 1
            prev = meta
            num, den = meta.price_step.num, meta.price_step.den
            lot_num, lot_den = meta.lot.num, meta.lot.den
            per_tick = meta.ticks_per_step
            with self._fs.open(part.path, "rb") as fh:
                for batch in pq.ParquetFile(fh).iter_batches(batch_size=self._batch_rows):
                    kinds = batch.column(0).to_numpy().tolist()
                    stamps = batch.column(1).to_numpy().tolist()
                    exchange = pc.fill_null(batch.column(2), -1).to_numpy().tolist()
                    units = batch.column(3).to_numpy()
                    lots = batch.column(4).to_numpy()
                    prices = ((units * num) / den).tolist()
                    ticks = (units // per_tick).tolist()
                    sizes = ((lots * lot_num) / lot_den).tolist()
                    self._rows_done += len(kinds)
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
