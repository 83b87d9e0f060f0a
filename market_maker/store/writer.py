"""``market-maker import``: a capture's replay written into the store, day by day.

The capture is decoded by the replay itself (``ReplayMarket`` with the journal the replay
cache is built from), so the store holds exactly the events the replay hands out and every
depth-book change with the event it comes before. Rows are written in row groups as they come
(memory stays bounded whatever the capture's length); a day's file is written under a
temporary name and renamed when complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import deque
from pathlib import Path
from typing import Any

import msgspec

from market_maker.config import InstrumentConfig
from market_maker.errors import StoreError
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
    Grid,
    PartMeta,
    grid_of,
    require,
    row_schema,
)
from market_maker.venues.replay import ReplayMarket, capture_info
from market_maker.venues.replay_cache import CLEAR as OP_CLEAR
from market_maker.venues.replay_cache import SET_ASK, SET_BID, DecodedCapture

__all__ = ["ROW_GROUP_ROWS", "import_capture", "open_store", "partition_dir"]

ROW_GROUP_ROWS = 131_072
_NS_PER_S = 1_000_000_000
_OP_KIND = {SET_BID: BID, SET_ASK: ASK, OP_CLEAR: CLEAR}


def open_store(store: str) -> tuple[Any, str]:
    """``(filesystem, root path)`` of a store given as a folder or an fsspec URL."""
    require()
    import fsspec

    fs, root = fsspec.core.url_to_fs(store)
    return fs, str(root).rstrip("/")


def partition_dir(root: str, venue: str, symbol: str, day: str) -> str:
    return f"{root}/venue={venue}/symbol={symbol}/date={day}"


def _day(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // _NS_PER_S, tz=dt.UTC).date().isoformat()


def _source_key(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


class _Journal(DecodedCapture):
    """The replay's depth-book changes as they happen: ``(event index, code, ticks, size)``."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: deque[tuple[int, int, int, float]] = deque()

    def add_op(self, event: int, code: int, ticks: int = 0, size: float = 0.0) -> None:
        self.ops.append((event, code, ticks, size))


def _units(value: float, grid: Grid, what: str) -> int:
    """``value`` as a whole number of grid units, exactly (refused when off the grid)."""
    units = round(value * grid.den / grid.num)
    if units * grid.num / grid.den != value:
        raise StoreError(f"{what} {value!r} is not on the grid {grid.num}/{grid.den}")
    return units


class _PartWriter:
    """One day's file of one source: rows buffered, flushed as row groups."""

    def __init__(self, fs: Any, directory: str, name: str, schema: Any) -> None:
        import pyarrow.parquet as pq

        self._fs = fs
        fs.makedirs(directory, exist_ok=True)
        self.path = f"{directory}/{name}.parquet"
        self._tmp = f"{self.path}.tmp"
        self._fh = fs.open(self._tmp, "wb")
        self._writer = pq.ParquetWriter(self._fh, schema, compression="zstd")
        self._schema = schema
        self.columns: tuple[list[int], list[int], list[int | None], list[int], list[int]] = (
            [],
            [],
            [],
            [],
            [],
        )
        self.rows = 0
        self.events = 0
        self.first_ns: int | None = None
        self.last_ns = 0

    def add(self, kind: int, ts: int, xts: int | None, price: int, size: int) -> None:
        kinds, stamps, exchange, prices, sizes = self.columns
        kinds.append(kind)
        stamps.append(ts)
        exchange.append(xts)
        prices.append(price)
        sizes.append(size)
        if len(kinds) >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if not self.columns[0]:
            return
        batch = pa.RecordBatch.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(self.columns, self._schema, strict=True)],
            schema=self._schema,
        )
        self._writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
        self.rows += len(self.columns[0])
        for column in self.columns:
            column.clear()

    def close(self, meta: PartMeta) -> None:
        self.flush()
        self._writer.add_key_value_metadata({METADATA_KEY: msgspec.json.encode(meta)})
        self._writer.close()
        self._fh.close()
        self._fs.mv(self._tmp, self.path)


def import_capture(
    path: str | Path,
    store: str,
    *,
    overrides: InstrumentConfig | None = None,
    source_name: str | None = None,
) -> list[PartMeta]:
    """Write the capture at ``path`` into ``store`` (a folder or fsspec URL), one file per UTC
    day of its receive times; returns what each file holds. Importing a capture again replaces
    its files. ``source_name``: what the files say they came from [the capture's name]."""
    path = Path(path)
    info = capture_info(path)
    market = ReplayMarket(path, overrides=overrides, cache=False)
    journal = _Journal()
    market._journal = journal  # the replay cache's hook: every depth-book change, in order
    instrument = market.instrument
    price_grid, per_tick = grid_of(instrument)
    lot = Grid.of(instrument.lot_size)
    fs, root = open_store(store)
    key = _source_key(path)
    schema = row_schema()
    parts: list[PartMeta] = []
    writer: _PartWriter | None = None
    day = ""
    ops = journal.ops

    def close(stats: dict[str, int]) -> None:
        assert writer is not None and writer.first_ns is not None
        writer.flush()
        meta = PartMeta(
            version=STORE_VERSION,
            venue=market.venue,
            symbol=market.symbol,
            day=day,
            source=source_name or path.name,
            source_key=key,
            part=len(parts),
            price_hint=info.price,
            tick_size=instrument.tick_size,
            lot_size=instrument.lot_size,
            price_step=price_grid,
            lot=lot,
            ticks_per_step=per_tick,
            first_ns=writer.first_ns,
            last_ns=writer.last_ns,
            rows=writer.rows,
            events=writer.events,
            stats=stats,
        )
        writer.close(meta)
        parts.append(meta)

    def write_ops(upto: int, ts: int) -> None:
        assert writer is not None
        while ops and ops[0][0] <= upto:
            _, code, ticks, size = ops.popleft()
            writer.add(_OP_KIND[code], ts, None, ticks * per_tick, _units(size, lot, "size"))

    index = 0
    ev: BookUpdate | Trade | None = None
    while market.peek_ns() is not None:
        ev = market.pop()
        ts = ev.ts_ns
        if _day(ts) != day:
            if writer is not None:
                close({})
            day = _day(ts)
            writer = _PartWriter(
                fs, partition_dir(root, market.venue, market.symbol, day), key, schema
            )
            writer.first_ns = ts
        assert writer is not None
        write_ops(index, ts)
        xts = ev.exchange_ts_ns
        if isinstance(ev, Trade):
            kind = BUY_TRADE if ev.aggressor is Side.BUY else SELL_TRADE
            writer.add(
                kind, ts, xts, _units(ev.price, price_grid, "price"), _units(ev.size, lot, "size")
            )
        else:
            for level_kind, levels in ((BOOK_BID, ev.bids), (BOOK_ASK, ev.asks)):
                for px, sz in levels:
                    writer.add(
                        level_kind,
                        ts,
                        None,
                        _units(px, price_grid, "price"),
                        _units(sz, lot, "size"),
                    )
            writer.add(BOOK, ts, xts, 0, 0)
        writer.events += 1
        writer.last_ns = ts
        index += 1
    if writer is None or ev is None:
        raise StoreError(f"{path}: no events to import")
    write_ops(index, ev.ts_ns)  # changes after the last event
    close(msgspec.structs.asdict(market.stats))
    return parts
