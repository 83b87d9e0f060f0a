"""The one interface the runtime talks to, whatever the venue (simulator, replay, exchange)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import msgspec

from market_maker.model import Action, Event, Instrument

__all__ = ["HandOverClock", "Venue"]


class Venue(Protocol):
    """An async source of typed events and sink of actions.

    Events carry ``ts_ns`` (local receive time) and, for market data, ``exchange_ts_ns``.
    ``submit`` must not block on the network round trip: answers come back as ``OrderAck``
    events naming the action's ``request_id``, and a ``RequestSnapshot`` is answered by a
    ``VenueSnapshot`` (our open orders and position, stamped on the clock that stamps fills).
    Requests are handled in the order submitted. ``cancel_all`` is the venue's own sweep (by our
    client ids or a dead-man switch) for shutdown and recovery.
    """

    instrument: Instrument

    async def connect(self) -> None: ...

    def events(self) -> AsyncIterator[Event]: ...

    async def submit(self, actions: Sequence[Action]) -> None: ...

    async def cancel_all(self) -> None: ...

    async def close(self) -> None: ...

    def now_ns(self) -> int:
        """The venue's clock (virtual for simulation and replay), nanoseconds."""
        ...


class HandOverClock:
    """Wall-clock stamps for events a live venue hands to the engine: each event is stamped
    when handed over, never earlier than the one before, so the engine's clock only moves
    forward whatever order the feed, the venue's replies and the runtime's timers come in."""

    __slots__ = ("_last_ns",)

    def __init__(self) -> None:
        self._last_ns = 0

    def now_ns(self) -> int:
        now = time.time_ns()
        return now if now > self._last_ns else self._last_ns

    def stamp(self, event: Event) -> Event:
        ts = self.now_ns()
        self._last_ns = ts
        return msgspec.structs.replace(event, ts_ns=ts)
