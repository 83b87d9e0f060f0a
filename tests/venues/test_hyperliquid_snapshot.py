"""A Hyperliquid snapshot is two queries (open orders, position) and a block can commit between
them. The venue adopts a reading only when the open orders read before and after the position
agree, so the position and each order's cumulative fill are of one instant. The queries are
scripted here (what the venue answers to each, in order); the loopback exchange runs the same
path in the live tests."""

from __future__ import annotations

import asyncio

from market_maker.model import AccountUpdate, VenueSnapshot
from market_maker.venues.hyperliquid.client import ClientConfig
from market_maker.venues.hyperliquid.messages import (
    AssetPosition,
    ClearinghouseState,
    MarginSummary,
    OpenOrderWire,
    Position,
)
from market_maker.venues.hyperliquid.signing import Signer
from market_maker.venues.hyperliquid.venue import HyperliquidVenue

SIGNER = Signer("0x" + "ab" * 32, mainnet=True)


def resting(sz: str, orig: str = "0.010") -> OpenOrderWire:
    return OpenOrderWire(
        coin="BTC",
        side="B",
        limitPx="100000",
        sz=sz,
        oid=1001,
        timestamp=0,
        origSz=orig,
        cloid="0x" + "1" * 32,
    )


def state(position: str, time_ms: int | None = 1_700_000_000_000) -> ClearinghouseState:
    return ClearinghouseState(
        marginSummary=MarginSummary(accountValue="10000"),
        assetPositions=(AssetPosition(position=Position(coin="BTC", szi=position)),),
        time=time_ms,
    )


def scripted(orders: list[list[OpenOrderWire]], states: list[ClearinghouseState]):
    venue = HyperliquidVenue("BTC", ClientConfig(url="ws://127.0.0.1:9"), SIGNER)
    calls: list[str] = []

    async def open_orders() -> list[OpenOrderWire]:
        calls.append("openOrders")
        return orders.pop(0)

    async def account() -> ClearinghouseState:
        calls.append("clearinghouseState")
        return states.pop(0)

    venue._open_orders = open_orders  # type: ignore[method-assign]
    venue._state = account  # type: ignore[method-assign]
    return venue, calls


def snapshots(venue: HyperliquidVenue) -> list[VenueSnapshot]:
    return [e for e in venue._events if isinstance(e, VenueSnapshot)]


def test_a_fill_between_the_two_queries_is_read_again_never_half_counted():
    # 4 lots filled; a block fills 3 more between the open orders and the position.
    venue, calls = scripted(
        orders=[[resting("0.006")], [resting("0.003")], [resting("0.003")]],
        states=[state("0.007"), state("0.007")],
    )
    asyncio.run(venue._snapshot(9))
    (snap,) = snapshots(venue)
    assert calls == [
        "openOrders",
        "clearinghouseState",
        "openOrders",  # differs: 3 more lots filled in between
        "clearinghouseState",
        "openOrders",  # agrees
    ]
    (order,) = snap.orders
    # One instant: the order's cumulative fill (7) is exactly what the position holds.
    assert abs(order.filled_size - 0.007) < 1e-12 and abs(snap.position - 0.007) < 1e-12
    assert venue.stats.snapshot_retries == 1 and snap.request_id == 9


def test_a_snapshot_that_never_reads_the_same_twice_is_given_up_for_the_engine_to_ask_again():
    venue, _ = scripted(
        orders=[[resting(f"0.00{9 - i}")] for i in range(4)],
        states=[state("0.001"), state("0.002"), state("0.003")],
    )
    asyncio.run(venue._snapshot(3))
    assert snapshots(venue) == [] and venue.stats.torn_snapshots == 1
    assert not any(isinstance(e, AccountUpdate) for e in venue._events)


def test_a_state_without_its_time_is_stamped_when_it_came_never_at_zero():
    venue, _ = scripted(orders=[[], []], states=[state("0", time_ms=None)])
    asyncio.run(venue._snapshot(1))
    (snap,) = snapshots(venue)
    assert snap.exchange_ts_ns == snap.ts_ns > 0
