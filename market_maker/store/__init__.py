"""A columnar market-data store: captures imported as Parquet by venue, symbol and day, and a
streaming replay of any range of days (needs the ``store`` extra: pyarrow and fsspec)."""

from market_maker.store.catalog import StoreDay, store_summary
from market_maker.store.reader import StoreMarket, StorePart, store_parts
from market_maker.store.schema import PartMeta
from market_maker.store.writer import import_capture

__all__ = [
    "PartMeta",
    "StoreDay",
    "StoreMarket",
    "StorePart",
    "import_capture",
    "store_parts",
    "store_summary",
]
