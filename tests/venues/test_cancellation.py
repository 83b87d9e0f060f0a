"""A run's shutdown cancels its venue pump while the venue may be waking it: the cancel must
never be lost.

Python 3.11's ``asyncio.wait_for`` returns the awaited result when a cancel arrives as the
wait completes, dropping the cancel (fixed in 3.12). A venue whose ``events()`` waited with it
woke, yielded, and the pump then blocked on a full queue that nobody read any more: the run
hung at shutdown (a clean-clone suite run found it in ``run --venue hyperliquid`` paper mode).
"""

from __future__ import annotations

import asyncio

from market_maker.model import BookUpdate, Event, Instrument
from market_maker.runtime import _pump
from market_maker.venues.paper import PaperVenue

INST = Instrument(symbol="BTC", tick_size=1.0, lot_size=0.001, min_notional=10.0)


class SilentFeed:
    async def start(self, sink: object) -> None:
        return None

    def failure(self) -> BaseException | None:
        return None

    async def close(self) -> None:
        return None


def test_a_pump_cancelled_as_the_paper_venue_wakes_stops_even_with_a_full_queue():
    async def main(settle_steps: int) -> str:
        venue = PaperVenue(SilentFeed(), INST)
        await venue.connect()
        queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue(maxsize=16)
        pump = asyncio.create_task(_pump(venue, queue))
        for _ in range(5):
            await asyncio.sleep(0)  # what the venue had is queued; it waits for a wake-up
        while not queue.full():
            queue.put_nowait(None)  # and nobody reads the queue any more
        # A book arrives and wakes the venue; the shutdown cancels the pump in the same turns.
        venue._sink(BookUpdate(ts_ns=1, bids=((100.0, 1.0),), asks=((101.0, 1.0),)))
        for _ in range(settle_steps):
            await asyncio.sleep(0)
        pump.cancel()
        done, _ = await asyncio.wait({pump}, timeout=2.0)
        if not done:
            queue.get_nowait()  # unblock it so that the test ends; the bug is shown
            pump.cancel()
            await asyncio.wait({pump}, timeout=2.0)
            return "hung"
        return "cancelled" if pump.cancelled() else "ended"

    # Every interleaving of the wake-up and the cancel: each one must stop the pump.
    assert [asyncio.run(main(n)) for n in range(6)] == ["cancelled"] * 6
