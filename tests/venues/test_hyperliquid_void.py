"""Late actions made harmless on Hyperliquid, against the trading loopback exchange: an order
or modify left unanswered is voided with a ``noop`` of its nonce (the venue takes a nonce once),
and the address request budget is read from the venue (``userRateLimit``) on every connection.

The fake keeps an action from its block in two ways: ``detain`` (a slow path: later actions
overtake it) and ``hold`` (a slow block: everything waits, then one block sorts them, no-taker
actions such as ``noop`` before cancels before IOCs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from market_maker.model import (
    AckStatus,
    BookUpdate,
    Event,
    OrderAck,
    Place,
    RequestSnapshot,
    Side,
    VenueSnapshot,
)
from market_maker.venues.hyperliquid.client import ClientConfig
from market_maker.venues.hyperliquid.fake_exchange import FakeHyperliquidExchange
from market_maker.venues.hyperliquid.signing import Signer
from market_maker.venues.hyperliquid.venue import UPDATE, HyperliquidVenue
from tests.fakes.hyperliquid import until

pytestmark = pytest.mark.slow  # real sockets and wall-clock waits

SIGNER = Signer("0x" + "ab" * 32, mainnet=True)
USER = "0x" + "c" * 40
CLOID = "0x" + "7" * 32
RID = 7


class Session:
    """A venue connected to ``fake``, its events collected as they come."""

    def __init__(self, fake: FakeHyperliquidExchange, **venue: Any) -> None:
        venue.setdefault("request_expiry_s", None)  # the noop alone protects here
        venue.setdefault("action_timeout_s", 0.3)
        self.fake = fake
        self.venue = HyperliquidVenue(
            "BTC", ClientConfig(url=fake.url), SIGNER, account=USER, **venue
        )
        self.events: list[Event] = []
        self._task: asyncio.Task[None] | None = None
        self.tick = 1.0

    async def __aenter__(self) -> Session:
        info = await self.venue.discover()
        self.tick = info.instrument.tick_size
        await self.venue.connect()
        self._task = asyncio.create_task(self._collect(self.venue.events()))
        await until(lambda: self.bid() is not None, 5.0)
        # The dead man's switch is refused (no volume): no action of ours but the test's.
        await until(lambda: not self.venue.stats.dms_available, 5.0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.fake.hold(False)
        self.fake.release()
        await self.venue.close()

    async def _collect(self, events: AsyncIterator[Event]) -> None:
        async for ev in events:
            self.events.append(ev)

    def bid(self) -> float | None:
        books = [e for e in self.events if isinstance(e, BookUpdate) and e.bids]
        return books[-1].bids[0][0] if books else None

    def answers(self, rid: int = RID) -> list[OrderAck]:
        return [e for e in self.events if isinstance(e, OrderAck) and e.request_id == rid]

    def resting_bid(self) -> Place:
        """A post-only bid 50 ticks under the touch: it rests if it ever reaches a block."""
        price = round((self.bid() or 0.0) - 50 * self.tick, 6)
        return Place(cloid=CLOID, side=Side.BUY, price=price, size=0.001, request_id=RID)

    def taking_buy(self) -> Place:
        """An IOC buy 20 ticks through the touch: it trades if it ever reaches a block."""
        price = round((self.bid() or 0.0) + 20 * self.tick, 6)
        return Place(
            cloid=CLOID, side=Side.BUY, price=price, size=0.001, post_only=False, request_id=RID
        )


def nonce_of(fake: FakeHyperliquidExchange, kind: str) -> int:
    """The nonce of the one ``kind`` action the fake holds (detained or queued)."""
    (nonce,) = [
        int(q.payload["nonce"])
        for q in [*fake._transit, *fake._queue]
        if q.payload["action"]["type"] == kind
    ]
    return nonce


async def late_original(void: bool, *, drop: bool) -> dict[str, Any]:
    """A post-only place detained on its way to a block until its post times out (or the
    connection drops under it), then let through: what became of it."""
    async with (
        FakeHyperliquidExchange(agent=SIGNER.address, user=USER) as fake,
        Session(fake, void_in_flight=void) as s,
    ):
        fake.detain({"order"})
        await s.venue.submit([s.resting_bid()])
        await until(lambda: fake.in_transit() == 1, 5.0)
        nonce = nonce_of(fake, "order")
        if drop:
            await fake.drop(clean=False)
        await asyncio.sleep(1.5)  # timeout, reconnect, the noop's block
        answered = list(s.answers())
        fake.release()  # the original reaches a block at last
        await until(lambda: fake.in_transit() == 0 and fake.queued() == 0, 5.0)
        await asyncio.sleep(0.3)
        return {
            "nonce": nonce,
            "answered": answered,
            "committed": [n for _, n in fake.committed],
            "refused": list(fake.refused),
            "rests": fake.open_orders(),
            "actions": list(fake.actions),
            "stats": s.venue.stats,
            "connects": s.venue.client.stats.connects,
        }


def assert_voided(out: dict[str, Any]) -> None:
    nonce = out["nonce"]
    # The noop went out with the original's nonce and the venue took it ...
    assert out["actions"].count("noop") == 1 and out["committed"].count(nonce) == 2
    assert out["stats"].voids_sent == 1 and out["stats"].nonces_voided == 1
    # ... so the late original is refused, never rests, and the engine was told so.
    assert f"Invalid nonce: duplicate nonce {nonce}" in out["refused"]
    assert "order" not in out["actions"] and out["rests"] == 0
    (ack,) = out["answered"]
    assert ack.status == AckStatus.REJECTED and "noop" in ack.reason


def test_a_timed_out_place_is_voided_by_a_noop_of_its_nonce_and_the_late_original_refused():
    out = asyncio.run(late_original(True, drop=False))
    assert_voided(out)


def test_a_place_in_flight_when_the_connection_drops_is_voided_on_the_next_connection():
    out = asyncio.run(late_original(True, drop=True))
    assert out["connects"] == 2
    assert_voided(out)


def test_without_the_noop_the_late_original_executes_and_rests():
    """The counterfactual: nothing voids the nonce, so the place commits when it arrives
    (without ``expiresAfter`` nothing else stops it) and an order the engine was never told
    about rests at the venue."""
    out = asyncio.run(late_original(False, drop=False))
    assert out["stats"].voids_sent == 0 and out["answered"] == []
    assert "order" in out["actions"] and out["rests"] == 1


def test_a_timed_out_ioc_in_a_slow_block_is_voided_because_the_block_takes_the_noop_first():
    async def main() -> None:
        async with (
            FakeHyperliquidExchange(agent=SIGNER.address, user=USER) as fake,
            Session(fake) as s,
        ):
            fake.hold()
            await s.venue.submit([s.taking_buy()])
            await until(lambda: fake.queued() == 1, 5.0)
            nonce = nonce_of(fake, "order")
            await until(lambda: fake.queued() == 2, 5.0)  # timed out: the noop waits too
            assert nonce_of(fake, "noop") == nonce
            fake.hold(False)  # one block: the noop (no taker) before the IOC
            await until(lambda: len(s.answers()) == 1, 5.0)
            (ack,) = s.answers()
            assert ack.status == AckStatus.REJECTED and s.venue.stats.nonces_voided == 1
            assert f"Invalid nonce: duplicate nonce {nonce}" in fake.refused
            assert fake.position == 0.0 and "order" not in fake.actions

    asyncio.run(main())


def test_a_noop_too_late_answers_nothing_and_a_snapshot_asked_meanwhile_shows_the_order():
    """A slow block takes a post-only place before the noop sent after it (same class,
    arrival order): the noop is refused as a duplicate. The request is not declared refused
    (the engine keeps its worst case), and a snapshot asked for while the noop was on its way
    waits for it, so it shows the order the late original placed."""

    async def main() -> None:
        async with (
            FakeHyperliquidExchange(agent=SIGNER.address, user=USER) as fake,
            Session(fake) as s,
        ):
            fake.hold()
            await s.venue.submit([s.resting_bid()])
            await until(lambda: fake.queued() == 2, 5.0)  # the place, then its noop
            await s.venue.submit([RequestSnapshot(request_id=9)])
            await asyncio.sleep(0.3)  # info is answered at once: it would miss the order
            assert not [e for e in s.events if isinstance(e, VenueSnapshot)]
            fake.hold(False)
            await until(lambda: any(isinstance(e, VenueSnapshot) for e in s.events), 5.0)
            (snap,) = [e for e in s.events if isinstance(e, VenueSnapshot)]
            assert [o.cloid for o in snap.orders] == [CLOID] and fake.open_orders() == 1
            assert s.venue.stats.voids_too_late == 1 and s.venue.stats.nonces_voided == 0
            assert s.answers() == []  # no answer: the engine keeps the request's exposure
            updates = [e for e in s.events if isinstance(e, OrderAck)]
            assert all(u.request_id == UPDATE for u in updates)  # only the venue's "open"

    asyncio.run(main())


def test_the_address_budget_is_read_at_connect_and_again_after_every_reconnect():
    async def main() -> None:
        async with FakeHyperliquidExchange(agent=SIGNER.address, user=USER) as fake:
            fake.requests_used = 9_990  # an earlier process spent nearly all of it
            async with Session(fake) as s:
                venue = s.venue
                await until(lambda: venue.stats.budget_reads == 1, 5.0)
                # Read at connect; the dead man's switch's one request counted on both sides.
                assert venue.budget.left == 10_000 - fake.requests_used == 9.0
                fake.requests_used = 9_997  # another process on the address spent more
                await fake.drop(clean=False)
                await until(lambda: venue.stats.budget_reads == 2, 5.0)
                assert venue.budget.left == 3.0 and venue.client.stats.connects == 2

    asyncio.run(main())


def test_an_unreadable_budget_answer_is_counted_and_the_local_budget_kept():
    async def main() -> None:
        async with FakeHyperliquidExchange(agent=SIGNER.address, user=USER) as fake:
            real = fake.info

            def info(payload: dict[str, Any]) -> Any:
                if payload.get("type") == "userRateLimit":
                    return {"nRequestsUsed": "lots", "nRequestsCap": None}
                return real(payload)

            fake.info = info  # type: ignore[method-assign]
            async with Session(fake) as s:
                await until(lambda: s.venue.stats.budget_read_failures == 1, 5.0)
                assert s.venue.budget.left == 10_000.0 - 1  # kept (less the dead man's switch)
                assert s.venue.stats.budget_reads == 0
                await s.venue.submit([s.resting_bid()])  # orders still go
                await until(lambda: len(s.answers()) == 1, 5.0)
                assert s.answers()[0].status == AckStatus.ACCEPTED

    asyncio.run(main())
