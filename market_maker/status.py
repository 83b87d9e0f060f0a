"""What the engine reports about itself: ``QuoteEngine.status() -> EngineStatus``.

A typed, frozen snapshot for displays, logs, metrics and tests (it allocates: not for the hot
path). A renamed field is a type error, not a silent ``KeyError``. Each side says what the
strategy wants and what rests at the venue as the order manager knows it (acknowledged by the
venue and not cancelled), and, when the wanted best level does not rest, why
(``SideStatus.not_resting``).

The structs live here, in a module of definitions only, so their ``frozen`` and ``kw_only``
options hold in every build.
"""

from __future__ import annotations

import msgspec

from market_maker.orders.manager import OrderCounters
from market_maker.risk.refusals import RefusalCount

__all__ = [
    "EngineCounters",
    "EngineStatus",
    "LimitStatus",
    "MarketStatus",
    "NotResting",
    "QuoteLevel",
    "RefusalCount",
    "RestingOrder",
    "SideStatus",
]


class EngineCounters(msgspec.Struct, kw_only=True):
    """What the engine saw and did; bad input is counted here, never raised."""

    events: int = 0
    cycles: int = 0
    bad_books: int = 0
    bad_trades: int = 0
    bad_accounts: int = 0
    out_of_order: int = 0
    implausible_prices: int = 0
    """Books and trades refused for being too far from the last accepted mid."""
    reanchored: int = 0
    """Times refused books agreed on a new level long enough to be accepted as the market."""
    quiet_cycles: int = 0
    """Book updates that moved no best price and changed no input: the cycle stopped after
    the kill switch."""
    reused_quotes: int = 0
    """Cycles whose strategy inputs were exactly the last cycle's: its wanted quotes were
    planned again without running the strategy."""
    paused_cycles: int = 0
    """Market events in a cascade pause with nothing to cancel and no position: only the
    cascade and staleness checks ran (the only ones such an event can move)."""
    held_cycles: int = 0
    """Cycles stopped before the strategy because the request budget was empty: no plan could
    have sent anything (the first event after a token comes back plans in full)."""
    requests_sent: int = 0
    """Places, cancels and modifies sent (every action but snapshot requests): over the
    fills, what a fill costs in requests."""
    future_events: int = 0
    """Events stamped too far ahead of the engine's clock, refused."""
    equity_estimated: int = 0
    """Invalid equity reports replaced by the last good equity plus our own PnL since."""
    escalations: int = 0
    """Immediate-or-cancel orders sent after REDUCING lasted ``escalate_after_s``."""
    halt_reductions: int = 0
    """Immediate-or-cancel orders sent while HALTED to take the position back
    (``kill_switch.halt_position``)."""
    snapshot_waits: int = 0
    """Times a due snapshot waited for places and modifies on their way to be answered (new
    orders held meanwhile)."""
    position_mismatches: int = 0
    snapshot_requests: int = 0
    bad_funding: int = 0
    """Funding rates and payments refused (not a number, beyond 10 % a payment)."""
    fee_updates: int = 0
    """New fee rates taken (a tier or rebate changed)."""
    bad_fees: int = 0
    carry_cycles: int = 0
    """Cycles where the side that pays funding within the horizon had its room cut."""


class NotResting:
    """Why the wanted best level of a side does not rest at the venue (``SideStatus``)."""

    NONE = ""
    """It rests (or nothing is wanted)."""
    IN_FLIGHT = "in flight"
    """A place or modify for the side is on its way, unanswered."""
    BUDGET = "budget"
    """The request budget cut the last plan short, or held the cycle."""
    BACKOFF = "backoff"
    """New orders on the side wait after the venue refused some."""
    SNAPSHOT = "snapshot"
    """New orders wait for a venue snapshot (reconciliation)."""
    CAP = "cap"
    """The position limit leaves no room for it (exposure still counted on the side)."""
    WAITING = "waiting"
    """Planned, not yet sent (the next cycle sends it)."""


class QuoteLevel(msgspec.Struct, frozen=True, kw_only=True):
    """One price level: price in USD, size in contracts."""

    price: float
    size: float


class RestingOrder(msgspec.Struct, frozen=True, kw_only=True):
    """One of our orders the venue has acknowledged and not cancelled (remaining size)."""

    cloid: str
    price: float
    size: float
    leaving: bool = False
    """A cancel or modify of it is on its way: it rests until the venue answers."""


class SideStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One side of our quotes: what is wanted and what the venue holds."""

    wanted: tuple[QuoteLevel, ...]
    """The strategy's levels, best first."""
    resting: tuple[RestingOrder, ...]
    """Acknowledged by the venue and not cancelled, best first."""
    pending: float
    """Contracts on this side that could still fill (placing, resting, leaving, settling)."""
    not_resting: str = NotResting.NONE
    """Why the wanted best level does not rest ("" when it does, or nothing is wanted); one
    of the ``NotResting`` texts."""

    @property
    def best_wanted(self) -> QuoteLevel | None:
        return self.wanted[0] if self.wanted else None

    @property
    def best_resting(self) -> RestingOrder | None:
        return self.resting[0] if self.resting else None


class MarketStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The market as the engine sees it (None before the first valid book)."""

    mid: float | None
    best_bid: float | None
    best_ask: float | None
    sigma: float
    """Volatility estimate, fraction of price per sqrt second."""
    hawkes_ratio: float
    """Trade intensity over its long-run rate."""
    trade_rate: float
    """Long-run trades per second."""
    fill_intensity_a: float
    fill_intensity_k: float


class LimitStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The position limit and what sets it."""

    effective_max_position: float
    """Contracts."""
    max_position_value: float | None
    """USD (None: no derived limit yet, the static one applies)."""
    binding_limit: str
    sigma_used: float | None


class EngineStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one engine (``QuoteEngine.status()``)."""

    ts_ns: int
    trading_state: str
    """active, reducing, paused or halted."""
    reasons: tuple[str, ...]
    """The kill switch's reasons, ``"trigger: detail"``."""
    quoting_nothing: str
    """Why an active engine quotes nothing ("" when quoting)."""
    market: MarketStatus
    limits: LimitStatus
    position: float
    bids: SideStatus
    asks: SideStatus
    open_orders: int
    """Orders resting at the venue or about to (not cancelling, not settling)."""
    settling_orders: int
    """Orders gone from the book whose fills may still be on their way."""
    tracked_orders: int
    """Every order not yet closed (placing, resting, leaving, settling)."""
    pnl_usd: float
    """Fills after fees, funding, and the position at the mid."""
    fees_usd: float
    fills: int
    needs_reconcile: bool
    counters: EngineCounters
    """A copy of the engine's counters."""
    order_counters: OrderCounters
    """A copy of the order manager's counters."""
    refusals: tuple[RefusalCount, ...] = ()
    """Every distinct text the venue refused a request with, most frequent first."""
    refusals_by_class: dict[str, int] = msgspec.field(default_factory=dict)
    """Refusals by class (``risk.refusals.RefusalClass``)."""
    last_refusal: str = ""
    """The venue's latest refusal in its words, post-only races left out."""
    funding_usd: float = 0.0
    """Funding received (negative: paid) since the start, USD."""
    funding_payments: int = 0

    @property
    def two_sided(self) -> bool:
        """Both sides rest at the venue."""
        return bool(self.bids.resting and self.asks.resting)

    def counter_dict(self) -> dict[str, int]:
        """Every counter by name, the engine's and the order manager's (JSON, logs)."""
        out: dict[str, int] = msgspec.structs.asdict(self.counters)
        out.update(msgspec.structs.asdict(self.order_counters))
        return out
