"""A simulated exchange for our orders, shared by the market simulator and data replay.

The market (simulated or recorded) supplies books and trades; this core adds what a real venue
does with *our* orders:

- exchange rules: tick and lot grid, minimum notional, post-only rejection when an order would
  cross, a request rate limit (token bucket);
- queue position: an order joins the back of its price level; a trade at that price first eats
  the size ahead of us, then fills us; a trade through our price, or a book that moves through
  it, fills us completely;
- what our orders held over time (``RestingMeter``, ``venues/resting.py``): the two-sided share
  and spread a backtest reports are measured here, not from the engine's wishes;
- maker fees on every fill, account snapshots (equity, balance, position) on a timer;
- latency on order entry, cancels, private messages and market data, from pluggable models.

Two profiles (``VenueProfile``), each a claim about a real venue:

- **fifo** (Binance-like): requests from our one connection are handled in the order sent as
  they arrive; their answers (acks, snapshots) reach us in that order on one stream; a
  snapshot is queued behind the requests sent before it.
- **hyperliquid** (reference ``hyperliquid-verified.md`` section 7): an action that reaches the
  venue waits for the next block (every ``block_ms``, 70 ms, at a fixed cadence of virtual
  time). A block sorts what arrived since the last one into classes and applies them in this
  order, arrival order within each: actions that send no GTC or IOC order (post-only places,
  modifies, which place post-only orders), then cancels, then orders that may take (the
  engine's immediate-or-cancel escalations). So an IOC sent just before a cancel trades after
  it. Answers to a block's actions leave at the block's time, and the fills it makes carry it
  as their exchange time (fills are stamped on the block clock, several may share a stamp).
  An action whose block commits more than ``request_expiry_s`` after it was sent (the
  ``expiresAfter`` the engine puts on every action) is refused with ``Action already expired``
  and does nothing. A snapshot (``info``) is answered as soon as it reaches the venue from
  committed state, not queued behind actions waiting for a block, so it misses them; it is
  one instant of that state, stamped on the API server's clock (``server_skew_ms`` off the
  block clock, either sign). Other makers paying the ALO priority fee can join a price level
  ahead of an order of ours within 400 ms of its arrival (``priority_jump_rate_per_s``, off by
  default), so our queue position is not first in, first out.

In both, fills travel on their own stream with their own latency, so a fill can arrive after
the cancel that followed it. A cancel of an order the venue does not hold is refused with
Hyperliquid's text; a modify cancels the order and places a fresh one (new cloid, back of the
queue). Answers carry the order's cumulative filled size (``ack_filled_size``) unless a test
turns that off. ``Faults`` drops, duplicates and reorders private messages on purpose, and can
make a block late (``slow_block``), past the requests' deadlines.

Everything runs in virtual time from one seeded RNG: the same inputs and seed give the same
stream of events. ``pop_next()`` returns the next event for the engine; ``submit()`` takes the
engine's actions.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from market_maker.funding import FundingModel, FundingSeries, funding_payment, next_funding_ns
from market_maker.model import (
    AccountUpdate,
    AckStatus,
    Action,
    BookUpdate,
    Cancel,
    Event,
    Fill,
    FundingPayment,
    FundingRate,
    Instrument,
    Modify,
    OpenOrder,
    OrderAck,
    Place,
    RequestSnapshot,
    Side,
    Timer,
    Trade,
    VenueSnapshot,
)
from market_maker.venues.resting import RestingMeter

__all__ = [
    "MARKET_BOOK",
    "MARKET_BUY",
    "MARKET_SELL",
    "ExchangeCore",
    "ExchangeStats",
    "Faults",
    "FeeModel",
    "FillObserver",
    "LatencyModel",
    "MarketSource",
    "PartsSource",
    "RateLimit",
    "VenueModel",
    "VenueProfile",
]

# Enum members as module constants: attribute access on an Enum class is slow in 3.11.
_BUY = Side.BUY
_SELL = Side.SELL
_ACCEPTED = AckStatus.ACCEPTED
_REJECTED = AckStatus.REJECTED
_CANCELED = AckStatus.CANCELED
_NOT_FOUND = AckStatus.NOT_FOUND

NOT_FOUND_TEXT = "Order was never placed, already canceled, or filled."
"""Hyperliquid's answer to a cancel of an order it does not hold."""

EXPIRED_TEXT = "Action already expired"
"""Hyperliquid's refusal of an action whose block came after its ``expiresAfter``."""

_NS = 1_000_000_000
_DELIVER, _ARRIVE, _ACCOUNT, _TIMER, _BLOCK, _JUMP, _FUNDING, _RATE = 0, 1, 2, 3, 4, 5, 6, 7
# Hyperliquid's classes within a block, applied in this order.
_NO_TAKER, _CANCEL, _TAKER = 0, 1, 2
_EXPIRED_WEIGHT = 5.0
"""An action cancelled for a stale deadline costs five times a request's rate limit."""

VenueModel = Literal["fifo", "hyperliquid"]


class VenueProfile(msgspec.Struct, frozen=True, kw_only=True):
    """How the venue orders, commits and answers our requests (see the module docstring)."""

    model: VenueModel = "fifo"
    block_ms: float = 70.0
    """Hyperliquid: blocks commit at this fixed cadence of virtual time."""
    server_skew_ms: float = 0.0
    """Hyperliquid: the API server's clock (snapshots' ``exchange_ts_ns``) minus the block
    clock (fills'), either sign."""
    priority_jump_rate_per_s: float = 0.0
    """Hyperliquid: makers paying the ALO priority fee who join a price level ahead of a new
    order of ours, per second within ``priority_window_ms`` of its arrival (0: none)."""
    priority_window_ms: float = 400.0
    """How long after our order arrives the tail of its level can still be re-sorted."""
    priority_jump_size: float = 1.0
    """Mean size of each such order (exponential), as a multiple of our order's size."""

    def __post_init__(self) -> None:
        if not (0.0 < self.block_ms <= 60_000.0):
            raise ValueError("block_ms must be in (0, 60000]")
        if not abs(self.server_skew_ms) <= 3_600_000.0:
            raise ValueError("server_skew_ms must be within an hour")
        if not (
            self.priority_jump_rate_per_s >= 0.0
            and self.priority_window_ms >= 0.0
            and self.priority_jump_size > 0.0
        ):
            raise ValueError("priority jumps need a rate >= 0, a window >= 0 and a size > 0")

    @property
    def blocks(self) -> bool:
        """Actions commit in blocks (the Hyperliquid profile)."""
        return self.model == "hyperliquid"


FIFO = VenueProfile()
"""First in, first out (Binance-like)."""
HYPERLIQUID = VenueProfile(model="hyperliquid")
"""Hyperliquid's documented behaviour, priority-fee queue jumps off."""


class LatencyModel(msgspec.Struct, frozen=True, kw_only=True):
    """One-way latency in milliseconds: ``base_ms`` plus exponential jitter of mean ``jitter_ms``.

    ``load_factor`` stretches it when the market is busy (latency spikes exactly during crashes):
    latency is multiplied by ``1 + load_factor * max(0, load - 1)`` where load is the market's
    current activity relative to normal.
    """

    base_ms: float = 0.0
    jitter_ms: float = 0.0
    load_factor: float = 0.0

    def sample_ns(self, rng: random.Random, load: float = 1.0) -> int:
        ms = self.base_ms
        if self.jitter_ms > 0.0:
            ms += rng.expovariate(1.0 / self.jitter_ms)
        if self.load_factor > 0.0 and load > 1.0:
            ms *= 1.0 + self.load_factor * (load - 1.0)
        return int(ms * 1_000_000)


class FeeModel(msgspec.Struct, frozen=True, kw_only=True):
    """Maker and taker fees in basis points of notional (negative for a rebate)."""

    maker_bps: float = 1.5
    taker_bps: float = 4.5

    def fee(self, notional: float) -> float:
        return notional * self.maker_bps * 1e-4

    def taker_fee(self, notional: float) -> float:
        return notional * self.taker_bps * 1e-4


class RateLimit(msgspec.Struct, frozen=True, kw_only=True):
    """Token bucket: ``per_s`` requests a second with bursts up to ``burst``."""

    per_s: float = 50.0
    burst: float = 100.0


class Faults(msgspec.Struct, frozen=True, kw_only=True):
    """Misbehaviour a real venue shows now and then, as probabilities per private message."""

    drop_ack: float = 0.0
    """An answer (ack or snapshot) is lost."""
    drop_fill: float = 0.0
    """A fill report is lost (the venue's position still has it)."""
    duplicate: float = 0.0
    """A private message is delivered twice."""
    reorder_ms: float = 0.0
    """Mean of an extra exponential delay per message, which breaks the order within a stream."""
    slow_block: float = 0.0
    """Hyperliquid profile: a block is late (chain congestion), probability per block..."""
    slow_block_ms: float = 1_000.0
    """... by this long (rounded up to whole blocks): actions waiting for it can expire."""


class MarketSource(Protocol):
    """Books and trades in time order (``ts_ns`` is when they happen at the exchange)."""

    def peek_ns(self) -> int | None: ...
    def pop(self) -> BookUpdate | Trade: ...
    def load(self) -> float:
        """Market activity relative to normal (1 when calm); stretches latency."""
        ...

    def displayed_size(self, side: Side, price_ticks: int) -> float:
        """Size resting ahead of a new order at this price on this side."""
        ...


MARKET_BOOK, MARKET_BUY, MARKET_SELL = 0, 1, 2
"""Kinds of a market event handed over in parts (``PartsSource.pop_parts``): a book, or a
trade whose aggressor bought or sold."""


@runtime_checkable
class PartsSource(MarketSource, Protocol):
    """A market that can hand over its next event as parts, so the event the engine receives
    is the only one built (the replay; ``venues/replay.py``)."""

    def pop_parts(self) -> tuple[int, int, int, Any, Any]:
        """``(kind, ts_ns, exchange_ts_ns, a, b)``: ``MARKET_BOOK`` with bids and asks, or
        ``MARKET_BUY``/``MARKET_SELL`` with price and size; ``exchange_ts_ns`` -1 for none."""
        ...


class FillObserver(Protocol):
    """Watches the venue's fills and touch changes (``backtest.analytics.FillLedger``)."""

    def on_fill(
        self,
        t_ns: int,
        buy: bool,
        price: float,
        size: float,
        fee: float,
        mid: float,
        taker: bool,
        *,
        our_bid: float | None = None,
        our_ask: float | None = None,
    ) -> None:
        """``our_bid``/``our_ask``: our best resting prices at the venue at the fill."""
        ...

    def on_mid(self, t_ns: int, mid: float) -> None: ...

    def on_funding(self, t_ns: int, usd: float, position: float) -> None: ...


class ExchangeStats(msgspec.Struct, kw_only=True):
    """What the exchange saw of our orders."""

    requests: int = 0
    placed: int = 0
    rejected_post_only: int = 0
    rejected_invalid: int = 0
    rejected_rate_limit: int = 0
    cancels: int = 0
    cancels_not_found: int = 0
    modifies: int = 0
    takes: int = 0
    """Immediate-or-cancel orders (escalations)."""
    snapshots: int = 0
    blocks: int = 0
    """Blocks that committed at least one of our actions (Hyperliquid profile)."""
    slow_blocks: int = 0
    expired: int = 0
    """Actions refused at their block for a passed deadline (``Action already expired``)."""
    queue_jumps: int = 0
    """Orders of other makers that paid to join a level ahead of one of ours."""
    fills: int = 0
    dropped: int = 0
    duplicated: int = 0
    maker_volume_usd: float = 0.0
    fees_usd: float = 0.0
    maker_volume_settlement: float = 0.0
    """Maker volume in the settlement currency (inverse: coin at each fill's price)."""
    fees_settlement: float = 0.0
    """Fees in the settlement currency, as the venue charges them."""
    funding_settlement: float = 0.0
    """Funding received (negative: paid), settlement currency."""
    funding_usd: float = 0.0
    """The same at each payment's price."""
    funding_payments: int = 0
    rejected_balance: int = 0
    """Spot orders refused for want of the asset they would sell or spend."""


class _Resting:
    __slots__ = ("cloid", "filled_lots", "price_ticks", "queue_ahead", "remaining_lots", "side")

    def __init__(
        self, cloid: str, side: Side, price_ticks: int, lots: int, queue_ahead: float
    ) -> None:
        self.cloid = cloid
        self.side = side
        self.price_ticks = price_ticks
        self.remaining_lots = lots
        self.filled_lots = 0
        self.queue_ahead = queue_ahead


class ExchangeCore:
    """Our orders at a simulated venue, fed by a ``MarketSource``."""

    def __init__(
        self,
        instrument: Instrument,
        market: MarketSource,
        *,
        seed: int = 0,
        initial_equity: float = 10_000.0,
        fees: FeeModel | None = None,
        order_latency: LatencyModel | None = None,
        fill_latency: LatencyModel | None = None,
        market_data_latency: LatencyModel | None = None,
        rate_limit: RateLimit | None = None,
        faults: Faults | None = None,
        ack_filled_size: bool = True,
        account_interval_s: float = 1.0,
        timer_interval_s: float = 0.1,
        profile: VenueProfile | None = None,
        request_expiry_s: float | None = None,
        funding: FundingModel | None = None,
        funding_rates: FundingSeries | None = None,
        initial_base: float = 0.0,
    ) -> None:
        """``request_expiry_s``: the deadline every action carries (the engine's
        ``OrdersConfig.request_expiry_s``), checked at its block; None: no deadline. The fifo
        profile has none.

        Contracts are valued in their own terms (``Instrument``): cash, fees and funding are
        kept in the settlement currency (coin for an inverse contract, whose initial equity is
        ``initial_equity`` USD at the first mid). ``funding`` with ``funding_rates`` pays
        funding on the position at each funding time. Spot holds ``initial_base`` of the base
        asset (the position) and refuses a sell beyond it or a buy beyond the quote cash."""
        self.instrument = instrument
        self._inverse = instrument.inverse
        self._spot = instrument.spot
        self._contract = instrument.contract_size
        self.funding = funding if funding_rates is not None else None
        self.funding_rates = funding_rates
        self._funding_model = funding
        """The venue's funding model even before a rate is known (paper: the live rate)."""
        self.initial_settlement: float | None = None if self._inverse else initial_equity
        self.profile = profile = profile or FIFO
        self._block_ns = max(1, round(profile.block_ms * 1e6)) if profile.blocks else 0
        """Hyperliquid: actions commit in blocks this long; 0: first in, first out."""
        self._expiry_ns = (
            None if request_expiry_s is None or not profile.blocks else int(request_expiry_s * _NS)
        )
        self._skew_ns = round(profile.server_skew_ms * 1e6)
        self._waiting: list[tuple[int, int, int, Action]] = []
        """Actions at the venue waiting for the next block: (class, seq, sent, action)."""
        self._jump_rate = profile.priority_jump_rate_per_s if profile.blocks else 0.0
        self._jump_window_s = profile.priority_window_ms * 1e-3
        self._jump_rng = random.Random(f"priority-{seed}")
        self.market = market
        self._parts = market if isinstance(market, PartsSource) else None
        self.rng = random.Random(seed)
        # Market-data delays get their own stream, so what the market does and when we hear of
        # it never depends on what our orders did (strategies compared on a seed see one market).
        self._md_rng = random.Random(f"market-data-{seed}")
        self._last_md = 0
        """When the last market event reaches the engine: its stream keeps its order."""
        self.fees = fees or FeeModel()
        self.order_latency = order_latency or LatencyModel()
        self.fill_latency = fill_latency or self.order_latency
        self.md_latency = market_data_latency or LatencyModel()
        self.faults = faults
        self._fault_rng = random.Random(f"faults-{seed}")
        self.ack_filled_size = ack_filled_size
        # Each stream keeps its order: nothing on it is delivered before what went earlier.
        self._last_arrive = 0
        self._last_answer = 0
        self._last_fill = 0
        self._last_stamp = 0
        self.rate_limit = rate_limit or RateLimit()
        self.initial_equity = initial_equity
        self.stats = ExchangeStats()
        self.tick = instrument.tick_size
        self.lot = instrument.lot_size
        self._lot_exact = Fraction(repr(instrument.lot_size))
        self.position_lots = round(initial_base / instrument.lot_size) if self._spot else 0
        self._initial_base_value = 0.0
        """Spot: the base held at the start, valued at the first mid (part of the initial
        equity, so PnL counts what trading changed)."""
        self.cash = 0.0
        """Cash from fills, fees and funding, in the settlement currency."""
        self.best_bid = 0  # ticks
        self.best_ask = 0
        self.mid = math.nan
        self.now_ns = 0
        self._orders: dict[str, _Resting] = {}
        self._heap: list[tuple[int, int, int, object]] = []
        self._seq = 0
        self._fill_seq = 0
        self._tokens = self.rate_limit.burst
        self._tokens_ns = 0
        self._account_ns = int(account_interval_s * _NS)
        self._timer_ns = int(timer_interval_s * _NS)
        self._started = False
        self.ledger: FillObserver | None = None
        """Sees every fill and every change of the touch (a backtest's PnL attribution)."""
        self.meter = RestingMeter(instrument.tick_size)
        """Our best resting bid and ask over time: what reports measure (``resting.py``)."""

    # ----- engine side ----------------------------------------------------------------------

    def submit(self, actions: Sequence[Action], ts_ns: int) -> None:
        """The engine sent ``actions`` at ``ts_ns``; they reach the exchange after latency, in
        the order sent (one connection)."""
        load = self.market.load()
        for a in actions:
            t = ts_ns + self.order_latency.sample_ns(self.rng, load)
            if t < self._last_arrive:
                t = self._last_arrive
            self._last_arrive = t
            self._push(t, _ARRIVE, (a, ts_ns))

    def pop_next(self) -> Event | None:
        """The next event the engine receives, advancing virtual time; None at the end."""
        return self._pop(None)

    def pop_due(self, now_ns: int) -> Event | None:
        """Live pacing (paper trading): the next event due by ``now_ns``, None when nothing
        is due yet. The market source may be empty for a while without having ended."""
        return self._pop(now_ns)

    def next_due_ns(self) -> int | None:
        """When the next private message, timer or market event is due (None: none queued)."""
        t_market = self.market.peek_ns()
        t_heap = self._heap[0][0] if self._heap else None
        if t_heap is None or (t_market is not None and t_market < t_heap):
            return t_market
        return t_heap

    def _pop(self, until_ns: int | None) -> Event | None:
        live = until_ns is not None
        limit = until_ns if until_ns is not None else 0
        if not self._started:
            self._start(until_ns)
        heap = self._heap
        market = self.market
        while True:
            t_market = market.peek_ns()
            if live and t_market is not None and t_market > limit:
                t_market = None  # not yet
            if (
                heap
                and (t_market is None or heap[0][0] <= t_market)
                and (not live or heap[0][0] <= limit)
            ):
                t, _, kind, payload = heapq.heappop(heap)
                self.now_ns = t
                if kind == _DELIVER:
                    return payload  # type: ignore[return-value]
                if kind == _ARRIVE:
                    if self._block_ns:
                        self._arrive_for_block(payload, t)  # type: ignore[arg-type]
                    else:
                        self._on_action(payload[0], t)  # type: ignore[index]
                elif kind == _BLOCK:
                    self._commit_block(t)
                elif kind == _JUMP:
                    self._queue_jump(payload)  # type: ignore[arg-type]
                elif t_market is None and not live:
                    continue  # the market has ended: no more timers or snapshots
                elif kind == _ACCOUNT:
                    self._deliver(t, self.account_update(t))
                    self._push(t + self._account_ns, _ACCOUNT, None)
                elif kind == _TIMER:
                    self._deliver(t, Timer(ts_ns=t))
                    self._push(t + self._timer_ns, _TIMER, None)
                elif kind == _FUNDING:
                    self._pay_funding(t)
                elif kind == _RATE:
                    self._announce_rate(t)
                continue
            if t_market is None:
                return None
            parts = self._parts
            if parts is None:
                ev = market.pop()
                ts = ev.ts_ns
                self.now_ns = ts
                if isinstance(ev, BookUpdate):
                    self._on_book(ev)
                else:
                    self._on_trade(ev)
            else:
                kind, ts, xts, a, b = parts.pop_parts()
                self.now_ns = ts
                if kind == MARKET_BOOK:
                    self._book_top(ts, a, b)
                else:
                    self._trade_at(ts, a, b, kind == MARKET_SELL)
            md = self.md_latency
            if md.load_factor > 0.0:
                latency = md.sample_ns(self._md_rng, market.load())
            elif md.jitter_ms > 0.0:  # sample_ns without the load (it would not change it)
                ms = md.base_ms + self._md_rng.expovariate(1.0 / md.jitter_ms)
                latency = int(ms * 1_000_000)
            else:
                latency = int(md.base_ms * 1_000_000)
            if latency == 0 and (not heap or heap[0][0] > ts):
                self._last_md = ts
                if parts is None:
                    return ev  # nothing is due before it: hand it over as it is
                xts_or_none = None if xts < 0 else xts
                if kind == MARKET_BOOK:
                    return BookUpdate(ts_ns=ts, bids=a, asks=b, exchange_ts_ns=xts_or_none)
                return Trade(
                    ts_ns=ts,
                    price=a,
                    size=b,
                    aggressor=_BUY if kind == MARKET_BUY else _SELL,
                    exchange_ts_ns=xts_or_none,
                )
            # One stream: jitter delays market data, never reorders it.
            deliver = ts + latency
            if deliver < self._last_md:
                deliver = self._last_md
            self._last_md = deliver
            event: Event
            if parts is None:
                event = _restamp(ev, deliver)
            elif kind == MARKET_BOOK:  # as received: the venue's time is its own if none given
                event = BookUpdate(
                    ts_ns=deliver, bids=a, asks=b, exchange_ts_ns=ts if xts < 0 else xts
                )
            else:
                event = Trade(
                    ts_ns=deliver,
                    price=a,
                    size=b,
                    aggressor=_BUY if kind == MARKET_BUY else _SELL,
                    exchange_ts_ns=ts if xts < 0 else xts,
                )
            if (not heap or deliver < heap[0][0]) and (not live or deliver <= limit):
                # Due before anything queued (ties go to what was queued first) and no later
                # than the next market event (ties go to the queue): the queue would hand it
                # straight back.
                t_next = market.peek_ns()
                if t_next is None or deliver <= t_next:
                    self.now_ns = deliver
                    return event
            self._seq += 1
            heapq.heappush(heap, (deliver, self._seq, _DELIVER, event))

    def events(self) -> Iterator[Event]:
        """Every event until the market ends (without engine interaction)."""
        while (ev := self.pop_next()) is not None:
            yield ev

    # ----- accounting -----------------------------------------------------------------------

    @property
    def position(self) -> float:
        """Contracts, the float nearest the exact lot count (0.051, not 0.051000000000000004)."""
        return float(Fraction(self.position_lots) * self._lot_exact)

    def equity_settlement(self) -> float:
        """Equity in the settlement currency: the initial equity, cash, and the position
        marked at the mid (inverse: ``-q * contract_size / mid`` coin against the coin the
        fills took in)."""
        mid = self.mid
        initial = self.initial_settlement
        if initial is None:  # inverse before the first mid: nothing traded yet
            return 0.0
        if mid != mid:
            return initial + self.cash
        size = self.position_lots * self.lot * self._contract
        mark = -size / mid if self._inverse else size * mid
        return initial + self.cash + mark

    def equity(self) -> float:
        """Equity in USD (inverse: the coin equity at the mid)."""
        if self._inverse:
            mid = self.mid
            return self.equity_settlement() * mid if mid == mid else self.initial_equity
        return self.equity_settlement()

    def pnl_settlement(self) -> float:
        """PnL in the settlement currency since the start (spot: the base held at the start
        counts at the first mid)."""
        if self.initial_settlement is None:
            return 0.0
        return self.equity_settlement() - self.initial_settlement - self._initial_base_value

    def pnl_usd(self) -> float:
        """PnL in USD: linear and spot, the equity's change; inverse, the PnL in coin at the
        mid (the collateral's own revaluation is not trading PnL)."""
        if self._inverse:
            mid = self.mid
            return self.pnl_settlement() * mid if mid == mid else 0.0
        return self.equity() - self.initial_equity - self._initial_base_value

    def account_update(self, ts_ns: int) -> AccountUpdate:
        """Equity in USD; ``balance`` is the equity, except on spot, where it is the quote
        cash a buy can spend."""
        equity = self.equity()
        balance = self.initial_equity + self.cash if self._spot else equity
        return AccountUpdate(
            ts_ns=ts_ns, account_value=equity, balance=balance, position=self.position
        )

    def open_orders(self) -> int:
        return len(self._orders)

    def resting_cloids(self) -> list[str]:
        """Every order of ours the venue holds (its own list, whatever the engine believes)."""
        return list(self._orders)

    @property
    def request_expiry_s(self) -> float | None:
        """The deadline checked at each action's block; None: none (or first in, first out)."""
        return None if self._expiry_ns is None else self._expiry_ns / _NS

    def resting(self, side: Side) -> int:
        """Lots of our orders resting on ``side`` (the venue's own view, for checks)."""
        return sum(o.remaining_lots for o in self._orders.values() if o.side is side)

    def best_resting(self) -> tuple[float | None, float | None]:
        """Our best resting bid and ask prices now (None: nothing rests on that side)."""
        meter = self.meter
        tick = self.tick
        bid, ask = meter.bid_ticks, meter.ask_ticks
        return (bid * tick if bid else None, ask * tick if ask else None)

    def _resting_changed(self, t: int) -> None:
        """Our resting orders changed at ``t``: tell the meter our best prices."""
        bid = ask = 0
        for o in self._orders.values():
            ticks = o.price_ticks
            if o.side is _BUY:
                if ticks > bid:
                    bid = ticks
            elif ask == 0 or ticks < ask:
                ask = ticks
        self.meter.update(t, bid, ask)

    def uncommitted(self) -> list[Action]:
        """Actions sent and not yet applied (on their way, or waiting for a block), in the
        order they were sent: for checks, O(queued events)."""
        sent: list[tuple[Action, int]] = [(a, s) for _, _, s, a in self._waiting]
        on_way = sorted((seq, p) for _, seq, kind, p in self._heap if kind == _ARRIVE)
        sent += [p for _, p in on_way]  # type: ignore[misc]
        sent.sort(key=lambda x: x[1])  # stable: arrival order among equal send times
        return [a for a, _ in sent]

    def snapshot(self, ts_ns: int, request_id: int | None = None) -> VenueSnapshot:
        """Our open orders and position now: one instant of committed state, stamped on the
        venue's clock (Hyperliquid: the API server's, ``server_skew_ms`` off the blocks')."""
        lot = self._lot_exact
        exchange_ts = ts_ns + self._skew_ns if self._block_ns else self._stamp(ts_ns)
        return VenueSnapshot(
            ts_ns=ts_ns,
            exchange_ts_ns=exchange_ts,
            position=self.position,
            orders=tuple(
                OpenOrder(
                    cloid=o.cloid,
                    side=o.side,
                    price=o.price_ticks * self.tick,
                    size=float(o.remaining_lots * lot),
                    filled_size=float(o.filled_lots * lot),
                )
                for o in self._orders.values()
            ),
            request_id=request_id,
            mark_price=self.mid if self.mid == self.mid else None,
        )

    # ----- internals ------------------------------------------------------------------------

    def _start(self, now_ns: int | None = None) -> None:
        self._started = True
        t0 = now_ns if now_ns is not None else self.market.peek_ns() or 0
        self._tokens_ns = t0
        self._push(t0, _ACCOUNT, None)
        self._push(t0 + self._timer_ns, _TIMER, None)
        if self.funding is not None:
            self._push(next_funding_ns(self.funding, t0), _FUNDING, None)
            self._push(t0, _RATE, None)

    def _push(self, t: int, kind: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, payload))

    def _deliver(self, t: int, event: Event) -> None:
        self._push(t, _DELIVER, event)

    def _stamp(self, t: int) -> int:
        """A venue timestamp, strictly later than every earlier one (fills and snapshots)."""
        stamp = t if t > self._last_stamp else self._last_stamp + 1
        self._last_stamp = stamp
        return stamp

    def _reply(self, t: int, event: Event) -> None:
        """An answer (ack, snapshot) reaches the engine after the order latency, in order."""
        deliver = t + self.order_latency.sample_ns(self.rng, self.market.load())
        if deliver < self._last_answer:
            deliver = self._last_answer
        self._last_answer = deliver
        self._private(deliver, event, is_fill=False)

    def _report_fill(self, t: int, fill: Fill) -> None:
        """Fills travel on their own stream, in order, with their own latency."""
        deliver = t + self.fill_latency.sample_ns(self.rng, self.market.load())
        if deliver < self._last_fill:
            deliver = self._last_fill
        self._last_fill = deliver
        self._private(deliver, fill, is_fill=True)

    def _private(self, deliver: int, event: Event, *, is_fill: bool) -> None:
        faults = self.faults
        if faults is None:
            self._deliver(deliver, _restamp(event, deliver))
            return
        rng = self._fault_rng
        if rng.random() < (faults.drop_fill if is_fill else faults.drop_ack):
            self.stats.dropped += 1
            return
        copies = 2 if rng.random() < faults.duplicate else 1
        self.stats.duplicated += copies - 1
        for _ in range(copies):
            t = deliver
            if faults.reorder_ms > 0.0:
                t += int(rng.expovariate(1.0 / faults.reorder_ms) * 1_000_000)
            self._deliver(t, _restamp(event, t))

    def _take_token(self, t: int) -> bool:
        rl = self.rate_limit
        self._tokens = min(rl.burst, self._tokens + (t - self._tokens_ns) / _NS * rl.per_s)
        self._tokens_ns = t
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _arrive_for_block(self, payload: tuple[Action, int], t: int) -> None:
        """Hyperliquid: a snapshot is answered at once from committed state; an action waits
        for the next block, in its class (a block is scheduled when the first one arrives)."""
        action, sent = payload
        if isinstance(action, RequestSnapshot):
            self._on_action(action, t)
            return
        if isinstance(action, Cancel):
            rank = _CANCEL
        elif isinstance(action, Place) and not action.post_only:
            rank = _TAKER
        else:
            rank = _NO_TAKER  # post-only places, and modifies (which place post-only orders)
        if not self._waiting:
            block = self._block_ns
            commit = (t // block + 1) * block
            faults = self.faults
            if (
                faults is not None
                and faults.slow_block > 0.0
                and self._fault_rng.random() < faults.slow_block
            ):
                self.stats.slow_blocks += 1
                commit += -(-int(faults.slow_block_ms * 1e6) // block) * block
            self._push(commit, _BLOCK, None)
        self._seq += 1
        self._waiting.append((rank, self._seq, sent, action))

    def _commit_block(self, t: int) -> None:
        """Apply what arrived since the last block: its classes in order, arrival order within
        each; an action past its deadline is refused and does nothing."""
        waiting, self._waiting = self._waiting, []
        waiting.sort()  # (class, seq): seq is unique, actions are never compared
        self.stats.blocks += 1
        expiry = self._expiry_ns
        for _, _, sent, action in waiting:
            if expiry is not None and t > sent + expiry:
                self._expire(action, t)
            else:
                self._on_action(action, t)

    def _expire(self, action: Action, t: int) -> None:
        """``Action already expired``: nothing happens but the refusal (REJECTED for every
        order in the action) and five times a request's weight on the rate limit."""
        stats = self.stats
        stats.requests += 1
        stats.expired += 1
        self._take_token(t)
        self._tokens = max(0.0, self._tokens - (_EXPIRED_WEIGHT - 1.0))
        cloid = action.cloid  # type: ignore[union-attr]
        self._answer(t, cloid, action.request_id, _REJECTED, EXPIRED_TEXT)

    def _queue_jump(self, payload: tuple[_Resting, float]) -> None:
        """A maker paying the priority fee joins ahead of ``order`` at its level."""
        order, size = payload
        if self._orders.get(order.cloid) is order:
            order.queue_ahead += size
            self.stats.queue_jumps += 1

    def _on_action(self, action: Action, t: int) -> None:
        stats = self.stats
        if isinstance(action, RequestSnapshot):
            stats.snapshots += 1
            self._reply(t, self.snapshot(t, action.request_id))
            return
        stats.requests += 1
        rid = action.request_id
        if not self._take_token(t):
            stats.rejected_rate_limit += 1
            self._answer(t, action.cloid, rid, _REJECTED, "rate limited")
            return
        if isinstance(action, Cancel):
            stats.cancels += 1
            gone = self._orders.pop(action.cloid, None)
            if gone is None:
                stats.cancels_not_found += 1
                self._answer(t, action.cloid, rid, _NOT_FOUND, NOT_FOUND_TEXT)
            else:
                self._resting_changed(t)
                self._answer(t, action.cloid, rid, _CANCELED, filled=gone.filled_lots)
            return
        if isinstance(action, Modify):
            stats.modifies += 1
            old = self._orders.get(action.cloid)
            if old is None:
                stats.cancels_not_found += 1
                text = "Cannot modify canceled or filled order"
                self._answer(t, action.cloid, rid, _NOT_FOUND, text)
                return
            side = old.side
            cloid = action.new_cloid or action.cloid
            # Cancel-replace: the old order leaves the book whatever happens to the new one.
            del self._orders[action.cloid]
            checked = self._check(side, action.price, action.size)
            if isinstance(checked, str):
                self._resting_changed(t)
                self._answer(
                    t,
                    action.cloid,
                    rid,
                    _CANCELED,
                    f"Error placing new order during modify: {checked}",
                    filled=old.filled_lots,
                )
                return
            self._rest(cloid, side, checked, t)
            self._answer(t, action.cloid, rid, _ACCEPTED, filled=old.filled_lots)
            return
        if not action.post_only:
            self._take(action, t)
            return
        checked = self._check(action.side, action.price, action.size)
        if isinstance(checked, str):
            self._answer(t, action.cloid, rid, _REJECTED, checked)
            return
        if action.cloid in self._orders:
            self._answer(t, action.cloid, rid, _REJECTED, "duplicate cloid")
            return
        self._rest(action.cloid, action.side, checked, t)
        stats.placed += 1
        self._answer(t, action.cloid, rid, _ACCEPTED, filled=0)

    def _answer(
        self,
        t: int,
        cloid: str,
        request_id: int,
        status: AckStatus,
        reason: str = "",
        *,
        filled: int | None = None,
    ) -> None:
        filled_size = (
            float(filled * self._lot_exact) if filled is not None and self.ack_filled_size else None
        )
        self._reply(
            t,
            OrderAck(
                ts_ns=t,
                cloid=cloid,
                status=status,
                reason=reason,
                request_id=request_id,
                filled_size=filled_size,
            ),
        )

    def _take(self, action: Place, t: int) -> None:
        """An immediate-or-cancel order: trades at the touch if its limit reaches it (taker
        fee), the rest is cancelled; answered CANCELED with the size it filled."""
        self.stats.takes += 1
        checked = self._check(action.side, action.price, action.size, post_only=False)
        if isinstance(checked, str):
            self._answer(t, action.cloid, action.request_id, _REJECTED, checked)
            return
        ticks, lots = checked
        buy = action.side is _BUY
        touch = self.best_ask if buy else self.best_bid
        if not touch or (ticks < touch if buy else ticks > touch):
            text = "Order could not immediately match against any resting orders."
            self._answer(t, action.cloid, action.request_id, _CANCELED, text, filled=0)
            return
        order = _Resting(action.cloid, action.side, touch, lots, 0.0)
        self._fill(order, lots, t, taker=True)
        self._answer(t, action.cloid, action.request_id, _CANCELED, filled=lots)

    def _rest(self, cloid: str, side: Side, checked: tuple[int, int], t: int) -> None:
        ticks, lots = checked
        queue = self.market.displayed_size(side, ticks) + sum(
            o.remaining_lots * self.lot
            for o in self._orders.values()
            if o.side is side and o.price_ticks == ticks
        )
        order = self._orders[cloid] = _Resting(cloid, side, ticks, lots, queue)
        self._resting_changed(t)
        rate = self._jump_rate
        if rate > 0.0:
            # Paying makers who arrive within the window are sorted ahead of us: Poisson
            # arrivals, exponential sizes, from their own stream (the rest of the run keeps
            # its draws whatever this rate).
            rng = self._jump_rng
            mean = self.profile.priority_jump_size * lots * self.lot
            window = self._jump_window_s
            dt = rng.expovariate(rate)
            while dt <= window:
                self._push(t + int(dt * _NS), _JUMP, (order, rng.expovariate(1.0 / mean)))
                dt += rng.expovariate(rate)

    def _check(
        self, side: Side, price: float, size: float, *, post_only: bool = True
    ) -> tuple[int, int] | str:
        stats = self.stats
        if not (price > 0.0 and size > 0.0 and math.isfinite(price) and math.isfinite(size)):
            stats.rejected_invalid += 1
            return "invalid price or size"
        x = price / self.tick
        ticks = math.floor(x + 0.5)
        y = size / self.lot
        lots = math.floor(y + 0.5)
        if abs(x - ticks) > 1e-6 * max(1.0, x) or abs(y - lots) > 1e-6 * max(1.0, y) or lots <= 0:
            stats.rejected_invalid += 1
            return "price or size off the grid"
        if self.instrument.value_usd(lots * self.lot, ticks * self.tick) < (
            self.instrument.min_notional * (1 - 1e-9)
        ):
            stats.rejected_invalid += 1
            return "below minimum notional"
        if self._spot and not self._covered(side, ticks, lots):
            stats.rejected_balance += 1
            return "insufficient balance"
        if post_only and (
            (side is _BUY and self.best_ask and ticks >= self.best_ask)
            or (side is _SELL and self.best_bid and ticks <= self.best_bid)
        ):
            stats.rejected_post_only += 1
            return "post only order would have immediately matched"
        return ticks, lots

    def _covered(self, side: Side, ticks: int, lots: int) -> bool:
        """Spot: the base asset held covers every resting sell and this one; the quote cash
        covers every resting buy and this one."""
        if side is _SELL:
            selling = sum(o.remaining_lots for o in self._orders.values() if o.side is _SELL)
            return selling + lots <= self.position_lots
        spending = sum(
            o.remaining_lots * o.price_ticks for o in self._orders.values() if o.side is _BUY
        )
        cash = self.initial_equity + self.cash
        return (spending + lots * ticks) * self.tick * self.lot <= cash * (1 + 1e-12)

    def _pay_funding(self, t: int) -> None:
        """A funding time: the position pays or receives funding at the mid."""
        model, rates = self.funding, self.funding_rates
        assert model is not None and rates is not None
        self._push(next_funding_ns(model, t), _FUNDING, None)
        mid = self.mid
        if self.position_lots == 0 or mid != mid:
            return
        amount = funding_payment(
            self.instrument, self.position, rates.rate_at(t), mid, cap=model.cap
        )
        usd = amount * mid if self._inverse else amount
        self.cash += amount
        stats = self.stats
        stats.funding_payments += 1
        stats.funding_settlement += amount
        stats.funding_usd += usd
        if self.ledger is not None:
            self.ledger.on_funding(t, usd, self.position)
        # The venue reports it on the account's stream (Hyperliquid ``userFundings``, Binance's
        # ``FUNDING_FEE`` account update), at the funding time.
        self._deliver(
            t,
            FundingPayment(
                ts_ns=t,
                amount=amount,
                payment_id=f"funding:{t}",
                rate=rates.rate_at(t),
                position=self.position,
                exchange_ts_ns=t,
            ),
        )

    def _announce_rate(self, t: int) -> None:
        """The rate in force from ``t`` (the venue publishes it: Binance ``@markPrice`` ``r``,
        Hyperliquid ``activeAssetCtx``), then the next time it changes."""
        model, rates = self.funding, self.funding_rates
        if model is None or rates is None:
            return
        self._deliver(t, FundingRate(ts_ns=t, rate=rates.rate_at(t), interval_s=model.interval_s))
        later = rates.next_change_ns(t)
        if later is not None:
            self._push(later, _RATE, None)

    def set_funding_rate(self, rate: float) -> None:
        """A live rate (paper trading): it holds from now until the venue says otherwise, is
        paid at the next funding time and reaches the engine on the account's stream."""
        model = self._funding_model
        if model is None or not abs(rate) <= 1.0:  # also NaN: the engine refuses it too
            return
        self.funding_rates = FundingSeries.constant(rate)
        if self.funding is None:
            self.funding = model
            if self._started:
                self._push(next_funding_ns(model, self.now_ns), _FUNDING, None)
        t = self.now_ns
        self._deliver(t, FundingRate(ts_ns=t, rate=rate, interval_s=model.interval_s))

    def _on_book(self, book: BookUpdate) -> None:
        self._book_top(book.ts_ns, book.bids, book.asks)

    def _book_top(
        self,
        ts_ns: int,
        bids: tuple[tuple[float, float], ...],
        asks: tuple[tuple[float, float], ...],
    ) -> None:
        """A book at ``ts_ns``: only its touch matters to our orders."""
        if not bids or not asks:
            return
        tick = self.tick
        bid_px = bids[0][0]
        ask_px = asks[0][0]
        if not (0.0 < bid_px < tick * 1e15 and 0.0 < ask_px < tick * 1e15):
            return  # not a price any order of ours can meet
        bb = math.floor(bid_px / tick + 0.5)
        ba = math.floor(ask_px / tick + 0.5)
        if not 0 < bb < ba:
            return
        if bb == self.best_bid and ba == self.best_ask:
            return  # sizes only: every resting order was checked against this touch already
        if self.ledger is not None:
            self.ledger.on_mid(ts_ns, self.mid)
        self.best_bid, self.best_ask = bb, ba
        first = self.mid != self.mid
        self.mid = 0.5 * (bb + ba) * tick
        if first:
            if self.initial_settlement is None:  # inverse: the USD equity in coin
                self.initial_settlement = self.initial_equity / self.mid
            if self._spot and self.position_lots:
                self._initial_base_value = self.position_lots * self.lot * self.mid
        if not self._orders:
            return
        # The market moved through our price: whoever traded there traded with us first.
        for order in list(self._orders.values()):
            crossed = order.price_ticks >= ba if order.side is _BUY else order.price_ticks <= bb
            if crossed:
                self._fill(order, order.remaining_lots, ts_ns)

    def _on_trade(self, trade: Trade) -> None:
        self._trade_at(trade.ts_ns, trade.price, trade.size, trade.aggressor is _SELL)

    def _trade_at(self, ts_ns: int, price: float, size: float, sell_aggressor: bool) -> None:
        """A print at ``ts_ns``: it fills what of ours it reaches (queue model)."""
        if not (0.0 < price < self.tick * 1e15 and size > 0.0):
            return  # NaN, inf and absurd prints trade with nobody
        if not self._orders:
            return
        price_ticks = math.floor(price / self.tick + 0.5)
        for order in list(self._orders.values()):
            if (order.side is _BUY) != sell_aggressor:
                continue  # a buy aggressor only trades with resting asks, and vice versa
            if sell_aggressor:
                through = price_ticks < order.price_ticks
                at = price_ticks == order.price_ticks
            else:
                through = price_ticks > order.price_ticks
                at = price_ticks == order.price_ticks
            if through:
                self._fill(order, order.remaining_lots, ts_ns)
            elif at:
                # A print at our price trades the front of the queue: it first eats what is
                # ahead of us (which counts our own earlier orders there), then us.
                left = size - order.queue_ahead
                order.queue_ahead = max(0.0, order.queue_ahead - size)
                if left > 0.0:
                    lots = min(order.remaining_lots, math.floor(left / self.lot + 1e-9))
                    if lots > 0:
                        self._fill(order, lots, ts_ns)

    def _fill(self, order: _Resting, lots: int, t: int, *, taker: bool = False) -> None:
        price = order.price_ticks * self.tick
        contracts = lots * self.lot
        notional = self.instrument.value_usd(contracts, price)
        fee_usd = self.fees.taker_fee(notional) if taker else self.fees.fee(notional)
        sign = 1 if order.side is _BUY else -1
        self.position_lots += sign * lots
        stats = self.stats
        if self._inverse:
            # Buying N contracts of C USD at p takes in N*C/p coin of contract value; the
            # position is marked at -N*C/mid: PnL N*C*(1/p - 1/mid) coin.
            fee = fee_usd / price
            volume = notional / price
            self.cash += sign * volume - fee
        else:
            fee = fee_usd
            volume = notional
            self.cash += -sign * notional - fee
        stats.fills += 1
        if not taker:
            stats.maker_volume_usd += notional
            stats.maker_volume_settlement += volume
        stats.fees_usd += fee_usd
        stats.fees_settlement += fee
        order.remaining_lots -= lots
        order.filled_lots += lots
        self._fill_seq += 1
        size = float(lots * self._lot_exact)
        if self.ledger is not None:
            # What rested at the instant of the fill, this order included.
            our_bid, our_ask = self.best_resting()
            # In USD, sized in the base coin the fill's value buys (the attribution's units).
            coin = notional / price if self._inverse else size * self._contract
            self.ledger.on_fill(
                t, sign > 0, price, coin, fee_usd, self.mid, taker, our_bid=our_bid, our_ask=our_ask
            )
        if order.remaining_lots <= 0 and self._orders.pop(order.cloid, None) is not None:
            self._resting_changed(t)
        self._report_fill(
            t,
            Fill(
                ts_ns=t,
                cloid=order.cloid,
                price=price,
                size=size,
                side=order.side,
                fill_id=f"sim-{self._fill_seq}",
                fee=fee,
                # Hyperliquid: the block's (or the market's) time, shared by a block's fills.
                exchange_ts_ns=t if self._block_ns else self._stamp(t),
            ),
        )


def _restamp(event: Event, ts_ns: int) -> Event:
    """The event as received: ``ts_ns`` is the local receive time."""
    if isinstance(event, BookUpdate):
        exchange_ts = event.ts_ns if event.exchange_ts_ns is None else event.exchange_ts_ns
        return BookUpdate(ts_ns=ts_ns, bids=event.bids, asks=event.asks, exchange_ts_ns=exchange_ts)
    if isinstance(event, Trade):
        return Trade(
            ts_ns=ts_ns,
            price=event.price,
            size=event.size,
            aggressor=event.aggressor,
            exchange_ts_ns=event.ts_ns if event.exchange_ts_ns is None else event.exchange_ts_ns,
        )
    return msgspec.structs.replace(event, ts_ns=ts_ns)
