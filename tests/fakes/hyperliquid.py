"""Test helpers around the loopback Hyperliquid exchange
(``market_maker.venues.hyperliquid.fake`` and ``fake_exchange``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from market_maker.venues.hyperliquid.fake import FakeHyperliquid

__all__ = ["FakeInThread", "until"]


async def until(check: Any, timeout_s: float) -> float:
    """Seconds until ``check()`` holds (AssertionError after ``timeout_s``)."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


class FakeInThread:
    """The fake on its own event loop in a thread, for code that runs ``asyncio.run`` itself
    (the CLI). ``with FakeInThread() as fake: fake.url``; ``fake.call(coro_fn)`` runs a fault
    on the fake's loop."""

    def __init__(self, **kwargs: Any) -> None:
        import threading

        self.fake = self._make(**kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    _make: Any = FakeHyperliquid

    @classmethod
    def of(cls, kind: type, **kwargs: Any) -> FakeInThread:
        """The same, for a subclass of the fake (the trading exchange)."""
        server = cls.__new__(cls)
        server._make = kind
        server.__init__(**kwargs)  # type: ignore[misc]
        return server

    @property
    def url(self) -> str:
        return self.fake.url

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10.0)

    def __enter__(self) -> FakeInThread:
        self._thread.start()
        self.call(self.fake.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self.fake.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        self._loop.close()
