"""``market-maker record``: Hyperliquid market data to a capture file that replays and backtests.

Subscribes the market channels of one coin (``l2Book`` fast, ``bbo``, ``trades``) and writes
every frame as received, with its local receive time, through ``CaptureWriter``. Connects and
disconnects are noted in the file as ``{"channel": "recorder", "data": {...}}`` lines (replay
counts them as notes), so a gap in the data is visible as a gap and not mistaken for a quiet
market. The greeting text and heartbeats are not written.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

import msgspec

from market_maker.log import get_logger
from market_maker.venues.capture import CaptureWriter
from market_maker.venues.hyperliquid.client import ClientConfig, HyperliquidClient
from market_maker.venues.hyperliquid.feed import market_subscriptions
from market_maker.venues.hyperliquid.messages import GREETING
from market_maker.venues.replay import RECORDER_CHANNEL

__all__ = ["RecordSummary", "record"]

_PONG = '{"channel":"pong"}'


class RecordSummary(msgspec.Struct, kw_only=True):
    path: str
    reason: str
    wall_s: float
    lines: int
    bytes: int
    connects: int
    disconnects: int


async def record(
    coin: str,
    config: ClientConfig,
    out: str | Path,
    *,
    duration_s: float | None = None,
    install_signals: bool = True,
    status_interval_s: float = 10.0,
) -> RecordSummary:
    """Record until ``duration_s`` passes or a signal arrives; returns what was written."""
    log = get_logger("record")
    writer = CaptureWriter(out)
    stop = asyncio.Event()
    reason = ["duration reached"]

    def note(ns: int, **data: object) -> None:
        writer.write(ns, msgspec.json.encode({"channel": RECORDER_CHANNEL, "data": data}).decode())

    def on_frame(ns: int, text: str) -> None:
        if text != GREETING and text.replace(" ", "") != _PONG:
            writer.write(ns, text)

    def on_status(ns: int, connected: bool) -> None:
        note(ns, event="connected" if connected else "disconnected", coin=coin)
        writer.flush()

    client = HyperliquidClient(
        config,
        market_subscriptions(coin),
        on_message=lambda ns, channel, message: None,
        on_status=on_status,
        on_frame=on_frame,
    )
    loop = asyncio.get_running_loop()

    def request_stop(why: str) -> None:
        reason[0] = why
        stop.set()

    install_signals = install_signals and sys.platform != "win32"
    if install_signals:
        for sig, name in ((signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")):
            loop.add_signal_handler(sig, request_stop, name)
    wall0 = time.monotonic()
    task = asyncio.create_task(client.run())
    log.info("recording", coin=coin, url=config.url, out=str(out))
    try:
        while not stop.is_set():
            left = None if duration_s is None else duration_s - (time.monotonic() - wall0)
            if left is not None and left <= 0:
                break
            wait = status_interval_s if left is None else min(status_interval_s, left)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await stop.wait()
            if task.done():
                task.result()  # the client only ends on close: surface what stopped it
            writer.flush()
            log.info("recorded", lines=writer.lines, bytes=writer.bytes_written)
    finally:
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        writer.close()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    summary = RecordSummary(
        path=str(out),
        reason=reason[0],
        wall_s=time.monotonic() - wall0,
        lines=writer.lines,
        bytes=writer.bytes_written,
        connects=client.stats.connects,
        disconnects=client.stats.disconnects,
    )
    log.info("stopped", **msgspec.to_builtins(summary))
    return summary
