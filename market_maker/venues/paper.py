"""Paper trading: a live market feed, our orders in a local simulated book.

``PaperVenue`` runs the simulated exchange core (``venues/exchange.py``) on wall-clock time:
live books and trades from a ``LiveFeed`` drive it, and our orders rest and fill by the same
queue model as in replay (a print at our price first eats the size displayed ahead of us; a
print or a book through our price fills us). Acks and fills come back with the configured
latencies, on their own streams, exactly as in backtests. The local venue behaves as
Hyperliquid does by default (block commits, post-only then cancels then IOCs within a block,
snapshots from committed state, late actions refused; ``VenueProfile``). Nothing is sent to
the venue. Funding follows the feed's rate (``FundingRate``, Hyperliquid's
``activeAssetCtx``): the local account pays it on its position at each funding time (the
venue's model, ``funding.py``) and reports the payment as the venue would.

Every event is handed to the engine stamped with the wall clock at hand-over (never earlier
than the event before it), so the engine's clock only moves forward whatever the order in
which the feed, the local book and the runtime's timers produced them; market data keeps its
exchange stamp in ``exchange_ts_ns``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from market_maker.funding import funding_model
from market_maker.model import (
    Action,
    BookUpdate,
    ConnectionStatus,
    Event,
    FundingRate,
    Instrument,
    Side,
    Trade,
)
from market_maker.venues.base import HandOverClock
from market_maker.venues.exchange import (
    HYPERLIQUID,
    ExchangeCore,
    FeeModel,
    LatencyModel,
    VenueProfile,
)

__all__ = ["LiveFeed", "LiveMarket", "PaperVenue"]


class LiveFeed(Protocol):
    """A live source of market events (and connection status) for one market."""

    async def start(self, sink: Callable[[Event], None]) -> None:
        """Connect and deliver every event to ``sink`` from now on (returns once connected)."""
        ...

    def failure(self) -> BaseException | None:
        """The error that stopped the feed for good, if any."""
        ...

    async def close(self) -> None: ...


class LiveMarket:
    """A ``MarketSource`` filled by a live feed: events wait here until the core takes them."""

    def __init__(self, instrument: Instrument) -> None:
        self._events: deque[BookUpdate | Trade] = deque()
        self._inv_tick = 1.0 / instrument.tick_size
        self._bids: dict[int, float] = {}
        self._asks: dict[int, float] = {}

    def push(self, event: BookUpdate | Trade) -> None:
        self._events.append(event)

    def peek_ns(self) -> int | None:
        return self._events[0].ts_ns if self._events else None

    def pop(self) -> BookUpdate | Trade:
        ev = self._events.popleft()
        if isinstance(ev, BookUpdate) and len(ev.bids) > 1:
            # Full depth (not a best-bid-offer update): the queue ahead of new orders.
            inv = self._inv_tick
            self._bids = {math.floor(p * inv + 0.5): s for p, s in ev.bids}
            self._asks = {math.floor(p * inv + 0.5): s for p, s in ev.asks}
        return ev

    def load(self) -> float:
        return 1.0

    def displayed_size(self, side: Side, price_ticks: int) -> float:
        return (self._bids if side is Side.BUY else self._asks).get(price_ticks, 0.0)


class PaperVenue:
    """The ``Venue`` for paper trading on a live feed (see the module docstring)."""

    name = "paper"

    def __init__(
        self,
        feed: LiveFeed,
        instrument: Instrument,
        *,
        seed: int = 0,
        initial_equity: float = 10_000.0,
        fees: FeeModel | None = None,
        order_latency: LatencyModel | None = None,
        fill_latency: LatencyModel | None = None,
        profile: VenueProfile | None = None,
        request_expiry_s: float | None = 1.0,
    ) -> None:
        """``profile``: Hyperliquid's unless given; ``request_expiry_s``: the deadline the
        engine puts on its requests (``OrdersConfig.request_expiry_s``)."""
        self.feed = feed
        self.instrument = instrument
        self.market = LiveMarket(instrument)
        self.exchange = ExchangeCore(
            instrument,
            self.market,
            seed=seed,
            initial_equity=initial_equity,
            fees=fees,
            order_latency=order_latency or LatencyModel(base_ms=20.0, jitter_ms=5.0),
            fill_latency=fill_latency or LatencyModel(base_ms=25.0, jitter_ms=15.0),
            profile=profile or HYPERLIQUID,
            request_expiry_s=request_expiry_s,
            funding=funding_model(instrument),  # paid once the feed says the rate
        )
        self._status: deque[ConnectionStatus] = deque()
        self._wake = asyncio.Event()
        self._clock = HandOverClock()
        self._started = False

    def _sink(self, event: Event) -> None:
        if isinstance(event, BookUpdate | Trade):
            self.market.push(event)
        elif isinstance(event, ConnectionStatus):
            self._status.append(event)
        elif isinstance(event, FundingRate):
            self.exchange.set_funding_rate(event.rate)
        self._wake.set()

    async def connect(self) -> None:
        if not self._started:
            self._started = True
            await self.feed.start(self._sink)

    def now_ns(self) -> int:
        return self._clock.now_ns()

    async def events(self) -> AsyncIterator[Event]:
        exchange = self.exchange
        while True:
            failure = self.feed.failure()
            if failure is not None:
                raise failure
            if self._status:
                yield self._clock.stamp(self._status.popleft())
                continue
            ev = exchange.pop_due(time.time_ns())
            if ev is not None:
                yield self._clock.stamp(ev)
                continue
            self._wake.clear()
            due = exchange.next_due_ns()
            timeout = 1.0 if due is None else max(0.0, (due - time.time_ns()) / 1e9)
            if timeout > 0.0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(timeout, 1.0)):
                        await self._wake.wait()
            else:
                await asyncio.sleep(0)

    async def submit(self, actions: Sequence[Action]) -> None:
        self.exchange.submit(actions, self.now_ns())
        self._wake.set()

    async def cancel_all(self) -> None:
        """Nothing to sweep at the venue: paper orders live in this process."""

    async def close(self) -> None:
        await self.feed.close()
