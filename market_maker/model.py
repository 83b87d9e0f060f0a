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
    "FeeUpdate",
    "Fill",
    "FundingPayment",
    "FundingRate",
    "Instrument",
    "InstrumentKind",
    "Level",
    "Modify",
    "OpenOrder",
    "OrderAck",
    "Place",
    "Quote",
    "QuoteSet",
    "RequestSnapshot",
    "Side",
    "Timer",
    "Trade",
    "VenueSnapshot",
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


class InstrumentKind(StrEnum):
    """What one contract is.

    - ``LINEAR``: a perpetual quoted and settled in the quote currency (USD-M, Hyperliquid);
      one contract is ``contract_size`` units of the base asset, worth
      ``size * contract_size * price`` USD.
    - ``INVERSE``: a perpetual settled in the base coin (Binance COIN-M); one contract is
      ``contract_size`` USD of the coin, worth ``size * contract_size`` USD and
      ``size * contract_size / price`` coin. PnL of a long is ``size * contract_size *
      (1 / entry - 1 / exit)`` coin.
    - ``SPOT``: the asset itself, bought with the quote currency: no leverage, no funding, a
      sell needs the base asset held and a buy the quote.
    """

    LINEAR = "linear"
    INVERSE = "inverse"
    SPOT = "spot"


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """Exchange rules for one market.

    ``max_sig_figs`` and ``max_price_decimals`` express Hyperliquid's price rule (at most 5
    significant figures and ``6 - szDecimals`` decimals; integer prices always allowed).
    ``min_notional`` is in USD (the quote currency). ``maker_fee_bps`` and ``taker_fee_bps``
    are the fee the account pays on this market, basis points of the USD value (negative: a
    rebate); None where nothing says (the caller's default applies).
    """

    symbol: str
    tick_size: float
    lot_size: float
    min_notional: float = 0.0
    max_sig_figs: int | None = None
    max_price_decimals: int | None = None
    kind: InstrumentKind = InstrumentKind.LINEAR
    contract_size: float = 1.0
    """Linear and spot: base units per contract; inverse: USD per contract."""
    quote_currency: str = "USD"
    settlement_currency: str = "USD"
    """What margin, PnL and fees are paid in: the quote currency for linear and spot, the
    base coin for inverse contracts."""
    venue: str = ""
    maker_fee_bps: float | None = None
    taker_fee_bps: float | None = None

    @property
    def inverse(self) -> bool:
        return self.kind is InstrumentKind.INVERSE

    @property
    def spot(self) -> bool:
        return self.kind is InstrumentKind.SPOT

    def unit_value(self, price: float) -> float:
        """USD value of one contract at ``price`` (inverse: ``contract_size``, whatever the
        price)."""
        if self.kind is InstrumentKind.INVERSE:
            return self.contract_size
        return price * self.contract_size

    def value_usd(self, size: float, price: float) -> float:
        """USD value of ``size`` contracts at ``price``."""
        return size * self.unit_value(price)

    def to_settlement(self, usd: float, price: float) -> float:
        """An amount in USD expressed in the settlement currency at ``price``."""
        return usd / price if self.kind is InstrumentKind.INVERSE else usd

    def pnl_settlement(self, size: float, entry: float, exit: float) -> float:
        """PnL of ``size`` contracts (negative: short) bought at ``entry`` and closed at
        ``exit``, in the settlement currency."""
        if self.kind is InstrumentKind.INVERSE:
            return size * self.contract_size * (1.0 / entry - 1.0 / exit)
        return size * self.contract_size * (exit - entry)

    def describe(self) -> str:
        """One line naming the market: venue, symbol, kind, contract and settlement."""
        if self.kind is InstrumentKind.INVERSE:
            what = (
                f"inverse perpetual, 1 contract = {self.contract_size:g} USD, "
                f"settled in {self.settlement_currency}"
            )
        elif self.kind is InstrumentKind.SPOT:
            what = f"spot, quoted in {self.quote_currency}"
        else:
            unit = "" if self.contract_size == 1.0 else f", 1 contract = {self.contract_size:g}"
            what = f"linear perpetual{unit}, settled in {self.settlement_currency}"
        venue = f"{self.venue} " if self.venue else ""
        return f"{venue}{self.symbol} ({what})"


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
    """One of our orders traded ``size`` at ``price``; ``fee`` in the settlement currency
    (USD; the coin for an inverse contract), negative for a rebate.

    ``exchange_ts_ns`` is when the venue executed it, on the clock that stamps
    ``VenueSnapshot.exchange_ts_ns``: a fill stamped no later than a snapshot is already in that
    snapshot's position.
    """

    ts_ns: int
    cloid: str
    price: float
    size: float
    side: Side
    fill_id: str
    fee: float = 0.0
    exchange_ts_ns: int | None = None


class AckStatus(StrEnum):
    """What the venue did with a request. Venue adapters map their own answers onto these.

    - ``ACCEPTED``: a place rests; a modify replaced the old leg (cancelled with
      ``filled_size``) by the new one, which rests.
    - ``CANCELED``: a cancel took the order off the book with ``filled_size`` filled; for a
      modify, the old leg was cancelled but the new one could not be placed.
    - ``REJECTED``: the request was refused and nothing changed: a place never rested, a modify
      left the old order as it was, a cancel left the order resting (e.g. rate limited).
    - ``NOT_FOUND``: the venue does not hold the order named (never placed, already cancelled,
      or filled: Hyperliquid's ``Order was never placed, already canceled, or filled.``); a
      modify's new leg was not placed.
    """

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELED = "canceled"
    NOT_FOUND = "not_found"


class OrderAck(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The venue's answer to the request ``request_id`` about order ``cloid``.

    ``status`` is compared by value (an ``AckStatus`` or its plain string); a status the engine
    does not know never frees exposure. ``filled_size`` is the order's cumulative filled size
    at the venue when it answered (Hyperliquid: ``origSz - sz``), None when the venue does not
    say. ``request_id`` None means the venue does not name the request: the answer is taken as
    the one to the oldest request still open on ``cloid`` (a venue answers requests in order),
    or, with none open, as an unsolicited order update.
    """

    ts_ns: int
    cloid: str
    status: str
    reason: str = ""
    request_id: int | None = None
    filled_size: float | None = None


class AccountUpdate(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Account state from the venue: equity in USD, optional balance and position."""

    ts_ns: int
    account_value: float
    balance: float | None = None
    position: float | None = None


class FundingRate(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The funding rate the venue will charge at its next funding time: a fraction of the
    position's value per ``interval_s`` (positive: longs pay shorts). Funding times are the
    multiples of ``interval_s`` since the Unix epoch (``funding.next_funding_ns``)."""

    ts_ns: int
    rate: float
    interval_s: float


class FundingPayment(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A funding payment the venue booked to the account: ``amount`` received in the
    settlement currency (negative: paid), on a position of ``position`` contracts at
    ``rate``. ``payment_id`` names it once (a payment seen twice is counted once)."""

    ts_ns: int
    amount: float
    payment_id: str
    rate: float | None = None
    position: float | None = None
    exchange_ts_ns: int | None = None


class FeeUpdate(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The account's fee rates changed (a new tier or rebate): basis points of an order's
    USD value, negative for a rebate; ``source`` says where they came from."""

    ts_ns: int
    maker_bps: float
    taker_bps: float
    source: str = ""


class OpenOrder(msgspec.Struct, frozen=True, kw_only=True):
    """One of our orders resting at the venue, as a snapshot reports it."""

    cloid: str
    side: Side
    price: float
    size: float
    """Remaining (unfilled) size, contracts."""
    filled_size: float = 0.0
    """Cumulative filled size of this order, contracts."""


class VenueSnapshot(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Our open orders and position at the venue at ``exchange_ts_ns``: the venue's truth.

    Answers ``RequestSnapshot(request_id)``: one instant of the venue's state, later than every
    answer that reached us before the request. Each order's ``filled_size`` is its cumulative
    fill, and ``position`` holds exactly those fills (and those of orders no longer shown);
    ``exchange_ts_ns`` is the venue's clock (on Hyperliquid the API server's, not the blocks'
    that stamp fills), for display: the engine never compares it with a fill's stamp.
    """

    ts_ns: int
    exchange_ts_ns: int
    position: float
    orders: tuple[OpenOrder, ...] = ()
    request_id: int | None = None
    mark_price: float | None = None
    """The venue's mark when the snapshot was taken: a position adopted from the venue is
    booked at it (the engine's mid when absent)."""


class ConnectionStatus(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The venue connection went down or came back."""

    ts_ns: int
    connected: bool


class Timer(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A periodic tick so time-based checks run without market data."""

    ts_ns: int


Event = (
    BookUpdate
    | Trade
    | Fill
    | OrderAck
    | AccountUpdate
    | VenueSnapshot
    | ConnectionStatus
    | Timer
    | FundingRate
    | FundingPayment
    | FeeUpdate
)


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
    request_id: int = 0


class Cancel(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    cloid: str
    request_id: int = 0


class Modify(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Cancel-replace: order ``cloid`` is replaced by a fresh order ``new_cloid`` (empty: the
    same cloid) at ``price`` and ``size``, at the back of the queue."""

    cloid: str
    price: float
    size: float
    new_cloid: str = ""
    request_id: int = 0


class RequestSnapshot(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Ask the venue for a ``VenueSnapshot`` of our orders and position."""

    request_id: int = 0


Action = Place | Cancel | Modify | RequestSnapshot
