"""Paper trading on Hyperliquid against the loopback fake: quotes, fills, the limit held at the
venue while it binds, and recovery from every connection fault."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from market_maker.config import AppConfig
from market_maker.engine import QuoteEngine
from market_maker.model import Event
from market_maker.runtime import RunSummary, run_live
from market_maker.venues.hyperliquid.client import ClientConfig
from market_maker.venues.hyperliquid.fake import FakeHyperliquid
from market_maker.venues.hyperliquid.feed import HyperliquidFeed
from market_maker.venues.paper import PaperVenue
from tests.fakes.hyperliquid import until

pytestmark = pytest.mark.slow  # real sockets and wall-clock waits


class CheckedVenue(PaperVenue):
    """The paper venue with the limit checked against its own book at every event."""

    engine: QuoteEngine
    breaches = 0
    max_util = 0.0

    async def events(self) -> AsyncIterator[Event]:
        lot = self.instrument.lot_size
        async for ev in super().events():
            ks = self.engine.kill_switch
            limit = ks.max_position(self.engine.mid)
            held = abs(self.exchange.position_lots) * lot
            if held > limit + lot * 1.000001:
                self.breaches += 1
            if limit > 0.0:
                self.max_util = max(self.max_util, held / limit)
            yield ev


@dataclass
class Run:
    summary: RunSummary
    venue: CheckedVenue
    engine: QuoteEngine
    feed: HyperliquidFeed


def binding(cap: float = 0.03) -> AppConfig:
    config = AppConfig()
    return msgspec.structs.replace(
        config, risk=msgspec.structs.replace(config.risk, max_position_cap=cap)
    )


async def paper(
    fake: FakeHyperliquid,
    duration_s: float,
    during: Callable[[CheckedVenue, QuoteEngine], Awaitable[None]] | None = None,
    **client: Any,
) -> Run:
    feed = HyperliquidFeed("BTC", ClientConfig(url=fake.url, **client))
    info = await feed.discover()
    venue = CheckedVenue(feed, info.instrument, initial_equity=10_000.0)
    engine = QuoteEngine(binding(), info.instrument)
    venue.engine = engine
    side = asyncio.create_task(during(venue, engine)) if during else None
    summary = await run_live(
        venue, engine, duration_s=duration_s, out=io.StringIO(), tty=False, install_signals=False
    )
    if side is not None:
        await side
    return Run(summary, venue, engine, feed)


def quoting(venue: PaperVenue, engine: QuoteEngine) -> bool:
    return engine.status().trading_state == "active" and venue.exchange.open_orders() > 0


def test_paper_trading_quotes_fills_and_holds_the_limit_while_it_binds():
    async def main() -> None:
        # Sellers dominate: our bids fill and the limit binds.
        async with FakeHyperliquid(sweep_ticks=12.0, trade_rate_per_s=30.0, buy_share=0.3) as fake:
            run = await paper(fake, 18.0)
        assert run.summary.fills >= 5
        # A fill still in flight at the end is adopted from the venue's snapshot instead.
        assert 0 <= run.venue.exchange.stats.fills - run.summary.fills <= 1
        assert abs(run.summary.position - run.venue.exchange.position) < 1e-9
        assert run.venue.exchange.stats.placed >= 2
        assert run.venue.breaches == 0
        # The limit bound, so 0 breaches means something.
        assert run.venue.max_util >= 0.8, run.venue.max_util
        assert run.summary.open_orders == 0  # shutdown cancelled everything
        assert run.feed.stats.books > 100 and run.feed.stats.trades > 100

    asyncio.run(main())


def test_after_a_dropped_connection_it_reconnects_and_quotes_again_within_5_s():
    recovered: list[float] = []

    async def faults(venue: CheckedVenue, engine: QuoteEngine) -> None:
        fake = faults.fake  # type: ignore[attr-defined]
        for clean in (True, False):
            await until(lambda: quoting(venue, engine), 10.0)
            await fake.drop(clean=clean)
            await until(lambda: not venue.feed.client.connected, 2.0)  # type: ignore[attr-defined]
            recovered.append(await until(lambda: quoting(venue, engine), 10.0))

    async def main() -> None:
        async with FakeHyperliquid(sweep_ticks=12.0) as fake:
            faults.fake = fake  # type: ignore[attr-defined]
            run = await paper(fake, 16.0, faults)
        assert len(recovered) == 2 and max(recovered) < 5.0, recovered
        assert fake.stats.connections == 3 and run.feed.client.stats.connects == 3
        assert run.venue.breaches == 0

    asyncio.run(main())


def test_a_stalled_feed_pauses_quoting_and_is_replaced_before_it_could_halt():
    """Default heartbeat: found within 15 s, before the 30 s stale-data halt."""
    seen: dict[str, float] = {}

    async def faults(venue: CheckedVenue, engine: QuoteEngine) -> None:
        fake = faults.fake  # type: ignore[attr-defined]
        await until(lambda: quoting(venue, engine), 10.0)
        fake.stall()
        seen["paused"] = await until(
            lambda: engine.status().trading_state != "active" or not engine.status().bids.wanted,
            10.0,
        )
        seen["back"] = await until(lambda: quoting(venue, engine), 15.0)

    async def main() -> None:
        async with FakeHyperliquid() as fake:
            faults.fake = fake  # type: ignore[attr-defined]
            run = await paper(fake, 24.0, faults)
        assert run.feed.client.stats.pong_timeouts >= 1 and fake.stats.connections >= 2
        assert "back" in seen and seen["paused"] + seen["back"] < 16.0, seen

    asyncio.run(main())


def test_malformed_and_unknown_frames_do_not_stop_paper_trading():
    async def faults(venue: CheckedVenue, engine: QuoteEngine) -> None:
        fake = faults.fake  # type: ignore[attr-defined]
        await until(lambda: quoting(venue, engine), 10.0)
        for frame in (
            "{oops",
            b"\xff\xfe",
            '{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[{"px":"nan","sz":"1","n":1}],[]]}}',
            '{"channel":"trades","data":[{"coin":"BTC","side":"B","px":"1e400","sz":"1","time":1}]}',
            '{"channel":"bbo","data":{"coin":"BTC","time":1,"bbo":[{"px":"-5","sz":"1","n":1},null]}}',
            '{"channel":"somethingNew","data":{}}',
            '{"channel":"l2Book","data":{"coin":"ETH","time":99999999999999,"levels":[[],[]]}}',
        ):
            await fake.inject(frame)
        await asyncio.sleep(1.0)
        assert quoting(venue, engine)

    async def main() -> None:
        async with FakeHyperliquid() as fake:
            faults.fake = fake  # type: ignore[attr-defined]
            run = await paper(fake, 8.0, faults)
        stats = run.feed.client.decoder.stats
        assert stats.malformed == 2 and stats.unknown_channels == 1
        assert run.feed.stats.bad_values == 3 and run.feed.stats.other_coins == 1
        assert fake.stats.connections == 1 and run.venue.breaches == 0

    asyncio.run(main())
