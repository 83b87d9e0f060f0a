"""The quote cycle: ``QuoteEngine.on_event(event) -> list[Action]``, pure and synchronous.

Each event first updates the estimators (Hawkes trade intensity and flow, Welford volatility,
fill intensity) or the order and account state; then one quote cycle runs:

1. the kill switch re-derives the position limit from equity, volatility and trade rate and
   decides the trading state (HALTED and PAUSED cancel everything; REDUCING quotes only the side
   that shrinks |position|);
2. ``ParameterAggregator`` snapshots everything into ``MarketParams``;
3. the strategy returns wanted quotes, capped by side capacity;
4. ``PositionSizer`` turns them into exact ticks and lots behind the touch;
5. ``OrderManager.plan`` returns the fewest actions.

Only what an event can change is run (``shortcuts``; counted in ``counters``): a book update
that moves no best price stops after the kill switch when nothing else changed
(``quiet_cycles``); while the request budget is empty the cycle stops before the strategy,
since no plan could send anything (``held_cycles``); and when everything steps 2-4 read equals
what the last cycle read, its wanted quotes go to the plan again (``reused_quotes``). Each
gives exactly the actions of the whole cycle (``tests/test_engine.py``).

The engine also decides when to reconcile with the venue: it emits ``RequestSnapshot`` when a
message made its books doubtful, when a request or an order's fills have waited longer than
``orders.settle_timeout_s``, after a reconnect, and every ``orders.reconcile_interval_s``; the
answering ``VenueSnapshot`` is applied by the order manager (see ``orders/manager.py``).

No IO, no clock reads, no logging: time is the event's ``ts_ns``. Bad input never raises and
never quotes: it is counted in ``counters`` and the engine holds its quotes (or cancels them if
the kill switch says so).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgspec

from market_maker.config import AppConfig
from market_maker.contracts import contract_config, with_fee_rates
from market_maker.estimators import (
    AdverseSelection,
    CascadeDetector,
    FillIntensityEstimator,
    IncrementalHawkes,
    IncrementalVolStats,
)
from market_maker.funding_book import FundingBook
from market_maker.model import (
    AccountUpdate,
    AckStatus,
    Action,
    BookUpdate,
    ConnectionStatus,
    Event,
    FeeUpdate,
    Fill,
    FundingPayment,
    FundingRate,
    Instrument,
    OrderAck,
    Place,
    RequestSnapshot,
    Side,
    Timer,
    Trade,
    VenueSnapshot,
)
from market_maker.orders import OrderManager, OrderState, TrackedOrder
from market_maker.orders.rate_limit import TokenBucket
from market_maker.risk import (
    DynamicSizer,
    KillSwitch,
    PositionSizer,
    RefusalTally,
    TradingState,
    blended_sigma,
    confidence_from_samples,
)
from market_maker.risk.carry import paying_side_limit_usd
from market_maker.risk.limits import PositionLimits, effective_max_position
from market_maker.status import (
    EngineCounters,
    EngineStatus,
    LimitStatus,
    MarketStatus,
    NotResting,
    QuoteLevel,
    RestingOrder,
    SideStatus,
)
from market_maker.strategy import (
    GlftStrategy,
    LadderStrategy,
    MarketParams,
    ParameterAggregator,
    make_strategy,
)

__all__ = ["EngineCounters", "EngineStatus", "QuoteEngine"]

# Enum members as module constants: attribute access on an Enum class is slow in 3.11.
_BUY = Side.BUY
_ACK_REJECTED = AckStatus.REJECTED.value
_SELL = Side.SELL
_PAUSED = TradingState.PAUSED
_REDUCING = TradingState.REDUCING
_HALTED = TradingState.HALTED
_PLACING = OrderState.PLACING
_RESTING = OrderState.RESTING
_MODIFYING = OrderState.MODIFYING
_CANCELLING = OrderState.CANCELLING

_NS = 1e-9
_isfinite = math.isfinite
_EMPTY: tuple[tuple[int, int], ...] = ()


class QuotingStats:
    """What ``[quoting]`` did, summed over the cycles that ran the strategy (for the
    backtest summary): the fair value's distance from the mid, the adverse floor, and the
    cycles the toxic-flow guard held a side back."""

    __slots__ = ("cycles", "fair_shift_bps", "floor_bps", "toxic_cycles")

    def __init__(self) -> None:
        self.cycles = 0
        self.fair_shift_bps = 0.0
        self.floor_bps = 0.0
        self.toxic_cycles = 0


def _toxic_state(state: int, buy: float, sell: float, enter: float, leave: float) -> int:
    """The toxic-flow guard with hysteresis: one-sided at ``enter`` of ``(buy - sell) /
    (buy + sell)`` or more, until it falls under ``leave``."""
    total = buy + sell
    if not total > 0.0:
        return 0
    imbalance = (buy - sell) / total
    if state == 0:
        if imbalance >= enter:
            return 1
        if imbalance <= -enter:
            return -1
        return 0
    if state * imbalance < leave:
        # Off, or straight to the other side when the flow flipped past ``enter``.
        return 1 if imbalance >= enter else (-1 if imbalance <= -enter else 0)
    return state


_NEVER = 1 << 62  # a time no event reaches (ns)


def _cap_lots(levels: tuple[tuple[int, int], ...], most: int) -> tuple[tuple[int, int], ...]:
    """Levels (best first) cut so their lots add up to at most ``most``."""
    out: list[tuple[int, int]] = []
    for ticks, lots in levels:
        if most <= 0:
            break
        take = lots if lots <= most else most
        out.append((ticks, take))
        most -= take
    return tuple(out)


class QuoteEngine:
    """One market, one strategy, one account: events in, order actions out."""

    def __init__(self, config: AppConfig, instrument: Instrument) -> None:
        self._given_config = config  # before the contract's terms (a new fee tier re-applies)
        config = contract_config(config, instrument)
        self.config = config
        self.instrument = instrument
        # Value of one contract = mid * _unit_scale (linear, spot), or _unit_scale USD
        # whatever the mid (inverse): every limit and budget is in USD of position value.
        self._unit_scale = instrument.contract_size
        self._unit_inverse = instrument.inverse
        self._spot = instrument.spot
        est = config.estimators
        h = est.hawkes
        self.hawkes = IncrementalHawkes(h.mu, h.alpha, h.beta)
        c = est.cascade
        self.cascade = CascadeDetector(
            prior_rate=self.hawkes.stationary_intensity,
            window_s=c.window_s,
            baseline_s=c.baseline_s,
            prior_weight_s=c.prior_weight_s,
            warmup_s=c.warmup_s,
            min_events=c.min_events,
        )
        self._unbranched = 1.0 - h.alpha / h.beta
        self.buy_flow = IncrementalHawkes(0.5 * h.mu, h.alpha, h.beta)
        self.sell_flow = IncrementalHawkes(0.5 * h.mu, h.alpha, h.beta)
        self.vol = IncrementalVolStats(
            sample_interval_s=est.volatility.sample_interval_s,
            halflife_s=est.volatility.halflife_s,
        )
        fi = est.intensity
        self.intensity = FillIntensityEstimator(
            tick_size=instrument.tick_size,
            step_s=fi.step_s,
            window_s=fi.window_s,
            max_depth_ticks=fi.max_depth_ticks,
            refit_interval_s=fi.refit_interval_s,
            a_prior=fi.a_prior,
            k_prior=fi.k_prior,
        )
        self.kill_switch = KillSwitch(config)
        self.sizer = PositionSizer(instrument)
        conviction = config.sizing.conviction
        self.conviction = DynamicSizer(conviction, self.sizer) if conviction.enabled else None
        self.aggregator = ParameterAggregator(config, instrument)
        self.strategy = make_strategy(config)
        # Strategies that make exact ticks and lots themselves skip the float quotes.
        self._wanted = getattr(self.strategy, "wanted", None)
        self.orders = OrderManager(self.sizer, config.orders)
        self.requests = TokenBucket(config.orders.max_requests_per_s, config.orders.request_burst)
        self.counters = EngineCounters()
        self.refusals = RefusalTally()
        """Every refusal's text, counted (the venue's own words, for status and logs)."""
        self.best_bid = math.nan
        self.best_ask = math.nan
        self._best_bid_ticks = 0
        self._best_ask_ticks = 0
        self.mid = math.nan
        self.now_ns = 0
        self._last_book_ns = -1
        self._last_trade_ns = -1
        self._mismatched = False
        self._last_print: tuple[int, bool] = (-1, False)
        # Trade-flow estimates (rate, activity, buy rate, sell rate) as of the last refresh.
        self._flow = (h.mu, 1.0, 0.5 * h.mu, 0.5 * h.mu)
        self._touch_moved = True
        self._cycle_inputs: tuple[int, float, float] = (-1, 0.0, 0.0)
        self._cycle_state = TradingState.ACTIVE
        self.shortcuts = not (
            config.strategy.kind == "avellaneda_stoikov" and config.strategy.as_terminal
        )
        """Skip the parts of a cycle whose outcome cannot differ from the last one (a quiet
        book, an empty request budget, strategy inputs equal to the last cycle's). False runs
        every cycle whole: the equivalence tests compare the two. A finite-horizon A-S
        strategy reads the clock itself: always whole."""
        self._held = False  # a cycle was held for the budget: the next token must plan
        self._quote_key: tuple[object, ...] | None = None  # what the last quotes were made from
        self._max_lots = 0
        glft_family = isinstance(self.strategy, (GlftStrategy, LadderStrategy))
        # GLFT and the ladder read the Hawkes ratio only above 1 (cascade widening) and no
        # flow imbalance; conviction sizing reads the imbalance.
        self._calm_below_one = glft_family
        self._reads_flow = self.conviction is not None or not glft_family
        quoting = config.quoting
        self._fair_beta = quoting.imbalance_beta_bps * 1e-4 if quoting.fair_value else 0.0
        self._fair_ticks = 0  # fair value minus mid, whole ticks
        self._tick = instrument.tick_size
        self.adverse = (
            AdverseSelection(
                prior_bps=quoting.adverse_prior_bps,
                prior_fills=quoting.adverse_prior_fills,
                halflife_fills=quoting.adverse_halflife_fills,
                horizon_s=quoting.adverse_horizon_s,
            )
            if quoting.adverse_floor
            else None
        )
        """Our fills' adverse move (``[quoting] adverse_floor``); None when off."""
        fee = quoting.maker_fee_bps
        if fee is None:
            fee = instrument.maker_fee_bps if instrument.maker_fee_bps is not None else 0.0
        self._maker_fee_bps = fee
        self._toxic_guard = quoting.toxic_guard
        self._toxic_enter = quoting.toxic_enter
        self._toxic_exit = quoting.toxic_exit
        self._toxic_widen_bps = quoting.toxic_widen_bps
        self._toxic = 0  # +1 buying, -1 selling, 0 neither (with hysteresis)
        self.quoting_stats = QuotingStats()
        self.params: MarketParams | None = None
        self.idle_reason = ""
        """Why nothing can be quoted although trading is allowed ("" when quoting)."""
        self.wanted: tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]] = (
            _EMPTY,
            _EMPTY,
        )
        orders_cfg = config.orders
        self._settle_timeout_ns = int(orders_cfg.settle_timeout_s * 1e9)
        interval = orders_cfg.reconcile_interval_s
        self._reconcile_interval_ns = None if interval is None else int(interval * 1e9)
        self._next_reconcile_ns = _NEVER
        self._syncing = False
        self._reducing_since = -1  # ns; -1: not REDUCING
        self._next_escalation_ns = 0
        self._snapshot_wait = False  # a snapshot is due: new orders wait for those on their way
        ks_cfg = config.kill_switch
        self._halt_position = ks_cfg.halt_position
        self._stale_pause_ns = int(ks_cfg.stale_pause_after_s * 1e9)
        self._connected = True
        gate = config.input
        self._max_move = gate.max_price_move
        self._reanchor_ns = int(gate.reanchor_after_s * 1e9)
        self._max_future_ns = int(gate.max_future_s * 1e9)
        self._suspect_mid = math.nan  # a refused level that may be the market's new one
        self._equity_anchor: tuple[float, float] | None = None  # (venue equity, our PnL)
        self._coin_cash = 0.0
        """Inverse contracts: the coin our fills took in (N * C / price a buy), less fees."""
        self.funding = FundingBook(config.funding, instrument)
        """The venue's funding rate and the payments booked to us (``funding_book.py``)."""
        self._suspect_since = 0
        self._pending_actions: list[Action] = []
        # Books and trades are dispatched before this table: books alone may take the quiet
        # path, and both the paused one.
        self._handlers: dict[type, Callable[[Any, int], bool]] = {
            Fill: self._on_fill,
            OrderAck: self._on_ack,
            AccountUpdate: self._on_account,
            VenueSnapshot: self._on_snapshot,
            ConnectionStatus: self._on_connection,
            Timer: self._on_timer,
            FundingRate: self._on_funding_rate,
            FundingPayment: self._on_funding_payment,
            FeeUpdate: self._on_fees,
        }

    # ----- events -------------------------------------------------------------------------

    def start(self, ts_ns: int) -> list[Action]:
        """Begin by asking the venue what it holds for us; quote once it has answered.

        Orders an earlier process left at the venue are cancelled (and its position adopted)
        before the first quote. Without ``start`` the engine quotes at once, from a flat book.
        """
        self._syncing = True
        self.orders.needs_reconcile = True
        self.counters.snapshot_requests += 1
        interval = self._reconcile_interval_ns
        self._next_reconcile_ns = _NEVER if interval is None else ts_ns + interval
        return [self.orders.request_snapshot(ts_ns)]

    def on_event(self, event: Event, ts_ns: int | None = None) -> list[Action]:
        """Apply ``event`` (at ``ts_ns``, default the event's own) and run a quote cycle."""
        ts = event.ts_ns if ts_ns is None else ts_ns
        self.counters.events += 1
        kind = type(event)
        if ts - self.now_ns > self._max_future_ns and self.now_ns and kind is not Timer:
            self.counters.future_events += 1  # a bad clock, not the new time
            if kind is BookUpdate or kind is Trade:
                return []
            # A fill, an answer or a snapshot is a fact whatever its stamp (a wall clock that
            # stepped forward): applied at the engine's own time, never dropped.
            ts = self.now_ns
        if kind is BookUpdate:
            if not self._on_book(event, ts):  # type: ignore[arg-type]
                return []
            if ts > self.now_ns:
                self.now_ns = ts
            request = self._reconcile_due(kind)
            if self._cycle_state is _PAUSED and self._pause_holds(self.now_ns, False):
                actions = []
            elif self._touch_moved or not self.shortcuts:
                actions = self._cycle(self.now_ns, refresh_flow=False)
            else:
                actions = self._quiet_cycle(self.now_ns)
        elif kind is Trade:
            if not self._on_trade(event, ts):  # type: ignore[arg-type]
                return []
            if ts > self.now_ns:
                self.now_ns = ts
            request = self._reconcile_due(kind)
            if self._cycle_state is _PAUSED and self._pause_holds(self.now_ns, True):
                actions = []
            else:
                actions = self._cycle(self.now_ns)
        else:
            handler = self._handlers.get(kind)
            if handler is None or not handler(event, ts):
                return []
            if ts > self.now_ns:
                self.now_ns = ts
            request = self._reconcile_due(kind)
            actions = self._cycle(self.now_ns)
        if request is not None:
            # Asked for before this cycle's new orders: they are not in the snapshot.
            actions.insert(0, request)
        if self._pending_actions:
            actions = self._pending_actions + actions
            self._pending_actions = []
        if actions:
            sent = 0
            for a in actions:
                if type(a) is not RequestSnapshot:
                    sent += 1
            self.counters.requests_sent += sent
        return actions

    def _reconcile_due(self, kind: type) -> RequestSnapshot | None:
        if (
            self.orders.needs_reconcile
            or kind is Timer
            or self.now_ns >= self._next_reconcile_ns
            or self._snapshot_wait
        ):
            return self._reconcile(self.now_ns)
        return None

    def _reconcile(self, ts: int) -> RequestSnapshot | None:
        """A snapshot request when one is needed and none is on its way."""
        orders = self.orders
        timeout = self._settle_timeout_ns
        if orders.snapshot_in_flight(ts, timeout):
            return None
        interval = self._reconcile_interval_ns
        if self._next_reconcile_ns == _NEVER and interval is not None:
            self._next_reconcile_ns = ts + interval  # the first event starts the clock
        due = orders.needs_reconcile or ts >= self._next_reconcile_ns
        if not due:
            oldest = orders.oldest_wait_ns()
            due = oldest is not None and ts - oldest >= timeout
        if not due:
            return None
        if orders.creating_in_flight(ts):
            # A snapshot asked for now could not tell a place on its way from one that traded
            # and went: hold new orders (cancels still go) until every one is answered.
            if not self._snapshot_wait:
                self._snapshot_wait = True
                self.counters.snapshot_waits += 1
            return None
        self._snapshot_wait = False
        if interval is not None:
            self._next_reconcile_ns = ts + interval
        self.counters.snapshot_requests += 1
        return orders.request_snapshot(ts)

    def _holding_new(self, ts: int) -> bool:
        """New orders wait (cancels still go): a snapshot is due and waits for the places on
        their way, or one is on its way. A place sent while the venue answers the snapshot
        could trade between the two queries a venue may need for it (Hyperliquid: open orders,
        then the position), and the snapshot could then count its fills and we again."""
        return self._snapshot_wait or self.orders.snapshot_in_flight(ts, self._settle_timeout_ns)

    def _on_book(self, ev: BookUpdate, ts: int) -> bool:
        if ts < self._last_book_ns:
            self.counters.out_of_order += 1
            return False
        bids, asks = ev.bids, ev.asks
        if not bids or not asks:
            self.counters.bad_books += 1
            return False
        bb = bids[0][0]
        ba = asks[0][0]
        if bb == self.best_bid and ba == self.best_ask:
            # The touch last accepted (sizes only): valid, and its mid is the anchor itself.
            self._touch_moved = False
            self._suspect_mid = math.nan
            mid = self.mid
        else:
            sizer = self.sizer
            if not (sizer.price_ok(bb) and sizer.price_ok(ba) and ba > bb):  # also rejects NaN
                self.counters.bad_books += 1
                return False
            mid = 0.5 * (bb + ba)
            if not self._plausible_book(mid, ts):
                return False
            self._touch_moved = True
            self.best_bid = bb
            self.best_ask = ba
            self._best_bid_ticks = sizer.nearest_ticks(bb)
            self._best_ask_ticks = sizer.nearest_ticks(ba)
            self.mid = mid
        self._last_book_ns = ts
        t_s = ts * _NS
        self.vol.update(mid, t_s)
        self.intensity.on_mid(mid, t_s)
        self.kill_switch.on_market_data(ts)
        if self.adverse is not None:
            self.adverse.on_mid(ts, mid)
        beta = self._fair_beta
        if beta != 0.0:
            size_b = bids[0][1]
            size_a = asks[0][1]
            total = size_b + size_a
            shift = 0
            if total > 0.0 and size_b >= 0.0 and size_a >= 0.0:  # NaN fails every test
                shift = round(beta * mid * (size_b - size_a) / (total * self._tick))
            if shift != self._fair_ticks:
                self._fair_ticks = shift
                self._touch_moved = True  # the fair value moved: the quotes may
        return True

    def _plausible_book(self, mid: float, ts: int) -> bool:
        """Within ``max_price_move`` of the last accepted mid; a refused level that other
        books keep confirming for ``reanchor_after_s`` becomes the new anchor."""
        last = self.mid
        if last != last or abs(mid - last) <= self._max_move * last:
            self._suspect_mid = math.nan
            return True
        self.counters.implausible_prices += 1
        suspect = self._suspect_mid
        if suspect == suspect and abs(mid - suspect) <= self._max_move * suspect:
            if ts - self._suspect_since >= self._reanchor_ns:
                self.counters.reanchored += 1
                self._suspect_mid = math.nan
                return True
        else:
            self._suspect_mid = mid
            self._suspect_since = ts
        return False

    def _on_trade(self, ev: Trade, ts: int) -> bool:
        price = ev.price
        sizer = self.sizer
        if not (sizer.price_ok(price) and sizer.size_ok(ev.size)):
            self.counters.bad_trades += 1
            return False
        mid = self.mid
        if mid == mid and abs(price - mid) > self._max_move * mid:
            self.counters.implausible_prices += 1
            return False
        if ts < self._last_trade_ns:
            self.counters.out_of_order += 1
            return False
        self._last_trade_ns = ts
        t_s = ts * _NS
        is_buy = ev.aggressor is _BUY
        # One aggressive order prints once per level it sweeps, all at the same exchange time:
        # that is one arrival for the Hawkes process, not a burst.
        key = (ev.exchange_ts_ns if ev.exchange_ts_ns is not None else ts, is_buy)
        if key != self._last_print:
            self._last_print = key
            self.hawkes.update(t_s)
            self.cascade.update(t_s)
            (self.buy_flow if is_buy else self.sell_flow).update(t_s)
        self.intensity.update(price, t_s, is_buy)
        self.orders.on_print(ev.aggressor, sizer.nearest_ticks(price), ts)
        # Trades do not refresh staleness: prints over a frozen book must not hide the freeze.
        return True

    def _on_fill(self, ev: Fill, ts: int) -> bool:
        if self._unit_inverse:
            orders = self.orders
            lots, fees = orders.position_lots, orders.fees_usd
            moved = orders.on_fill(ev)
            self._book_inverse(orders.position_lots - lots, ev.price, orders.fees_usd - fees)
        else:
            moved = self.orders.on_fill(ev)
        if moved and self.adverse is not None:
            self.adverse.on_fill(ts, ev.side is _BUY, ev.price)
        return True  # even a duplicate runs a cycle: harmless, and state may need re-planning

    def _on_ack(self, ev: OrderAck, ts: int) -> bool:
        if ev.status == _ACK_REJECTED:
            self.refusals.add(ev.reason)
        if self.orders.on_ack(ev):
            self.kill_switch.on_rejection(ts, ev.reason)
        return True

    def _on_account(self, ev: AccountUpdate, ts: int) -> bool:
        ks = self.kill_switch
        value = ev.account_value
        if not abs(value) < 1e15:  # also NaN and inf
            self.counters.bad_accounts += 1
            anchor = self._equity_anchor
            if anchor is None:
                return False
            # Loss triggers must not switch off: the last good equity moved by our own PnL.
            self.counters.equity_estimated += 1
            value = anchor[0] + (self.pnl_usd() - anchor[1])
            ks.on_account(ts, value)
            return True
        balance = ev.balance
        if balance is not None and not abs(balance) < 1e15:
            self.counters.bad_accounts += 1
            balance = None
        if not ks.on_account(ts, value, balance):
            self.counters.bad_accounts += 1
            return False
        self._equity_anchor = (value, self.pnl_usd())
        reported = ev.position
        if reported is not None and self.sizer.position_ok(reported):
            # Fills in flight make one snapshot disagree; two in a row is a real mismatch.
            if self.sizer.nearest_lots(reported) != self.orders.position_lots:
                if self._mismatched:
                    self.counters.position_mismatches += 1
                    self.orders.needs_reconcile = True
                self._mismatched = True
            else:
                self._mismatched = False
        return True

    def _on_snapshot(self, ev: VenueSnapshot, ts: int) -> bool:
        lots = self.orders.position_lots
        self._pending_actions.extend(self.orders.on_snapshot(ev, mark=self.mid))
        if self._unit_inverse and self.orders.position_lots != lots:
            mark = ev.mark_price if ev.mark_price is not None else self.mid
            self._book_inverse(self.orders.position_lots - lots, mark, 0.0)
        self._syncing = self._syncing and self.orders.needs_reconcile
        return True

    def _on_connection(self, ev: ConnectionStatus, ts: int) -> bool:
        self.kill_switch.set_connected(ev.connected)
        if ev.connected and not self._connected:
            # Answers and fills may have been lost with the connection.
            self.orders.needs_reconcile = True
        self._connected = ev.connected
        return True

    def _on_timer(self, ev: Timer, ts: int) -> bool:
        return True

    def _on_funding_rate(self, ev: FundingRate, ts: int) -> bool:
        taken = self.funding.on_rate(ev)
        self.counters.bad_funding = self.funding.bad
        return taken

    def _on_funding_payment(self, ev: FundingPayment, ts: int) -> bool:
        taken = self.funding.on_payment(ev)
        self.counters.bad_funding = self.funding.bad
        return taken

    def _on_fees(self, ev: FeeUpdate, ts: int) -> bool:
        """New fee rates (a tier or rebate changed): the instrument, the fee floor and the
        adverse floor's maker fee follow them; rates beyond +/-100 bp are refused."""
        maker, taker = ev.maker_bps, ev.taker_bps
        if not (abs(maker) <= 100.0 and abs(taker) <= 100.0):  # also NaN
            self.counters.bad_fees += 1
            return False
        inst = self.instrument
        if maker == inst.maker_fee_bps and taker == inst.taker_fee_bps:
            return False
        self.instrument = with_fee_rates(inst, maker, taker)
        self.config = contract_config(self._given_config, self.instrument)
        self.strategy = make_strategy(self.config)
        self._wanted = getattr(self.strategy, "wanted", None)
        if self.config.quoting.maker_fee_bps is None:
            self._maker_fee_bps = maker
        self._quote_key = None  # the floor moved: quote again
        self.counters.fee_updates += 1
        return True

    # ----- the quote cycle ----------------------------------------------------------------

    def _quiet_cycle(self, ts: int) -> list[Action]:
        """A book update that moved neither best price: sizes only, which nothing here reads.

        It refreshes staleness (done) and runs the kill switch; the rest of the cycle would
        see exactly the inputs of the last one (trade-flow estimates are refreshed on every
        event but these), so it runs only if the state changed or is REDUCING (escalation
        runs on time), an estimator produced a new value, or the last plan is unfinished
        (cut short by the request budget, or held for it) and a token has come back.
        """
        inputs = (self.vol.count, self.intensity.a, self.intensity.k)
        if inputs != self._cycle_inputs:
            return self._cycle(ts, refresh_flow=False)
        if (self._held or not self.orders.plan_complete) and self.requests.available(ts) > 0:
            return self._cycle(ts, refresh_flow=False)
        position = self.orders.position
        state = self.kill_switch.check(
            ts, position=position, mid=self.unit_value, hawkes_ratio=self._flow[1]
        )
        if state is not self._cycle_state or state is _REDUCING:
            return self._cycle(ts, refresh_flow=False)
        self.counters.cycles += 1
        self.counters.quiet_cycles += 1
        return []

    def _pause_holds(self, ts: int, refresh_flow: bool) -> bool:
        """A market event in a cascade pause that can change nothing but the pause itself.

        With no live order there is nothing to cancel or plan, and a book or a trade moves
        only the limits (volatility, trade rate) and the mark among the other checks' inputs
        (equity, fills, refusals and the connection arrive as other events): the limits are
        derived, and only the cascade, staleness and position checks run, which can lift the
        pause (the next event runs the whole cycle) or deepen it. Anything else runs the whole
        cycle, as does everything with ``shortcuts`` off; the actions are the same.
        """
        if not self.shortcuts or self._syncing or self.orders.has_live():
            return False
        if refresh_flow:
            self._refresh_flow(ts * _NS)
        vol = self.vol
        ks = self.kill_switch
        ks.update_limits(sigma=vol.sigma, sigma_samples=vol.count, trade_intensity=self._flow[0])
        if not ks.cascade_pause_holds(
            ts, self._flow[1], position=self.orders.position, mid=self.unit_value
        ):
            return False
        self.counters.cycles += 1
        self.counters.paused_cycles += 1
        return True

    def _refresh_flow(self, t_s: float) -> None:
        # The Hawkes intensity with its baseline taken from the market's own long-run rate
        # (mu-hat = long rate * (1 - alpha/beta)): equal to that rate in steady state,
        # above it in a burst, whatever market this is.
        hawkes = self.hawkes
        long_rate, ratio = self.cascade.rates(t_s)
        trade_rate = hawkes.intensity(t_s) - hawkes.mu + long_rate * self._unbranched
        self._flow = (
            trade_rate,
            ratio,
            self.buy_flow.intensity(t_s),
            self.sell_flow.intensity(t_s),
        )

    def _cycle(self, ts: int, *, refresh_flow: bool = True) -> list[Action]:
        self.counters.cycles += 1
        ks = self.kill_switch
        orders = self.orders
        if refresh_flow:
            self._refresh_flow(ts * _NS)
        trade_rate, ratio, buy_rate, sell_rate = self._flow
        self._cycle_inputs = (self.vol.count, self.intensity.a, self.intensity.k)
        vol = self.vol
        limits = ks.update_limits(
            sigma=vol.sigma, sigma_samples=vol.count, trade_intensity=trade_rate
        )
        position = orders.position
        mid = self.mid
        state = ks.check(ts, position=position, mid=self.unit_value, hawkes_ratio=ratio)
        self._cycle_state = state
        if state >= _PAUSED or mid != mid or self._syncing:
            self.wanted = (_EMPTY, _EMPTY)
            self._quote_key = None
            if state < _PAUSED:
                return []
            cancels = orders.cancel_all(ts)  # safety first: never held back by the budget
            if state is _HALTED and mid == mid and not self._syncing:
                cancels.extend(self._reduce_halted(ts))
            self.requests.available(ts)
            self.requests.spend(len(cancels))
            return cancels
        if state is not _REDUCING:
            self._reducing_since = -1
            budget = self.requests.available(ts)
            if budget <= 0 and self.shortcuts:
                # No plan could send anything (escalation, which ignores the budget, needs
                # REDUCING): hold until a token is back; wanted quotes stay the last ones.
                self._held = True
                self.counters.held_cycles += 1
                return []
        else:
            budget = self.requests.available(ts)
        self._held = False
        if limits is not None:
            sigma = limits.sigma_used
        else:
            risk = self.config.risk
            sigma = blended_sigma(
                vol.sigma, confidence_from_samples(vol.count, risk.confidence_samples), risk
            )
        committed_bids, committed_asks = orders.committed_exposure()
        max_value = None if limits is None else limits.max_position_value
        binding = ks.binding_limit
        floor_bps = 0.0
        if self.adverse is not None:
            # Rounded to 0.05 bps: a settled fill that moves the estimate less moves no quote.
            floor_bps = round((self.adverse.bps + self._maker_fee_bps) * 20.0) / 20.0
        if self._toxic_guard:
            self._toxic = _toxic_state(
                self._toxic, buy_rate, sell_rate, self._toxic_enter, self._toxic_exit
            )
        # Everything the strategy, the sizing and the limit in lots read this cycle: when it
        # is what the last cycle read, so are the wanted quotes.
        key = (
            self.best_bid,
            self.best_ask,
            sigma,
            self.intensity.a,
            self.intensity.k,
            ratio if ratio > 1.0 or not self._calm_below_one else 1.0,
            (buy_rate, sell_rate) if self._reads_flow else None,
            position,
            committed_bids,
            committed_asks,
            max_value,
            binding,
            state,
            self._fair_ticks,
            floor_bps,
            self._toxic,
            self.funding.skew_fraction,
        )
        if key == self._quote_key and self.shortcuts:
            self.counters.reused_quotes += 1
            bids, asks = self.wanted
            max_lots = self._max_lots
        else:
            self._quote_key = key
            bids, asks, max_lots = self._quote(ts, key, ratio, buy_rate, sell_rate)
        q = orders.position_lots
        reduce_only = state is _REDUCING or (q if q >= 0 else -q) >= max_lots
        take = self._escalation_lots(ts, max_lots) if state is _REDUCING else 0
        reserve = (take, 0) if q < 0 else (0, take)
        if limits is not None and not reduce_only:
            reserve = self._carry_reserve(ts, limits, max_lots, reserve)
        actions = orders.plan(
            bids,
            asks,
            max_lots=max_lots,
            ts_ns=ts,
            budget=budget,
            reduce_only=reduce_only,
            hold_new=self._holding_new(ts),
            reserve=reserve,
            touch=(self._best_bid_ticks, self._best_ask_ticks),
        )
        if take:
            escalation = self._take(ts, take)
            if escalation is not None:
                self.counters.escalations += 1
                actions.append(escalation)
        if actions:
            self.requests.spend(len(actions))
        return actions

    def _quote(
        self, ts: int, key: tuple[Any, ...], ratio: float, buy_rate: float, sell_rate: float
    ) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], int]:
        """Steps 2-4 of the cycle from ``key``'s inputs (with the raw Hawkes ratio and flow):
        ``MarketParams``, the strategy, exact ticks and lots; returns the wanted bids and asks
        and the limit in lots."""
        (
            _,
            _,
            sigma,
            a,
            k,
            _,
            _,
            position,
            pending_bids,
            pending_asks,
            max_value,
            binding,
            state,
            fair_ticks,
            floor_bps,
            toxic,
            funding_skew,
        ) = key
        params = self.aggregator.build(
            ts_ns=ts,
            best_bid=self.best_bid,
            best_ask=self.best_ask,
            sigma=sigma,
            a=a,
            k=k,
            hawkes_ratio=ratio,
            buy_intensity=buy_rate,
            sell_intensity=sell_rate,
            position=position,
            pending_bids=pending_bids,
            pending_asks=pending_asks,
            max_position_value=max_value,
            binding_limit=binding,
            trading_state=state,
            fair_shift_ticks=fair_ticks,
            floor_bps=floor_bps,
            toxic=toxic,
            toxic_widen_bps=self._toxic_widen_bps,
            unit_value=self.unit_value,
            funding_skew=funding_skew,
        )
        self.params = params
        stats = self.quoting_stats
        stats.cycles += 1
        stats.fair_shift_bps += (
            abs(params.fair_shift) / params.mid * 1e4 if params.mid > 0.0 else 0.0
        )
        stats.floor_bps += floor_bps
        stats.toxic_cycles += toxic != 0
        sizer = self.sizer
        bb = self._best_bid_ticks
        ba = self._best_ask_ticks
        if self._wanted is not None:
            bids, asks = self._wanted(params, sizer, bb, ba)
        else:
            quotes = self.strategy.quote(params)
            bids = sizer.exact_quotes(_BUY, quotes.bids, bb, ba)
            asks = sizer.exact_quotes(_SELL, quotes.asks, bb, ba)
        if state is _REDUCING:
            # Only the side that shrinks |position| may rest.
            if position >= 0.0:
                bids = _EMPTY
            if position <= 0.0:
                asks = _EMPTY
        if self.conviction is not None:
            bids = self._convict(_BUY, bids, params)
            asks = self._convict(_SELL, asks, params)
        if self._spot:
            bids, asks = self._within_balances(bids, asks)
        self.wanted = (bids, asks)
        max_lots = sizer.size_lots(params.effective_max_position())
        self._max_lots = max_lots
        if bids or asks:
            self.idle_reason = ""
        elif state is not _REDUCING:
            self.idle_reason = self._why_idle(params, max_lots)
        return bids, asks, max_lots

    def _carry_reserve(
        self, ts: int, limits: PositionLimits, max_lots: int, reserve: tuple[int, int]
    ) -> tuple[int, int]:
        """``reserve`` plus the lots the side that pays funding within the horizon may not
        add (``risk/carry.py``): its limit with the payment in its per-unit risk, in lots,
        short of ``max_lots``."""
        side, carry = self.funding.carry(ts, limits.horizon_s)
        unit = self.unit_value
        if not side or not unit > 0.0:
            return reserve
        risk = self.config.risk
        paying = paying_side_limit_usd(limits, num_sigmas=risk.num_sigmas, carry=carry)
        lots = self.sizer.size_lots(effective_max_position(paying / unit, risk.max_position_cap))
        cut = max_lots - lots
        if cut <= 0:
            return reserve
        self.counters.carry_cycles += 1
        if side > 0:  # longs pay: bids may not build the long as far
            return reserve[0] + cut, reserve[1]
        return reserve[0], reserve[1] + cut

    def _escalation_lots(self, ts: int, max_lots: int) -> int:
        """Lots to take now with an immediate-or-cancel order while REDUCING (0: none).

        REDUCING for ``escalate_after_s`` means the passive quotes did not bring the position
        back: take the excess over the limit (at least one minimum order, never more than the
        position), one order at a time, at most every ``escalate_interval_s``, and not while a
        snapshot waits for orders on their way."""
        cfg = self.config.orders
        if self._reducing_since < 0:
            self._reducing_since = ts
        after = cfg.escalate_after_s
        if (
            after is None
            or ts - self._reducing_since < after * 1e9
            or ts < self._next_escalation_ns
            or self._holding_new(ts)
            or self.orders.ioc_in_flight()
        ):
            return 0
        q = self.orders.position_lots
        held = q if q >= 0 else -q
        return min(held, max(held - max_lots, self.sizer.min_lots(self._best_bid_ticks)))

    def _reduce_halted(self, ts: int) -> list[Action]:
        """HALTED with the position beyond what ``kill_switch.halt_position`` allows: take the
        excess back while the market data is fresh (the halt stays latched)."""
        keep = self._halt_position
        ks = self.kill_switch
        last = ks.last_market_ts_ns
        if (
            keep == "keep"
            or not ks.connected
            or last is None
            or ts - last >= self._stale_pause_ns
            or ts < self._next_escalation_ns
            or self._holding_new(ts)
            or self.orders.ioc_in_flight()
        ):
            return []
        q = self.orders.position_lots
        held = q if q >= 0 else -q
        target = 0 if keep == "flat" else self.sizer.size_lots(ks.max_position(self.unit_value))
        if held <= target:
            return []
        order = self._take(ts, held - target)
        if order is None:
            return []
        self.counters.halt_reductions += 1
        return [order]

    def _take(self, ts: int, lots: int) -> Place | None:
        """An immediate-or-cancel order that shrinks |position| by up to ``lots``, priced at
        most ``escalate_slippage_bps`` through the touch on the venue's price grid.

        It never flips the position: its size and every order still able to fill on its side
        (resting, on its way, settling) add up to at most |position|. When they leave no room
        for a minimum order, nothing is sent now; the plan, told of the lots wanted, cancels
        passive orders outside the room meanwhile."""
        orders = self.orders
        q = orders.position_lots
        if q == 0:
            return None
        sizer = self.sizer
        slip = self.config.orders.escalate_slippage_bps * 1e-4
        pending_bids, pending_asks = orders.pending_exposure_lots()
        if q > 0:
            side, covered = _SELL, pending_asks
            ticks = sizer.taking_ticks(side, math.floor(self._best_bid_ticks * (1.0 - slip)))
        else:
            side, covered = _BUY, pending_bids
            ticks = sizer.taking_ticks(side, math.ceil(self._best_ask_ticks * (1.0 + slip)))
        if ticks <= 0:
            return None
        held = q if q > 0 else -q
        room = held - covered
        lots = min(lots, room)
        if lots < sizer.min_lots(ticks):
            return None
        self._next_escalation_ns = ts + int(self.config.orders.escalate_interval_s * 1e9)
        return orders.place_ioc(side, ticks, lots, ts)

    def _why_idle(self, params: MarketParams, max_lots: int) -> str:
        """The reason an active engine quotes nothing, in the trader's units (rare path)."""
        sizer = self.sizer
        mid = params.mid
        minimum = sizer.min_lots(sizer.nearest_ticks(mid))
        min_size = sizer.lots_to_size(minimum)
        unit = self.unit_value
        order_usd = params.order_size * unit
        if order_usd < sizer.min_notional or params.order_size < sizer.lot_size:
            return (
                f"quoting nothing: {order_usd:,.2f} USD order under the venue's minimum of "
                f"{max(sizer.min_notional, sizer.lot_size * unit):,.2f} USD "
                f"({min_size:g} contracts): raise order_size or set order_size_usd"
            )
        if max_lots < minimum:
            return (
                f"quoting nothing: the position limit "
                f"({params.effective_max_position():.6g} contracts) is under one minimum order "
                f"({min_size:g} contracts)"
            )
        quotes = self.strategy.quote(params)
        if quotes.bids or quotes.asks:
            return "quoting nothing: every quote rounds below the venue's minimum order"
        return ""

    def _convict(
        self, side: Side, levels: tuple[tuple[int, int], ...], params: MarketParams
    ) -> tuple[tuple[int, int], ...]:
        """Conviction sizing: each level's lots capped by what its score affords.

        The conviction score of a quote is the Hawkes flow imbalance in its direction:
        ``(1 + imbalance) / 2`` for bids, ``(1 - imbalance) / 2`` for asks, so the side the
        aggressive flow is on (buyers lifting offers: bids) quotes more.
        """
        conviction = self.conviction
        if not levels or conviction is None:
            return levels
        imbalance = params.flow_imbalance
        score = 0.5 * (1.0 + imbalance) if side is _BUY else 0.5 * (1.0 - imbalance)
        exposure = abs(params.position) * self.unit_value
        out = []
        for ticks, lots in levels:
            cap = conviction.size_lots(score, ticks, exposure)
            if cap < lots:
                lots = cap
            if lots > 0:
                out.append((ticks, lots))
        return tuple(out)

    # ----- reporting ----------------------------------------------------------------------

    @property
    def position(self) -> float:
        return self.orders.position

    @property
    def unit_value(self) -> float:
        """USD value of one contract at the mid (``Instrument.unit_value``): the price the
        limits divide by (NaN before the first book, like the mid, for every kind but
        inverse, whose contract is worth its face value)."""
        if self._unit_inverse:
            return self._unit_scale
        return self.mid * self._unit_scale

    def _within_balances(
        self, bids: tuple[tuple[int, int], ...], asks: tuple[tuple[int, int], ...]
    ) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        """Spot: asks sell at most the base asset held (the position), bids spend at most the
        quote balance the venue last reported (all of it while it is unknown: the venue
        refuses what it cannot cover)."""
        held = self.orders.position_lots
        asks = _cap_lots(asks, held if held > 0 else 0)
        balance = self.kill_switch.balance
        if balance is not None and bids:
            value_per_lot = self.sizer.lot_size * self._unit_scale * self.sizer.tick_size
            out: list[tuple[int, int]] = []
            left = balance
            for ticks, lots in bids:
                afford = int(left // (ticks * value_per_lot)) if ticks > 0 else 0
                lots = min(lots, afford)
                if lots <= 0:
                    break
                out.append((ticks, lots))
                left -= ticks * value_per_lot * lots
            bids = tuple(out)
        return bids, asks

    def _book_inverse(self, lots: int, price: float, fee: float) -> None:
        """Inverse: ``lots`` bought (negative: sold) at ``price`` and ``fee`` coin paid."""
        if lots and price > 0.0:
            self._coin_cash += lots * self.sizer.lot_size * self._unit_scale / price
        self._coin_cash -= fee

    def pnl_usd(self) -> float:
        """Cash from fills (after fees) plus the position marked at the mid (inverse: the PnL
        in coin, ``cash - q * C / mid``, at the mid; fees of inverse fills are in coin)."""
        mid = self.mid
        if self._unit_inverse:
            if mid != mid:
                return 0.0
            q = self.orders.position * self._unit_scale
            return (self._coin_cash + self.funding.cash - q / mid) * mid
        mark = self.orders.position * mid if mid == mid else 0.0
        return self.orders.cash_usd + self.funding.cash + mark

    @property
    def wanted_touch(self) -> tuple[int, int]:
        """The best wanted bid and ask in ticks (0: none wanted on that side); cheap, for
        per-event bookkeeping (``status()`` has the whole picture)."""
        bids, asks = self.wanted
        return (bids[0][0] if bids else 0, asks[0][0] if asks else 0)

    def halt(self, reason: str, *, persist: bool = True) -> None:
        """Latch HALTED (manual): the next event's cycle cancels every order. A shutdown's
        halt (``persist=False``) is not one a restart must keep."""
        self.kill_switch.halt(reason, persist=persist)

    @property
    def trading_state(self) -> TradingState:
        """The kill switch's state as of the last cycle."""
        return self.kill_switch.state

    def status(self) -> EngineStatus:
        """A typed snapshot for displays, logs, metrics and tests (allocates; not for the hot
        path): the wanted quotes, what rests at the venue as far as its answers say, and why a
        wanted best level does not rest."""
        ks = self.kill_switch
        limits = ks.limits
        orders = self.orders
        pending_bids, pending_asks = orders.pending_exposure()
        mid = self.mid
        t_s = self.now_ns * _NS
        return EngineStatus(
            ts_ns=self.now_ns,
            trading_state=ks.state.label,
            reasons=tuple(f"{r.trigger}: {r.detail}" for r in ks.reasons),
            quoting_nothing=self.idle_reason,
            market=MarketStatus(
                mid=mid if mid == mid else None,
                best_bid=self.best_bid if self.best_bid == self.best_bid else None,
                best_ask=self.best_ask if self.best_ask == self.best_ask else None,
                sigma=self.vol.sigma,
                hawkes_ratio=self.cascade.ratio(t_s),
                trade_rate=self.cascade.long_rate(t_s),
                fill_intensity_a=self.intensity.a,
                fill_intensity_k=self.intensity.k,
            ),
            limits=LimitStatus(
                effective_max_position=ks.max_position(self.unit_value),
                max_position_value=None if limits is None else limits.max_position_value,
                binding_limit=str(ks.binding_limit),
                sigma_used=None if limits is None else limits.sigma_used,
            ),
            position=orders.position,
            bids=self._side_status(_BUY, self.wanted[0], pending_bids),
            asks=self._side_status(_SELL, self.wanted[1], pending_asks),
            open_orders=orders.live_orders(),
            settling_orders=orders.settling_orders(),
            tracked_orders=len(orders.orders),
            pnl_usd=self.pnl_usd(),
            fees_usd=orders.fees_usd,
            funding_usd=self._funding_usd(),
            funding_payments=self.funding.payments,
            fills=orders.fills,
            needs_reconcile=orders.needs_reconcile,
            counters=msgspec.structs.replace(self.counters),
            order_counters=msgspec.structs.replace(orders.counters),
            refusals=self.refusals.counts(),
            refusals_by_class={str(k): v for k, v in self.refusals.by_class.items()},
            last_refusal=self.refusals.last,
        )

    def _funding_usd(self) -> float:
        """Funding received (negative: paid) since the start, USD (inverse: the coin at the
        mid)."""
        cash = self.funding.cash
        if self._unit_inverse:
            return cash * self.mid if self.mid == self.mid else 0.0
        return cash

    def _side_status(
        self, side: Side, wanted: tuple[tuple[int, int], ...], pending: float
    ) -> SideStatus:
        sizer = self.sizer
        to_price = sizer.ticks_to_price
        to_size = sizer.lots_to_size
        ours = [o for o in self.orders.orders.values() if o.side is side and not o.ioc]
        rests = [
            o
            for o in ours
            if o.acked and (o.state is _RESTING or o.state is _CANCELLING or o.state is _MODIFYING)
        ]
        rests.sort(key=lambda o: -o.price_ticks if side is _BUY else o.price_ticks)
        resting = tuple(
            RestingOrder(
                cloid=o.cloid,
                price=to_price(o.price_ticks),
                size=to_size(o.remaining_lots),
                leaving=o.state is not _RESTING,
            )
            for o in rests
        )
        reason = NotResting.NONE
        if wanted:
            reason = self._why_not_resting(side, wanted[0], ours)
        return SideStatus(
            wanted=tuple(QuoteLevel(price=to_price(t), size=to_size(n)) for t, n in wanted),
            resting=resting,
            pending=pending,
            not_resting=reason,
        )

    def _why_not_resting(self, side: Side, best: tuple[int, int], ours: list[TrackedOrder]) -> str:
        """Why the wanted ``best`` level of ``side`` does not rest ("" when an order the venue
        acknowledged matches it within the plan's tolerances)."""
        cfg = self.config.orders
        ticks, lots = best
        for o in ours:
            if (
                o.state is _RESTING
                and o.acked
                and abs(o.price_ticks - ticks) <= cfg.price_tolerance_ticks
                and abs(o.remaining_lots - lots) <= cfg.size_tolerance * lots
            ):
                return NotResting.NONE
        orders = self.orders
        ts = self.now_ns
        if any(o.state is _PLACING for o in ours):
            return NotResting.IN_FLIGHT
        if orders.backoff_until(side) > ts:
            return NotResting.BACKOFF
        if self._holding_new(ts):
            return NotResting.SNAPSHOT
        if self._held or not orders.plan_complete:
            return NotResting.BUDGET
        if any(o.state is _CANCELLING or o.state is _MODIFYING for o in ours):
            return NotResting.IN_FLIGHT
        q = orders.position_lots
        room = self._max_lots - q if side is _BUY else self._max_lots + q
        bid_lots, ask_lots = orders.pending_exposure_lots()
        exposure = bid_lots if side is _BUY else ask_lots
        if room - exposure < self.sizer.min_lots(ticks):
            return NotResting.CAP
        return NotResting.WAITING
