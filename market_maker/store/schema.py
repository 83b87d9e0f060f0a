"""The store's row layout and its exact integer grids (see the README's "Market-data store").

One Parquet file per source and (venue, symbol, UTC day), at
``<store>/venue=<venue>/symbol=<symbol>/date=<YYYY-MM-DD>/<source key>.parquet``, holds the
rows of ``ROW_SCHEMA`` in replay order:

- ``BID`` / ``ASK``: a depth-book change at ``price_ticks`` to ``size_lots`` (0 removes the
  level); ``CLEAR`` empties the depth book (a snapshot follows as ``BID``/``ASK`` rows).
- ``BOOK_BID`` / ``BOOK_ASK``: a level of the next ``BOOK`` row, best first.
- ``BOOK``: a book event (what the engine sees), ``BUY_TRADE`` / ``SELL_TRADE``: a trade (the
  aggressor's side) at ``price_ticks`` for ``size_lots``.

Prices are integers on the file's price grid (``price_step``: the tick, or Hyperliquid's finer
decimal grid) and sizes on its lot grid; both grids are exact fractions, and a float is
rebuilt as ``units * num / den`` (one correctly rounded division: the very float the wire
text parsed to). A value off its grid is refused at import, never rounded. Depth rows are
in the same price units; the replay's depth-book keys are ``price_ticks // ticks_per_step``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import msgspec

from market_maker.errors import StoreError
from market_maker.model import Instrument

__all__ = [
    "ASK",
    "BID",
    "BOOK",
    "BOOK_ASK",
    "BOOK_BID",
    "BUY_TRADE",
    "CLEAR",
    "METADATA_KEY",
    "SELL_TRADE",
    "STORE_VERSION",
    "Grid",
    "PartMeta",
    "grid_of",
    "require",
    "row_schema",
]

STORE_VERSION = 1
METADATA_KEY = b"market_maker.store"

BOOK, BUY_TRADE, SELL_TRADE, BID, ASK, CLEAR, BOOK_BID, BOOK_ASK = range(8)


class Grid(msgspec.Struct, frozen=True):
    """An exact grid ``num / den``: the value of one integer unit."""

    num: int
    den: int

    @classmethod
    def of(cls, step: float) -> Grid:
        frac = Fraction(repr(step))  # the decimal the float was written as: 0.1 -> 1/10
        return cls(num=frac.numerator, den=frac.denominator)

    @property
    def fraction(self) -> Fraction:
        return Fraction(self.num, self.den)


class PartMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What a partition file says about itself (its Parquet key-value metadata)."""

    version: int
    venue: str
    symbol: str
    day: str
    source: str
    """The capture's file name."""
    source_key: str
    """The first 16 hex digits of the capture's SHA-256 (the file's name in its partition)."""
    part: int
    """Which of the source's days this is (0, 1, ...): consecutive parts continue each other."""
    price_hint: float | None
    """The capture's first price (sets Hyperliquid's tick, as the replay does)."""
    tick_size: float
    lot_size: float
    price_step: Grid
    lot: Grid
    ticks_per_step: int
    first_ns: int
    last_ns: int
    rows: int
    events: int
    stats: dict[str, int]
    """The decoder's counts over the whole source (``ReplayStats``), in its first part."""


def grid_of(instrument: Instrument) -> tuple[Grid, int]:
    """``(price grid, steps per tick)``: the tick, or a finer decimal grid for a venue whose
    prices may have more decimals than its tick (Hyperliquid's ``max_price_decimals``)."""
    tick = Grid.of(instrument.tick_size).fraction
    step = tick
    if instrument.max_price_decimals is not None:
        fine = Fraction(1, 10**instrument.max_price_decimals)
        if fine < tick and (tick / fine).denominator == 1:
            step = fine
    ratio = tick / step
    if ratio.denominator != 1:
        raise StoreError(f"tick {instrument.tick_size} is not a whole number of price steps")
    return Grid(num=step.numerator, den=step.denominator), int(ratio)


def require() -> None:
    """StoreError naming the extra when pyarrow or fsspec is not installed."""
    import importlib.util

    missing = [m for m in ("pyarrow", "fsspec") if importlib.util.find_spec(m) is None]
    if missing:
        raise StoreError(
            f"the market-data store needs {' and '.join(missing)}: "
            "pip install 'market-maker[store]'"
        )


def row_schema() -> Any:
    """The Arrow schema of a partition file (pyarrow is imported here, not at import time)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("kind", pa.int8(), nullable=False),
            pa.field("local_ts_ns", pa.int64(), nullable=False),
            pa.field("exchange_ts_ns", pa.int64()),
            pa.field("price_ticks", pa.int64(), nullable=False),
            pa.field("size_lots", pa.int64(), nullable=False),
        ]
    )
