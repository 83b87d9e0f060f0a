"""Hyperliquid websocket messages: wire types that mirror the JSON, and their domain events.

Every frame is ``{"channel": ..., "data": ...}`` except the plain-text greeting the server sends
on connect. ``FrameDecoder.decode`` reads the envelope once, then the channel's own reusable
decoder reads ``data`` into a frozen Struct; a frame that is not JSON, has an unknown channel
or does not fit its channel's shape is counted in ``FrameStats`` and skipped, never raised.
Prices and sizes travel as decimal strings: ``to_units`` turns one into an exact integer of
``10**-decimals`` units (no float on the way), and ``book_event``, ``bbo_event`` and
``trade_events`` make the engine's float events from them, refusing text that is not a finite
positive number. Shapes are from ``reference/hyperliquid-verified.md`` (section 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgspec

from market_maker.model import AckStatus, BookUpdate, Level, Side, Trade

__all__ = [
    "CHANNEL_DECODERS",
    "GREETING",
    "AssetMeta",
    "ClearinghouseState",
    "FrameDecoder",
    "FrameStats",
    "Meta",
    "OpenOrderWire",
    "PerpDex",
    "PostResponse",
    "SubscriptionResponse",
    "UserFees",
    "UserRateLimit",
    "WsActiveAssetCtx",
    "WsBbo",
    "WsBook",
    "WsClearinghouseState",
    "WsError",
    "WsFill",
    "WsLevel",
    "WsOpenOrders",
    "WsOrder",
    "WsPong",
    "WsTrade",
    "WsUserEvent",
    "WsUserFills",
    "WsUserFunding",
    "WsUserFundings",
    "bbo_event",
    "book_event",
    "order_status",
    "parse_price",
    "to_units",
    "trade_events",
]

GREETING = "Websocket connection established."
"""The plain-text frame the server sends first (the Python SDK drops it before parsing)."""

_NS_PER_MS = 1_000_000


# ----- market data ------------------------------------------------------------------------------


class WsLevel(msgspec.Struct, frozen=True):
    px: str
    sz: str
    n: int = 0


class WsBook(msgspec.Struct, frozen=True):
    """``l2Book``: a full snapshot (5 levels a side with ``fast: true``, 20 without)."""

    coin: str
    levels: tuple[tuple[WsLevel, ...], tuple[WsLevel, ...]]
    time: int


class WsBbo(msgspec.Struct, frozen=True):
    """``bbo``: sent when the best bid or offer changes on a block; a side may be null."""

    coin: str
    time: int
    bbo: tuple[WsLevel | None, WsLevel | None]


class WsTrade(msgspec.Struct, frozen=True):
    """One print of ``trades``; ``side`` is the aggressor's (``B`` buy, ``A`` sell)."""

    coin: str
    side: str
    px: str
    sz: str
    time: int
    tid: int = 0
    hash: str = ""
    users: tuple[str, ...] = ()


# ----- user streams -----------------------------------------------------------------------------


class WsBasicOrder(msgspec.Struct, frozen=True):
    coin: str
    side: str
    limitPx: str
    sz: str
    oid: int
    timestamp: int
    origSz: str = ""
    cloid: str | None = None


class WsOrder(msgspec.Struct, frozen=True):
    """One entry of ``orderUpdates``: ``status`` is one of the order-status strings."""

    order: WsBasicOrder
    status: str
    statusTimestamp: int


class WsFill(msgspec.Struct, frozen=True):
    """A fill of ours (``userFills`` and ``user``); ``fee`` is negative for a rebate."""

    coin: str
    px: str
    sz: str
    side: str
    time: int
    oid: int
    tid: int
    fee: str = "0"
    startPosition: str = "0"
    dir: str = ""
    closedPnl: str = "0"
    hash: str = ""
    crossed: bool = False
    feeToken: str = ""
    cloid: str | None = None
    liquidation: msgspec.Raw | None = None
    builderFee: str | None = None
    twapId: int | None = None


class WsUserFills(msgspec.Struct, frozen=True):
    """``userFills``: the first message after a subscribe is a snapshot (``isSnapshot``)."""

    user: str
    fills: tuple[WsFill, ...]
    isSnapshot: bool = False


class WsNonUserCancel(msgspec.Struct, frozen=True):
    coin: str
    oid: int


class WsUserEvent(msgspec.Struct, frozen=True):
    """Channel ``user`` (subscription ``userEvents``): exactly one of the fields is set."""

    fills: tuple[WsFill, ...] | None = None
    funding: msgspec.Raw | None = None
    liquidation: msgspec.Raw | None = None
    nonUserCancel: tuple[WsNonUserCancel, ...] | None = None


class WsUserFunding(msgspec.Struct, frozen=True):
    """A funding payment (GB subscriptions ``WsUserFunding``): ``usdc`` received, negative
    when paid (the info ``userFunding`` examples: a long of 49.1477 ETH at +0.0000417 has
    ``-3.625312``, a short of 15 at +0.00000625 ``2.378343``); ``szi`` the signed position."""

    time: int
    coin: str
    usdc: str
    szi: str
    fundingRate: str
    nSamples: int | None = None


class WsUserFundings(msgspec.Struct, frozen=True):
    """``userFundings``: "funding payments snapshot followed by funding payments on the hour"
    (GB; the first message ``isSnapshot: true``). The docs name the envelope without its
    fields; ``fundings`` is the field a live payload shows [3rd-party], ``userFundings`` the
    alternative one SDK types list: either is read."""

    user: str = ""
    fundings: tuple[WsUserFunding, ...] = ()
    userFundings: tuple[WsUserFunding, ...] = ()
    isSnapshot: bool = False

    @property
    def payments(self) -> tuple[WsUserFunding, ...]:
        return self.fundings or self.userFundings


class PerpsAssetCtx(msgspec.Struct, frozen=True):
    """GB ``PerpsAssetCtx``: typed ``number`` in the docs, written as decimal strings in
    their ``metaAndAssetCtxs`` example: both are read. ``funding`` is the hourly rate."""

    funding: str | float
    markPx: str | float | None = None
    oraclePx: str | float | None = None
    midPx: str | float | None = None
    openInterest: str | float | None = None


class WsActiveAssetCtx(msgspec.Struct, frozen=True):
    """``activeAssetCtx``: the market's context (funding, open interest, oracle and mark)."""

    coin: str
    ctx: PerpsAssetCtx


class MarginSummary(msgspec.Struct, frozen=True):
    accountValue: str
    totalNtlPos: str = "0"
    totalRawUsd: str = "0"
    totalMarginUsed: str = "0"


class Position(msgspec.Struct, frozen=True):
    coin: str
    szi: str
    entryPx: str | None = None
    positionValue: str = "0"
    unrealizedPnl: str = "0"
    liquidationPx: str | None = None
    marginUsed: str = "0"


class AssetPosition(msgspec.Struct, frozen=True):
    position: Position
    type: str = "oneWay"


class ClearinghouseState(msgspec.Struct, frozen=True):
    """Account value and positions (info ``clearinghouseState`` and its subscription)."""

    marginSummary: MarginSummary
    assetPositions: tuple[AssetPosition, ...] = ()
    crossMarginSummary: MarginSummary | None = None
    withdrawable: str = "0"
    time: int | None = None
    """The API server's clock in ms when it answered (not the blocks' clock of fills); None
    when the frame left it out: a snapshot must then say when it was received instead."""

    def position(self, coin: str) -> str:
        """The signed size held in ``coin`` as the venue wrote it (``"0"`` when flat)."""
        for held in self.assetPositions:
            if held.position.coin == coin:
                return held.position.szi
        return "0"


class UserFees(msgspec.Struct, frozen=True):
    """Info ``userFees``: the account's rates now (fractions of notional as strings;
    ``userAddRate`` maker, negative for a rebate; ``userCrossRate`` taker)."""

    userAddRate: str
    userCrossRate: str


class UserRateLimit(msgspec.Struct, frozen=True):
    """Info ``userRateLimit``: the address request budget as the venue counts it."""

    nRequestsUsed: int
    nRequestsCap: int
    nRequestsSurplus: int = 0
    cumVlm: str = "0"

    @property
    def left(self) -> int:
        """Requests the address may still send before it is limited to one per 10 s."""
        return self.nRequestsCap - self.nRequestsUsed + self.nRequestsSurplus


class WsClearinghouseState(msgspec.Struct, frozen=True):
    user: str
    clearinghouseState: ClearinghouseState
    dex: str = ""


class OpenOrderWire(msgspec.Struct, frozen=True):
    coin: str
    side: str
    limitPx: str
    sz: str
    oid: int
    timestamp: int
    origSz: str | None = None
    cloid: str | None = None
    reduceOnly: bool = False


class WsOpenOrders(msgspec.Struct, frozen=True):
    user: str
    orders: tuple[OpenOrderWire, ...]
    dex: str = ""


# ----- control ----------------------------------------------------------------------------------


class SubscriptionResponse(msgspec.Struct, frozen=True):
    """The ack of a subscribe or unsubscribe; ``subscription`` echoes the request (the server
    may add fields, so match it by subset)."""

    method: str
    subscription: dict[str, Any]


class PostBody(msgspec.Struct, frozen=True):
    type: str
    """``info``, ``action`` or ``error``."""
    payload: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


class PostResponse(msgspec.Struct, frozen=True):
    """The answer to a ``post`` request, naming its ``id``."""

    id: int
    response: PostBody


class WsPong(msgspec.Struct, frozen=True):
    """``{"channel": "pong"}``: the answer to ``{"method": "ping"}``."""


class WsError(msgspec.Struct, frozen=True):
    """``{"channel": "error", "data": "<text>"}``."""

    text: str


class AssetMeta(msgspec.Struct, frozen=True):
    name: str
    szDecimals: int
    maxLeverage: int = 1
    onlyIsolated: bool = False
    isDelisted: bool = False


class PerpDex(msgspec.Struct, frozen=True):
    """One entry of info ``perpDexs`` (a builder-deployed dex; the first entry, Hyperliquid's
    own dex, is null)."""

    name: str
    fullName: str = ""
    deployer: str = ""
    oracleUpdater: str | None = None
    deployerFeeScale: str = "1.0"


class Meta(msgspec.Struct, frozen=True):
    """Info ``meta``: a perp's asset index is its position in ``universe``."""

    universe: tuple[AssetMeta, ...]

    def asset(self, coin: str) -> tuple[int, AssetMeta] | None:
        for index, asset in enumerate(self.universe):
            if asset.name == coin:
                return index, asset
        return None


# ----- decoding ---------------------------------------------------------------------------------


class _Envelope(msgspec.Struct):
    channel: str
    data: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


class FrameStats(msgspec.Struct, kw_only=True):
    """What the decoder saw: frames by outcome, and unknown names met."""

    frames: int = 0
    greetings: int = 0
    malformed: int = 0
    """Not JSON, no channel, or a channel's data of the wrong shape."""
    unknown_channels: int = 0
    unknown_statuses: int = 0
    last_unknown: str = ""


Message = (
    WsBook
    | WsBbo
    | tuple[WsTrade, ...]
    | tuple[WsOrder, ...]
    | WsUserFills
    | WsUserFundings
    | WsActiveAssetCtx
    | WsUserEvent
    | WsClearinghouseState
    | WsOpenOrders
    | SubscriptionResponse
    | PostResponse
    | WsPong
    | WsError
)

CHANNEL_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "l2Book": msgspec.json.Decoder(WsBook).decode,
    "bbo": msgspec.json.Decoder(WsBbo).decode,
    "trades": msgspec.json.Decoder(tuple[WsTrade, ...]).decode,
    "orderUpdates": msgspec.json.Decoder(tuple[WsOrder, ...]).decode,
    "userFills": msgspec.json.Decoder(WsUserFills).decode,
    "user": msgspec.json.Decoder(WsUserEvent).decode,
    "userFundings": msgspec.json.Decoder(WsUserFundings).decode,
    "activeAssetCtx": msgspec.json.Decoder(WsActiveAssetCtx).decode,
    "clearinghouseState": msgspec.json.Decoder(WsClearinghouseState).decode,
    "openOrders": msgspec.json.Decoder(WsOpenOrders).decode,
    "subscriptionResponse": msgspec.json.Decoder(SubscriptionResponse).decode,
    "post": msgspec.json.Decoder(PostResponse).decode,
}
_text = msgspec.json.Decoder(str)
_envelope = msgspec.json.Decoder(_Envelope)
_PONG = WsPong()


class FrameDecoder:
    """Decodes frames into wire types; counts and skips what it cannot use."""

    def __init__(self) -> None:
        self.stats = FrameStats()

    def decode(self, frame: str | bytes) -> tuple[str, Message] | None:
        """``(channel, message)``, or None for the greeting and for anything unusable."""
        stats = self.stats
        stats.frames += 1
        if isinstance(frame, str):
            if frame == GREETING:
                stats.greetings += 1
                return None
            frame = frame.encode()
        try:
            env = _envelope.decode(frame)
            channel = env.channel
            decode = CHANNEL_DECODERS.get(channel)
            if decode is not None:
                return channel, decode(env.data)
            if channel == "pong":
                return channel, _PONG
            if channel == "error":
                return channel, WsError(text=_text.decode(env.data))
        except (msgspec.DecodeError, UnicodeDecodeError):  # ValidationError is a DecodeError
            stats.malformed += 1
            return None
        stats.unknown_channels += 1
        stats.last_unknown = channel[:64]
        return None

    def status(self, text: str) -> AckStatus | None:
        """``order_status``, counting the unknown ones."""
        status = order_status(text)
        if status is None:
            self.stats.unknown_statuses += 1
            self.stats.last_unknown = text[:64]
        return status


# ----- order statuses ---------------------------------------------------------------------------

_FILLED = "filled"


def order_status(text: str) -> AckStatus | None:
    """Our ``AckStatus`` for an order-status string, None when it is unknown.

    ``open`` rests (ACCEPTED); ``filled`` and every ``...Canceled`` (``canceled``,
    ``marginCanceled``, ``scheduledCancel``, ...) leave the book (CANCELED: the order's
    fills say how much traded); ``rejected`` and every ``...Rejected`` were never placed.
    ``triggered`` concerns trigger orders, which we do not send.
    """
    if text == "open":
        return AckStatus.ACCEPTED
    if text == _FILLED or text == "canceled" or text == "scheduledCancel":
        return AckStatus.CANCELED
    if text.endswith("Canceled") and text[0].islower():
        return AckStatus.CANCELED
    if text == "rejected" or (text.endswith("Rejected") and text[0].islower()):
        return AckStatus.REJECTED
    return None


# ----- values -----------------------------------------------------------------------------------

_MAX_PRICE = 1e15


def parse_price(text: str) -> float:
    """A price or size string as a float; ValueError unless finite, positive and sane."""
    value = float(text)
    if not 0.0 < value < _MAX_PRICE:  # also NaN and inf
        raise ValueError(f"not a usable price or size: {text[:32]!r}")
    return value


def to_units(text: str, decimals: int) -> int:
    """The decimal string ``text`` as an exact integer count of ``10**-decimals``.

    ``to_units("0.00219", 5) == 219``; ``to_units("-1.5", 1) == -15``. ValueError when the
    text is not a plain decimal or has more decimals than ``decimals`` allows (non-zero ones).
    """
    s = text.strip()
    negative = s.startswith("-")
    if negative or s.startswith("+"):
        s = s[1:]
    whole, _, frac = s.partition(".")
    if (
        not (whole or frac)
        or not (whole.isdigit() or not whole)
        or not (frac.isdigit() or not frac)
    ):
        raise ValueError(f"not a decimal: {text[:32]!r}")
    if not whole.isascii() or not frac.isascii():
        raise ValueError(f"not a decimal: {text[:32]!r}")
    extra = frac[decimals:]
    if extra.strip("0"):
        raise ValueError(f"{text[:32]!r} has more than {decimals} decimals")
    frac = frac[:decimals].ljust(decimals, "0")
    units: int = int(whole or "0") * 10**decimals + int(frac or "0")
    return -units if negative else units


def _levels(levels: tuple[WsLevel, ...]) -> tuple[Level, ...]:
    out = tuple([(float(lv.px), float(lv.sz)) for lv in levels])
    for px, sz in out:
        if not (0.0 < px < _MAX_PRICE and 0.0 < sz < _MAX_PRICE):  # also NaN and inf
            raise ValueError(f"not a usable level: {px!r} {sz!r}")
    return out


def book_event(book: WsBook, ts_ns: int) -> BookUpdate:
    """An ``l2Book`` snapshot as a ``BookUpdate`` (ValueError on an unusable price or size)."""
    return BookUpdate(
        ts_ns=ts_ns,
        bids=_levels(book.levels[0]),
        asks=_levels(book.levels[1]),
        exchange_ts_ns=book.time * _NS_PER_MS,
    )


def bbo_event(bbo: WsBbo, ts_ns: int) -> BookUpdate:
    """A ``bbo`` message as a one-level ``BookUpdate`` (an empty side stays empty)."""
    bid, ask = bbo.bbo
    return BookUpdate(
        ts_ns=ts_ns,
        bids=((parse_price(bid.px), parse_price(bid.sz)),) if bid is not None else (),
        asks=((parse_price(ask.px), parse_price(ask.sz)),) if ask is not None else (),
        exchange_ts_ns=bbo.time * _NS_PER_MS,
    )


def trade_events(trades: tuple[WsTrade, ...], ts_ns: int) -> list[Trade]:
    """Prints as ``Trade`` events; the whole batch is checked before any is returned."""
    return [
        Trade(
            ts_ns=ts_ns,
            price=parse_price(t.px),
            size=parse_price(t.sz),
            aggressor=Side.BUY if t.side == "B" else Side.SELL,
            exchange_ts_ns=t.time * _NS_PER_MS,
        )
        for t in trades
    ]


def finite(text: str) -> float | None:
    """A signed amount (account value, position) as a float, None when unusable."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and abs(value) < _MAX_PRICE else None
