"""Hyperliquid market data for one coin: books, best bid/offer and trades as engine events.

``HyperliquidFeed`` owns a ``HyperliquidClient`` subscribed to ``l2Book`` (``fast: true``: 5
levels every 0.5 s), ``bbo`` (on every block where the touch changes), ``trades`` and
``activeAssetCtx`` (the funding rate, hourly). Frames become ``BookUpdate``/``Trade``/
``FundingRate`` events stamped with their local receive time; a book older (by
the venue's own ``time``) than one already passed on is dropped, so a slow 5-level snapshot
never undoes a newer best bid/offer. Connection changes become ``ConnectionStatus`` events (the
kill switch pauses quoting while disconnected; ``on_connected`` tells the owner of each new
connection, so state the venue keeps for us can be re-read). ``discover()`` reads the instrument
from the venue (``meta``: size decimals and asset index; the first book: the price that sets
the tick) and, given an address, that account's value and position (``clearinghouseState``),
all over the same websocket.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import msgspec

from market_maker.config import FeesConfig, InstrumentConfig
from market_maker.errors import VenueError
from market_maker.fees import apply_fees, rates_from_user_fees
from market_maker.instruments import resolve_instrument
from market_maker.log import get_logger
from market_maker.model import BookUpdate, ConnectionStatus, Event, FundingRate, Instrument
from market_maker.venues.hyperliquid.client import ClientConfig, HyperliquidClient
from market_maker.venues.hyperliquid.hip3 import asset_id, fee_multiplier, split_coin
from market_maker.venues.hyperliquid.messages import (
    ClearinghouseState,
    Message,
    Meta,
    PerpDex,
    UserFees,
    WsActiveAssetCtx,
    WsBbo,
    WsBook,
    WsTrade,
    bbo_event,
    book_event,
    finite,
    trade_events,
)

__all__ = ["FeedStats", "HyperliquidFeed", "VenueInfo", "market_subscriptions", "scaled_fee"]

FUNDING_INTERVAL_S = 3_600.0
"""Hyperliquid pays funding every hour (trading/funding); ``ctx.funding`` is that hour's rate."""


def market_subscriptions(coin: str) -> list[dict[str, object]]:
    return [
        {"type": "l2Book", "coin": coin, "fast": True},
        {"type": "bbo", "coin": coin},
        {"type": "trades", "coin": coin},
        {"type": "activeAssetCtx", "coin": coin},
    ]


class FeedStats(msgspec.Struct, kw_only=True):
    books: int = 0
    trades: int = 0
    stale_books: int = 0
    """Books older than one already passed on (a snapshot behind a newer bbo)."""
    bad_values: int = 0
    """Frames of the right shape with unusable prices or sizes."""
    other_coins: int = 0
    funding_rates: int = 0


class VenueInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the venue says about the market (and a watched account)."""

    instrument: Instrument
    asset_index: int
    sz_decimals: int
    max_leverage: int
    mid: float
    account_value: float | None = None
    position: float | None = None
    fee_source: str = "table"
    """Where the instrument's fee rates came from: ``userFees`` (the watched account's),
    config, table."""
    dex: str = ""
    """A builder-deployed (HIP-3) market's perp dex ("": Hyperliquid's own)."""
    isolated: bool = False
    """Margin is isolated (HIP-3 by default, or an ``onlyIsolated`` asset)."""
    oracle: str | None = None
    """Who sets the oracle price (a HIP-3 dex's ``oracleUpdater``; None: the validators)."""
    fee_multiplier: float = 1.0


class HyperliquidFeed:
    """Live market data of ``coin`` (a ``LiveFeed`` for ``PaperVenue``)."""

    def __init__(
        self,
        coin: str,
        config: ClientConfig,
        *,
        on_frame: Callable[[int, str], None] | None = None,
        connect_timeout_s: float = 15.0,
        user_subscriptions: Sequence[dict[str, object]] = (),
        on_user: Callable[[int, str, Message], None] | None = None,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        """``user_subscriptions`` ride on the same socket; their messages go to ``on_user``.
        ``on_connected`` is called each time a connection is subscribed (the first one and
        every reconnect), before its ``ConnectionStatus`` event."""
        self.coin = coin
        self.on_user = on_user
        self.on_connected = on_connected
        self.stats = FeedStats()
        self.connect_timeout_s = connect_timeout_s
        self.client = HyperliquidClient(
            config,
            [*market_subscriptions(coin), *user_subscriptions],
            on_message=self._on_message,
            on_status=self._on_status,
            on_frame=on_frame,
        )
        self._sink: Callable[[Event], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_book_ms = -1
        self._first_book = asyncio.Event()
        self._mid = 0.0
        self._rate: FundingRate | None = None
        self._log = get_logger("hyperliquid")

    # ----- LiveFeed -----------------------------------------------------------------------

    async def start(self, sink: Callable[[Event], None] | None = None) -> None:
        """Connect (once) and deliver events to ``sink`` from now on (the funding rate heard
        before, during discovery, first: the venue sends it on subscribe and on change)."""
        if sink is not None:
            self._sink = sink
            if self._rate is not None:
                sink(self._rate)
        if self._task is None:
            self._task = asyncio.create_task(self.client.run())
            await self.client.wait_ready(self.connect_timeout_s)

    def failure(self) -> BaseException | None:
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception() or VenueError("the Hyperliquid connection ended")

    async def close(self) -> None:
        await self.client.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    # ----- discovery ----------------------------------------------------------------------

    async def discover(
        self,
        overrides: InstrumentConfig | None = None,
        address: str | None = None,
        fees: FeesConfig | None = None,
    ) -> VenueInfo:
        """The market's rules from ``meta`` and its first book; a watched account's state and
        fee rates (``userFees``, which replace ``fees`` and the table's)."""
        await self.start()
        client = self.client
        try:
            builder = split_coin(self.coin)
        except ValueError as exc:
            raise VenueError(str(exc)) from None
        dex: PerpDex | None = None
        dex_index = 0
        if builder is None:
            meta = await client.info({"type": "meta"}, Meta)
        else:
            dexes = await client.info({"type": "perpDexs"}, list[PerpDex | None])
            named = [(i, d) for i, d in enumerate(dexes) if d is not None and d.name == builder[0]]
            if not named:
                known = ", ".join(d.name for d in dexes if d is not None) or "none"
                raise VenueError(f"Hyperliquid has no perp dex {builder[0]!r} (dexes: {known})")
            dex_index, dex = named[0]
            meta = await client.info({"type": "meta", "dex": dex.name}, Meta)
        found = meta.asset(self.coin)
        if found is None:
            names = ", ".join(a.name for a in meta.universe[:12])
            raise VenueError(f"Hyperliquid has no perpetual {self.coin!r} (e.g. {names}, ...)")
        index, asset = found
        multiplier = 1.0
        if dex is not None:
            index = asset_id(dex_index, index)
            try:
                multiplier = fee_multiplier(float(dex.deployerFeeScale))
            except ValueError:
                raise VenueError(
                    f"perpDexs: {dex.name}'s deployerFeeScale {dex.deployerFeeScale!r} is not "
                    "a number"
                ) from None
        if asset.isDelisted:
            raise VenueError(f"Hyperliquid's {self.coin} is delisted")
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await self._first_book.wait()
        except TimeoutError:
            raise VenueError(f"no {self.coin} book within {self.connect_timeout_s:g} s") from None
        o = overrides or InstrumentConfig()
        if o.sz_decimals is None:
            o = msgspec.structs.replace(o, sz_decimals=asset.szDecimals)
        instrument = resolve_instrument("hyperliquid", self.coin, price=self._mid, overrides=o)
        account_value = position = None
        live = None
        if address is not None:
            state = await client.info(
                {"type": "clearinghouseState", "user": address}, ClearinghouseState
            )
            account_value = finite(state.marginSummary.accountValue)
            position = finite(state.position(self.coin))
            user_fees = await client.info({"type": "userFees", "user": address}, UserFees)
            try:
                live = rates_from_user_fees(user_fees.userAddRate, user_fees.userCrossRate)
            except ValueError:
                raise VenueError(
                    f"userFees: rates {user_fees.userAddRate!r} / "
                    f"{user_fees.userCrossRate!r} are not numbers"
                ) from None
        instrument, rates = apply_fees(instrument, fees or FeesConfig(), live=live)
        if multiplier != 1.0:
            instrument = msgspec.structs.replace(
                instrument,
                maker_fee_bps=scaled_fee(instrument.maker_fee_bps, multiplier),
                taker_fee_bps=scaled_fee(instrument.taker_fee_bps, multiplier),
            )
        return VenueInfo(
            instrument=instrument,
            asset_index=index,
            sz_decimals=asset.szDecimals,
            max_leverage=asset.maxLeverage,
            mid=self._mid,
            account_value=account_value,
            position=position,
            fee_source=rates.source
            + (f" x {multiplier:g} ({dex.name}'s fee scale)" if dex is not None else ""),
            dex="" if dex is None else dex.name,
            isolated=dex is not None or asset.onlyIsolated,
            oracle=None if dex is None else (dex.oracleUpdater or dex.deployer),
            fee_multiplier=multiplier,
        )

    # ----- frames -------------------------------------------------------------------------

    def _on_status(self, ns: int, connected: bool) -> None:
        if connected and self.on_connected is not None:
            self.on_connected()
        if self._sink is not None:
            self._sink(ConnectionStatus(ts_ns=ns, connected=connected))

    def _on_message(self, ns: int, channel: str, message: Message) -> None:
        stats = self.stats
        try:
            if channel == "l2Book" and isinstance(message, WsBook):
                if message.coin != self.coin:
                    stats.other_coins += 1
                    return
                self._book(message.time, book_event(message, ns))
            elif channel == "bbo" and isinstance(message, WsBbo):
                if message.coin != self.coin:
                    stats.other_coins += 1
                    return
                self._book(message.time, bbo_event(message, ns))
            elif channel == "trades" and isinstance(message, tuple):
                trades = [t for t in message if isinstance(t, WsTrade) and t.coin == self.coin]
                events = trade_events(tuple(trades), ns)
                stats.trades += len(events)
                if self._sink is not None:
                    for ev in events:
                        self._sink(ev)
            elif channel == "activeAssetCtx" and isinstance(message, WsActiveAssetCtx):
                if message.coin != self.coin:
                    stats.other_coins += 1
                    return
                rate = finite(str(message.ctx.funding))
                if rate is None:
                    raise ValueError(message.ctx.funding)
                stats.funding_rates += 1
                self._rate = FundingRate(ts_ns=ns, rate=rate, interval_s=FUNDING_INTERVAL_S)
                if self._sink is not None:
                    self._sink(self._rate)
            elif self.on_user is not None:
                self.on_user(ns, channel, message)
        except ValueError:
            stats.bad_values += 1

    def _book(self, time_ms: int, book: BookUpdate) -> None:
        stats = self.stats
        if time_ms < self._last_book_ms:
            stats.stale_books += 1
            return
        self._last_book_ms = time_ms
        stats.books += 1
        if book.bids and book.asks:
            self._mid = 0.5 * (book.bids[0][0] + book.asks[0][0])
            self._first_book.set()
        if self._sink is not None:
            self._sink(book)


def scaled_fee(bps: float | None, multiplier: float) -> float | None:
    """A fee rate times a HIP-3 dex's multiplier (a rebate is not scaled up)."""
    if bps is None:
        return None
    return bps * multiplier if bps > 0.0 else bps
