"""Value types shared by every layer: instrument, market and account events, quotes and actions.

Prices and sizes in events and actions are floats in instrument units (USD, contracts) that lie
on the tick and lot grid; integer ticks and lots live inside the sizer and the order manager.
Every event carries ``ts_ns`` (integer nanoseconds) and is a tagged msgspec Struct, so a stream of
events encodes and decodes as one union type.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = [
    "AccountUpdate",
    "AckStatus",
    "Action",
    "BookUpdate",
    "Cancel",
    "ConnectionStatus",
    "Event",
    "Fill",
    "Instrument",
    "Level",
    "Modify",
    "OrderAck",
    "Place",
    "Quote",
    "QuoteSet",
    "Side",
    "Timer",
    "Trade",
]


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy (position grows), -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """Exchange rules for one market.

    ``max_sig_figs`` and ``max_price_decimals`` express Hyperliquid's price rule (at most 5
    significant figures and ``6 - szDecimals`` decimals; integer prices always allowed).
    """

    symbol: str
    tick_size: float
    lot_size: float
    min_notional: float = 0.0
    max_sig_figs: int | None = None
    max_price_decimals: int | None = None


Level = tuple[float, float]
"""A book level as ``(price, size)``."""


class BookUpdate(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Top of book (or more): levels as ``(price, size)``, best first on each side."""

    ts_ns: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    exchange_ts_ns: int | None = None


class Trade(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A public trade; ``aggressor`` is the side of the taker."""

    ts_ns: int
    price: float
    size: float
    aggressor: Side
    exchange_ts_ns: int | None = None


class Fill(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """One of our orders traded ``size`` at ``price``; ``fee`` in USD (negative is a rebate)."""

    ts_ns: int
    cloid: str
    price: float
    size: float
    side: Side
    fill_id: str
    fee: float = 0.0


class AckStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELED = "canceled"


class OrderAck(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The venue's answer to a place, modify or cancel, by client order id."""

    ts_ns: int
    cloid: str
    status: AckStatus
    reason: str = ""


class AccountUpdate(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Account state from the venue: equity in USD, optional balance and position."""

    ts_ns: int
    account_value: float
    balance: float | None = None
    position: float | None = None


class ConnectionStatus(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The venue connection went down or came back."""

    ts_ns: int
    connected: bool


class Timer(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A periodic tick so time-based checks run without market data."""

    ts_ns: int


Event = BookUpdate | Trade | Fill | OrderAck | AccountUpdate | ConnectionStatus | Timer


class Quote(msgspec.Struct, frozen=True):
    """A price and size a strategy wants resting on one side (floats, before exchange rounding)."""

    price: float
    size: float


class QuoteSet(msgspec.Struct, frozen=True):
    """Wanted quotes, best first on each side."""

    bids: tuple[Quote, ...] = ()
    asks: tuple[Quote, ...] = ()


class Place(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    cloid: str
    side: Side
    price: float
    size: float
    post_only: bool = True


class Cancel(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    cloid: str


class Modify(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    cloid: str
    price: float
    size: float


Action = Place | Cancel | Modify
