"""The life of one of our orders: its states, the events that move it, and one table of moves.

Every state change of a ``TrackedOrder`` goes through ``OrderBook.apply`` (in ``manager.py``),
which looks the move up in ``TRANSITIONS``; a move the table does not have is counted and
skipped, never raised (a venue may answer in any order, so a late answer meets an order that
has moved on). Venue races are rows of their own, each with the reason it is allowed.

States:

- ``PLACING``: a place (or a modify's new leg) is on its way; not yet answered.
- ``RESTING``: the venue holds it.
- ``MODIFYING``: a modify replacing it is on its way (cancel-replace: it leaves the book).
- ``CANCELLING``: a cancel is on its way.
- ``SETTLING``: gone from the book; fills it made may still be on their way.
- ``CLOSED``: nothing more can happen to it (kept a while to recognise late messages).

Exposure (what could still move the position) belongs to every state but ``CLOSED``; ``plan``
may keep, modify or cancel only ``PLACING`` and ``RESTING`` orders (``live``).
"""

from __future__ import annotations

from enum import IntEnum

import msgspec

from market_maker.model import Side

__all__ = [
    "ALL_LOTS",
    "TRANSITIONS",
    "OrderState",
    "TrackedOrder",
    "Trigger",
]


class OrderState(IntEnum):
    PLACING = 0
    RESTING = 1
    MODIFYING = 2
    CANCELLING = 3
    SETTLING = 4
    CLOSED = 5


class Trigger(IntEnum):
    """What happened to an order (a request we sent, an answer, a fill, a snapshot)."""

    CANCEL_SENT = 0
    MODIFY_SENT = 1
    ACCEPTED = 2
    """It rests: its place (or modify) was answered, or the venue reported it open."""
    REFUSED = 3
    """A cancel or modify of it was refused with nothing changed: it still rests."""
    REJECTED = 4
    """Its place was refused: it never rested."""
    GONE = 5
    """Off the book (cancelled, replaced by a modify, cancelled by the venue)."""
    DONE = 6
    """Every lot it can fill has been reported: no fill can follow."""
    HELD = 7
    """A snapshot that covers it shows it resting."""
    MISSING = 8
    """A snapshot that covers it does not show it: it is gone and its fills are in the
    snapshot's position."""


_P, _R, _M, _C, _S, _X = (
    OrderState.PLACING,
    OrderState.RESTING,
    OrderState.MODIFYING,
    OrderState.CANCELLING,
    OrderState.SETTLING,
    OrderState.CLOSED,
)
_T = Trigger

TRANSITIONS: dict[tuple[OrderState, Trigger], OrderState] = {
    # Requests we send.
    (_P, _T.CANCEL_SENT): _C,  # a halt does not wait for the place's answer
    (_R, _T.CANCEL_SENT): _C,
    (_R, _T.MODIFY_SENT): _M,
    # Answers that it rests.
    (_P, _T.ACCEPTED): _R,
    (_R, _T.ACCEPTED): _R,  # the order update and the post reply both say so
    (_C, _T.ACCEPTED): _C,  # the place's answer overtaken by our cancel
    (_M, _T.ACCEPTED): _M,  # the same, overtaken by our modify
    (_S, _T.ACCEPTED): _S,  # a late "open" for an order already off the book
    # A cancel or modify refused with nothing changed: it rests as before.
    (_C, _T.REFUSED): _R,
    (_M, _T.REFUSED): _R,
    # A place refused: it never rested (a cancel sent meanwhile finds nothing).
    (_P, _T.REJECTED): _X,
    (_C, _T.REJECTED): _X,
    (_R, _T.REJECTED): _X,  # a cancel refused before the place's answer put it back to rest
    # Off the book: its fills may still be on their way.
    (_P, _T.GONE): _S,  # rested and was cancelled before the place's answer arrived
    (_R, _T.GONE): _S,  # cancelled by the venue (margin, self-trade, dead man's switch)
    (_M, _T.GONE): _S,
    (_C, _T.GONE): _S,
    (_S, _T.GONE): _S,  # the order update and the cancel's answer both say so
    # Every lot reported.
    (_P, _T.DONE): _X,
    (_R, _T.DONE): _X,
    (_M, _T.DONE): _X,  # the modify will find nothing to replace
    (_C, _T.DONE): _X,  # the cancel will find nothing to cancel
    (_S, _T.DONE): _X,
    # A snapshot that covers it (no request of ours on it unanswered when it was asked).
    (_P, _T.HELD): _R,  # the place's answer was lost
    (_R, _T.HELD): _R,
    (_M, _T.HELD): _R,  # the modify was lost
    (_C, _T.HELD): _R,  # the cancel was lost
    (_S, _T.HELD): _R,  # restored: the venue holds it after all
    (_P, _T.MISSING): _X,
    (_R, _T.MISSING): _X,
    (_M, _T.MISSING): _X,
    (_C, _T.MISSING): _X,
    (_S, _T.MISSING): _X,
}
"""``(state, trigger) -> new state``: the only moves an order can make."""

ALL_LOTS = 1 << 62
"""``in_snapshot_lots`` of an order whose every fill is in an adopted snapshot's position."""


class TrackedOrder(msgspec.Struct, kw_only=True):
    """One of our orders as we believe it stands (mutable state, integer ticks and lots)."""

    cloid: str
    side: Side
    price_ticks: int
    size_lots: int
    state: OrderState
    created_ts_ns: int
    place_request: int = 0
    """Id of the request that created it (0: an order we found at the venue)."""
    open_requests: int = 0
    """Our requests about it still unanswered (a place, and a cancel sent before its answer)."""
    answer_mark: int = -1
    """The request counter when the last answer about it arrived: a snapshot asked for later
    has seen everything we know of it."""
    confirmed_mark: int = -1
    """The request counter when we first had evidence that the venue held it (-1: none)."""
    created_mark: int = -1
    """The request counter when its creating request was answered or taken as lost
    (-1: still on its way)."""
    closed_mark: int = -1
    """The request counter when it was closed (a snapshot asked for later holds its fills)."""
    since_ns: int = 0
    """When it last entered a waiting state (for the settle timeout)."""
    filled_lots: int = 0
    """Lots of the fills reported to us (less any a snapshot showed were counted twice)."""
    taken_back_lots: int = 0
    """Lots reported before a snapshot's request that the venue's count of the order did not
    hold (a fill re-sent under another id), taken back from ``filled_lots``."""
    in_snapshot_lots: int = 0
    """Of its filled lots, how many the position already holds through an adopted snapshot
    (``ALL_LOTS``: every fill it ever makes); a reported fill moves the position only beyond
    this."""
    fill_value: float = 0.0
    last_fill_ts_ns: int | None = None
    final_lots: int | None = None
    """Total filled at the venue once it is gone, when the venue said; None: unknown."""
    cancel_refused: int = 0
    """Times the venue refused to cancel it (its retries wait out the side's backoff)."""
    acked: bool = False
    """The venue has said it rests (a modify needs an order the venue knows)."""
    traded_through_ns: int = -1
    """When a market print through its price (a sell below a bid of ours, a buy above an ask)
    showed that it had traded while it rested; -1: none seen. The plan then places its level
    afresh without waiting for the fill (its exposure still counts)."""
    ioc: bool = False
    """Immediate-or-cancel (an escalation that takes liquidity): never rests, never planned
    over; its exposure counts until the venue says how much it filled."""
    fills: dict[str, tuple[int, int, int, float]] = msgspec.field(default_factory=dict)
    """Fill id -> (request counter when it arrived, lots, venue stamp or -1, price): a re-sent
    fill is recognised however many other fills came between, and a snapshot knows which
    fills it must already hold. Bounded by the order itself (every fill is a lot or more)."""

    @property
    def remaining_lots(self) -> int:
        return self.size_lots - self.filled_lots

    @property
    def exposure_lots(self) -> int:
        """Lots that could still move the position."""
        if self.state is _X:
            return 0
        if self.state is _S and self.final_lots is not None:
            left = self.final_lots - self.filled_lots
        else:
            left = self.size_lots - self.filled_lots
        return left if left > 0 else 0

    @property
    def live(self) -> bool:
        """Resting or about to: an order ``plan`` may keep, modify or cancel."""
        return (self.state is _R or self.state is _P) and not self.ioc

    @property
    def committed(self) -> bool:
        """Exposure that ``plan`` cannot reuse (a cancel or modify in flight, settling, IOC)."""
        return self.state is _C or self.state is _M or self.state is _S or self.ioc

    def filled_before(self, mark: int) -> int:
        """Lots of the fills that arrived before request ``mark`` was sent (less those taken
        back as counted twice)."""
        lots = sum(f[1] for f in self.fills.values() if f[0] < mark) - self.taken_back_lots
        return lots if lots > 0 else 0

    def average_fill_price(self, lot_size: float) -> float | None:
        """Volume-weighted price of the fills so far (USD), or None before the first fill."""
        if self.filled_lots <= 0:
            return None
        return self.fill_value / (self.filled_lots * lot_size)
