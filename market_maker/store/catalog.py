"""What a store holds: one row per venue, symbol and day (``market-maker store ls``)."""

from __future__ import annotations

import msgspec

from market_maker.store.reader import store_parts

__all__ = ["StoreDay", "store_summary"]


class StoreDay(msgspec.Struct, frozen=True, kw_only=True):
    venue: str
    symbol: str
    day: str
    files: int
    """Sources with data on the day."""
    events: int
    """Books and trades the replay hands out."""
    rows: int
    """Rows in the files (events, their book levels and depth-book changes)."""
    bytes: int
    first_ns: int
    last_ns: int


def store_summary(store: str) -> list[StoreDay]:
    """Every (venue, symbol, day) in ``store`` in order, with its files' totals."""
    days: dict[tuple[str, str, str], StoreDay] = {}
    for part in store_parts(store):
        m = part.meta
        key = (m.venue, m.symbol, m.day)
        seen = days.get(key)
        if seen is None:
            days[key] = StoreDay(
                venue=m.venue,
                symbol=m.symbol,
                day=m.day,
                files=1,
                events=m.events,
                rows=m.rows,
                bytes=part.bytes,
                first_ns=m.first_ns,
                last_ns=m.last_ns,
            )
        else:
            days[key] = msgspec.structs.replace(
                seen,
                files=seen.files + 1,
                events=seen.events + m.events,
                rows=seen.rows + m.rows,
                bytes=seen.bytes + part.bytes,
                first_ns=min(seen.first_ns, m.first_ns),
                last_ns=max(seen.last_ns, m.last_ns),
            )
    return [days[k] for k in sorted(days)]
