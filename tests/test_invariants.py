"""Random command sequences against the engine and a venue that behaves as Hyperliquid does.

The fake venue follows ``reference/hyperliquid-verified.md`` section 7 (never what the engine
assumes):

- requests travel on one connection and reach the venue in the order sent, then wait in a
  pending block; ``block_commits`` applies them. Within a block, requests are sorted by class:
  post-only (ALO) places and modifies first, then cancels, then immediate-or-cancel places
  (the engine's escalations), arrival order within each class. A request's answer (the
  ``post`` reply) is produced only when its block commits;
- a ``RequestSnapshot`` (``info``) is answered at once from committed state: it omits every
  request still on its way or waiting for a block;
- a request committed more than ``orders.request_expiry_s`` after it was sent is refused
  (``Action already expired``, REJECTED) and does nothing;
- an IOC takes against the touch (its depth is drawn with the market) up to its size at its
  limit price; the rest is cancelled. It answers CANCELED with the size it took (0 when nothing
  matched), as the Hyperliquid adapter maps ``filled`` / ``could not immediately match``;
- fills carry the block clock; snapshots the API server's clock, skewed by up to +-500 ms (the
  engine must not care).

Answers and snapshots come on one stream, fills on another, each in order; hypothesis chooses
which stream delivers next, so a fill can arrive long after the cancel that followed it, or
before its order's answer. It also drops and duplicates messages, as a real venue can, lets
time pass (so requests expire and the engine asks for snapshots), and shrinks the account so
the limit binds and the position ends beyond it (REDUCING, then IOC escalations). Orders left
by "an earlier process" may rest at the venue when the engine starts. After every step,
against the venue's own state (the truth):

- the worst case ``position + every bid that could still fill`` (resting, in a request on its
  way, or waiting for a block) never grows past ``Q + 1 lot``, and likewise for asks. A
  shrinking ``Q`` cannot recall orders already out, so there the engine must only never add
  exposure;
- the engine's worst case is never less than the venue's (it never undercounts exposure);
- once both streams are drained, the engine's position is the venue's;
- every post-only price sent is behind the touch, on the tick grid and above min notional;
  every IOC shrinks |position| and never flips it.

When a fill report is lost the engine cannot know of it until a snapshot asked for after the
loss (``request_id`` above every request sent by then) is adopted; a snapshot the engine defers
(an order of unknown fate) settles nothing. The checks that depend on the lost fill wait for
that snapshot. A fill no clock can place (a fill of an order the engine never knew after a
snapshot was adopted, or one a snapshot's count of a live order absorbs) is reserved as
exposure until the next snapshot (``OrderManager.position_unsure``): the position check waits
for it too, the exposure checks do not. The invariant must bind to prove anything:
the test asserts, over the run, that a good share of examples takes the venue's worst case to
80 % of the limit or more, and that requests expire and blocks re-sort them; IOC escalations
are counted (``target``, ``event``).
"""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import HealthCheck, event, settings, target
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from market_maker.config import (
    AppConfig,
    DynamicRiskConfig,
    FundingConfig,
    KillSwitchConfig,
    LadderConfig,
    OrdersConfig,
    QuotingConfig,
    StrategyConfig,
)
from market_maker.engine import QuoteEngine
from market_maker.model import (
    AccountUpdate,
    AckStatus,
    BookUpdate,
    Cancel,
    Fill,
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

S = 1_000_000_000
MS = 1_000_000
LOT = 0.001
TICK = 0.5
INST = Instrument(symbol="TEST", tick_size=TICK, lot_size=LOT, min_notional=5.0)
NOT_FOUND = "Order was never placed, already canceled, or filled."
EXPIRED = "Action already expired"
NO_MATCH = "Order could not immediately match against any resting orders. asset=0"

RUNS = {"runs": 0, "bound": 0, "with_ioc": 0, "iocs": 0, "expired": 0, "reordered": 0, "unsure": 0}
"""Over the whole hypothesis run: examples, those reaching 80 % of the limit, IOCs sent..."""


def lots(size: float) -> int:
    return round(size / LOT)


def block_class(action) -> int:
    """Hyperliquid's order inside a block: no GTC/IOC order (ALO places and modifies, which
    place post-only), then cancels, then actions with an IOC order."""
    if isinstance(action, Cancel):
        return 1
    if isinstance(action, Place) and not action.post_only:
        return 2
    return 0


class EngineAgainstHyperliquidVenue(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine: QuoteEngine | None = None
        self.ts = S  # the blocks' clock (and ours: the engine is told times on it)
        self.skew_ns = 0  # the API server's clock minus the blocks' clock
        self.expiry_ns = S
        self.bid_ticks = 2000  # 1000.0 USD
        self.spread_ticks = 1
        self.touch = [1000, 1000]  # lots others offer at the best bid, at the best ask
        self.requests: list = []  # (action, sent ts) on their way to the venue, in order
        self.block: list = []  # (action, sent ts) at the venue, waiting for the block
        self.acks: list = []  # answers and snapshots on their way to the engine, in order
        self.fills: list = []  # fill reports on their way to the engine, in order
        self.live: dict[str, list] = {}  # committed: cloid -> [side, ticks, remaining, filled]
        self.position = 0  # the venue's (committed), lots
        self.say_filled = True
        self.fill_count = 0
        self.last_delivered: object | None = None
        self.lost_rid: int | None = None  # a fill report was lost when requests up to this
        self.last_rid = 0  # ... id had been sent; the highest request id sent
        self.synced = True
        self.worst = (0, 0)
        self.peak_use = 0.0  # the venue's worst case / the limit at its highest, within it
        self.iocs = 0

    def teardown(self) -> None:
        if self.engine is None:
            return
        RUNS["runs"] += 1
        RUNS["bound"] += self.peak_use >= 0.8
        RUNS["with_ioc"] += self.iocs > 0
        RUNS["iocs"] += self.iocs
        target(self.peak_use, label="venue worst case / limit")  # steer to where it binds
        target(float(self.iocs), label="IOC escalations")
        if self.peak_use >= 0.8:
            event("limit use >= 80%")

    # ----- set-up -------------------------------------------------------------------------

    @rule(
        kind=st.sampled_from(["glft", "ladder", "avellaneda_stoikov", "symmetric"]),
        static=st.integers(1, 60),
        modify=st.booleans(),
        skew=st.floats(0.0, 1.0),
        say_filled=st.booleans(),
        orphans=st.lists(st.tuples(st.booleans(), st.integers(1, 8)), max_size=2),
        clock_skew_ms=st.integers(-500, 500),
        escalate_after=st.sampled_from([0.1, 0.5, 2.0]),
        quoting=st.booleans(),
        # A funding rate (per interval) with the skew on, strong enough to move the quotes
        # by many ticks; the 60 s interval puts a funding time within the horizon now and
        # then, so the paying side's room is cut too.
        funding=st.sampled_from([None, (0.0005, 60.0), (-0.04, 60.0), (0.04, 3_600.0)]),
    )
    @precondition(lambda self: self.engine is None)
    def start(
        self,
        kind,
        static,
        modify,
        skew,
        say_filled,
        orphans,
        clock_skew_ms,
        escalate_after,
        quoting,
        funding,
    ):
        orders = OrdersConfig(
            use_modify=modify,
            max_requests_per_s=1000,
            request_burst=1000,
            escalate_after_s=escalate_after,
            escalate_interval_s=0.2,
        )
        cfg = AppConfig(
            risk=DynamicRiskConfig(max_position=static * LOT),
            # Only the checks under test: no halts from rejections, staleness or losses (the
            # account shrinks to make the limit bind, not to stop the engine).
            kill_switch=KillSwitchConfig(
                max_rejections=1000,
                stale_pause_after_s=1e5,
                stale_halt_after_s=1e6,
                max_daily_loss_usd=1e9,
                max_drawdown_pct=100.0,
            ),
            strategy=StrategyConfig(
                kind=kind,
                order_size=0.008,
                skew_multiplier=skew,
                min_half_spread_bps=0.0,
                symmetric_half_spread_bps=3.0,
                as_horizon_s=1.0,
            ),
            ladder=LadderConfig(levels=3, target_liquidity=0.024),
            # Every [quoting] feature on, strong enough to move quotes: a fair value that
            # shifts with the sizes, a floor from our fills, a guard that steps a side back.
            quoting=QuotingConfig(
                fair_value=True,
                imbalance_beta_bps=3.0,
                adverse_floor=True,
                adverse_prior_bps=0.5,
                adverse_prior_fills=1.0,
                maker_fee_bps=0.5,
                toxic_guard=True,
                toxic_enter=0.3,
                toxic_exit=0.1,
            )
            if quoting
            else QuotingConfig(),
            funding=FundingConfig(skew=True, skew_max_bps=50.0, skew_horizon_s=60.0),
            orders=orders,
        )
        self.expiry_ns = int(orders.request_expiry_s * S)
        self.skew_ns = clock_skew_ms * MS
        self.say_filled = say_filled
        for i, (buy, size) in enumerate(orphans):
            side = Side.BUY if buy else Side.SELL
            price = self.bid_ticks - 4 if buy else self.bid_ticks + 5
            self.live[f"0xorphan{i}"] = [side, price, size, 0]
        self.worst = self.venue_worst_case()  # an earlier process's orders are already out
        self.engine = QuoteEngine(cfg, INST)
        self.sides: dict[str, Side] = {}  # cloid -> side, of every order the engine sent
        self.synced = False
        started = self.engine.start(self.ts)
        self.last_rid = max(a.request_id for a in started)
        self.requests.extend((a, self.ts) for a in started)
        if funding is not None:
            rate, interval = funding
            self.send(FundingRate(ts_ns=self.ts, rate=rate, interval_s=interval))
        self.send(self.book())

    # ----- helpers ------------------------------------------------------------------------

    def book(self) -> BookUpdate:
        bid = self.bid_ticks * TICK
        ask = (self.bid_ticks + self.spread_ticks) * TICK
        return BookUpdate(
            ts_ns=self.ts,
            bids=((bid, max(self.touch[0], 1) * LOT),),
            asks=((ask, max(self.touch[1], 1) * LOT),),
        )

    def step_time(self, ns: int = S // 20) -> None:
        self.ts += ns

    def send(self, ev) -> None:
        assert self.engine is not None
        actions = self.engine.on_event(ev)
        for a in actions:
            self.last_rid = max(self.last_rid, a.request_id)
        self.check_actions(actions)
        self.requests.extend((a, self.ts) for a in actions)

    def check_actions(self, actions) -> None:
        e = self.engine
        for a in actions:
            if isinstance(a, (Place, Modify)):
                ticks = a.price / TICK
                assert abs(ticks - round(ticks)) < 1e-6, a
                assert a.price * a.size >= INST.min_notional * (1 - 1e-9), a
                assert abs(a.size / LOT - round(a.size / LOT)) < 1e-6, a
            if isinstance(a, Place) and not a.post_only:
                # An escalation: it shrinks |position| as the engine knows it, never flips it.
                self.iocs += 1
                event("IOC escalation sent")
                q = e.orders.position_lots
                assert q != 0 and (a.side is Side.SELL) == (q > 0), (a, q)
                assert lots(a.size) <= abs(q), (a, q)
                continue
            if isinstance(a, (Place, Modify)):
                side = a.side if isinstance(a, Place) else e.orders.orders[a.new_cloid].side
                if side is Side.BUY:
                    assert a.price <= e.best_bid + 1e-9 and a.price < e.best_ask, a
                else:
                    assert a.price >= e.best_ask - 1e-9 and a.price > e.best_bid, a

    def crosses(self, side: Side, price_ticks: int) -> bool:
        if side is Side.BUY:
            return price_ticks >= self.bid_ticks + self.spread_ticks
        return price_ticks <= self.bid_ticks

    def answer(self, action, status, reason="", filled=None) -> None:
        self.acks.append(
            OrderAck(
                ts_ns=self.ts,
                cloid=action.cloid,
                status=status,
                reason=reason,
                request_id=action.request_id,
                filled_size=filled * LOT if filled is not None and self.say_filled else None,
            )
        )

    def fill(self, cloid: str, side: Side, ticks: int, n: int) -> None:
        """Our order ``cloid`` traded ``n`` lots in a block committed now."""
        self.fill_count += 1
        fid = f"f{self.fill_count}"
        self.fills.append(
            Fill(
                ts_ns=self.ts,
                cloid=cloid,
                price=ticks * TICK,
                size=n * LOT,
                side=side,
                fill_id=fid,
                exchange_ts_ns=self.ts,  # the block's time
            )
        )
        self.position += n if side is Side.BUY else -n

    # ----- market -------------------------------------------------------------------------

    @rule(
        move=st.integers(-6, 6),
        spread=st.integers(1, 4),
        depth=st.tuples(st.sampled_from([1, 3, 10, 1000]), st.sampled_from([1, 3, 10, 1000])),
    )
    @precondition(lambda self: self.engine is not None)
    def market_moves(self, move, spread, depth):
        self.step_time()
        self.bid_ticks = max(100, self.bid_ticks + move)
        self.spread_ticks = spread
        self.touch = list(depth)
        self.send(self.book())

    @rule(buy=st.booleans(), depth=st.integers(0, 8))
    @precondition(lambda self: self.engine is not None)
    def public_trade(self, buy, depth):
        self.step_time()
        price = (self.bid_ticks + (self.spread_ticks + depth if buy else -depth)) * TICK
        side = Side.BUY if buy else Side.SELL
        self.send(Trade(ts_ns=self.ts, price=price, size=0.01, aggressor=side))

    @rule(value=st.sampled_from([0.3, 0.5, 1.0, 2.0, 3.0, 10.0, 100.0]), wiped=st.integers(0, 19))
    @precondition(lambda self: self.engine is not None)
    def account_update(self, value, wiped):
        """Equity moves the limit; rarely it is gone (a 100 % drawdown latches HALTED)."""
        self.step_time()
        self.send(AccountUpdate(ts_ns=self.ts, account_value=0.0 if wiped == 0 else value))

    @rule(seconds=st.sampled_from([0.1, 0.4, 1.0, 3.0]))
    @precondition(lambda self: self.engine is not None)
    def time_passes(self, seconds):
        self.step_time(int(seconds * S))
        self.send(Timer(ts_ns=self.ts))

    # ----- the venue ----------------------------------------------------------------------

    @rule(n=st.integers(1, 4), commit=st.booleans(), reject=st.booleans())
    @precondition(lambda self: self.engine is not None and self.requests)
    def requests_reach_the_venue(self, n, commit, reject):
        """The first ``n`` requests on their way arrive (then, if ``commit``, a block commits)."""
        for _ in range(min(n, len(self.requests))):
            self.arrive(*self.requests.pop(0))
        if commit:
            self.commit(reject)

    def arrive(self, a, sent_ns: int) -> None:
        if isinstance(a, RequestSnapshot):
            self.answer_snapshot(a)  # info: at once, from committed state
        else:
            self.block.append((a, sent_ns))

    def answer_snapshot(self, a: RequestSnapshot) -> None:
        self.acks.append(
            VenueSnapshot(
                ts_ns=self.ts,
                exchange_ts_ns=self.ts + self.skew_ns,  # the API server's clock
                position=self.position * LOT,
                orders=tuple(
                    OpenOrder(
                        cloid=c,
                        side=side,
                        price=ticks * TICK,
                        size=left * LOT,
                        filled_size=filled * LOT,
                    )
                    for c, (side, ticks, left, filled) in self.live.items()
                ),
                request_id=a.request_id,
            )
        )

    @rule(reject=st.booleans())
    @precondition(lambda self: self.engine is not None and self.block)
    def block_commits(self, reject):
        self.commit(reject)

    def commit(self, reject: bool) -> None:
        block = sorted(self.block, key=lambda r: block_class(r[0]))  # stable: arrival order
        if block != self.block:
            RUNS["reordered"] += 1
        self.block = []
        for a, sent_ns in block:
            if self.ts - sent_ns > self.expiry_ns:
                RUNS["expired"] += 1
                self.answer(a, AckStatus.REJECTED, EXPIRED)
            else:
                self.handle(a, reject)

    def handle(self, a, reject: bool) -> None:
        if isinstance(a, Place) and not a.post_only:
            self.take(a, reject)
        elif isinstance(a, Place):
            ticks = round(a.price / TICK)
            if reject or self.crosses(a.side, ticks):
                self.answer(a, AckStatus.REJECTED, "Post only order would have immediately matched")
            else:
                self.live[a.cloid] = [a.side, ticks, lots(a.size), 0]
                self.answer(a, AckStatus.ACCEPTED, filled=0)
        elif isinstance(a, Cancel):
            order = self.live.pop(a.cloid, None)
            if order is None:
                self.answer(a, AckStatus.NOT_FOUND, NOT_FOUND)
            else:
                self.answer(a, AckStatus.CANCELED, filled=order[3])
        elif isinstance(a, Modify):
            old = self.live.get(a.cloid)
            ticks = round(a.price / TICK)
            if old is None:
                self.answer(a, AckStatus.NOT_FOUND, "Cannot modify canceled or filled order")
            elif reject:
                self.answer(a, AckStatus.REJECTED, "rate limited")
            elif self.crosses(old[0], ticks):
                del self.live[a.cloid]
                self.answer(a, AckStatus.CANCELED, "Error placing new order during modify", old[3])
            else:
                del self.live[a.cloid]
                self.live[a.new_cloid] = [old[0], ticks, lots(a.size), 0]
                self.answer(a, AckStatus.ACCEPTED, filled=old[3])

    def take(self, a: Place, reject: bool) -> None:
        """An immediate-or-cancel order: takes the touch up to its size and limit price; the
        rest is cancelled. The answer says what it took (never rests, never in a snapshot)."""
        if reject:
            self.answer(a, AckStatus.REJECTED, "rate limited")
            return
        ticks = round(a.price / TICK)
        if a.side is Side.BUY:
            touch_ticks, i = self.bid_ticks + self.spread_ticks, 1
            reach = ticks >= touch_ticks
        else:
            touch_ticks, i = self.bid_ticks, 0
            reach = ticks <= touch_ticks
        took = min(lots(a.size), self.touch[i]) if reach else 0
        if took:
            self.touch[i] -= took
            self.fill(a.cloid, a.side, touch_ticks, took)
            self.answer(a, AckStatus.CANCELED, "filled", filled=took)
        else:
            self.answer(a, AckStatus.CANCELED, NO_MATCH, filled=0)

    @rule(data=st.data())
    @precondition(lambda self: self.engine is not None and self.live)
    def venue_fills(self, data):
        """Another account's taker, in a block committed now, fills one of our orders."""
        cloid = data.draw(st.sampled_from(sorted(self.live)))
        order = self.live[cloid]
        side, ticks, remaining, _ = order
        n = data.draw(st.integers(1, remaining))
        self.fill(cloid, side, ticks, n)
        order[2] -= n
        order[3] += n
        if order[2] == 0:
            del self.live[cloid]

    # ----- delivery: hypothesis picks the stream ----------------------------------------

    def deliver(self, msg) -> None:
        self.step_time(S // 100)
        self.last_delivered = msg
        deferred = self.engine.orders.counters.deferred_snapshots
        self.send(msg.__class__(**{**_fields(msg), "ts_ns": self.ts}))
        if isinstance(msg, VenueSnapshot):
            # A snapshot the engine could not read (an order of unknown fate) proves nothing;
            # only one asked for after the loss is sure to hold the lost fill (it was taken
            # later, and the engine's position follows it).
            adopted = self.engine.orders.counters.deferred_snapshots == deferred
            if adopted and self.lost_rid is not None and msg.request_id > self.lost_rid:
                self.lost_rid = None
            self.synced = True

    @rule(n=st.integers(1, 3))
    @precondition(lambda self: self.engine is not None and self.acks)
    def ack_stream_delivers(self, n):
        for _ in range(min(n, len(self.acks))):
            self.deliver(self.acks.pop(0))

    @rule(n=st.integers(1, 3))
    @precondition(lambda self: self.engine is not None and self.fills)
    def fill_stream_delivers(self, n):
        for _ in range(min(n, len(self.fills))):
            self.deliver(self.fills.pop(0))

    @rule()
    @precondition(lambda self: self.engine is not None and self.acks)
    def an_answer_is_lost(self):
        self.acks.pop(0)

    @rule()
    @precondition(lambda self: self.engine is not None and self.fills)
    def a_fill_report_is_lost(self):
        self.fills.pop(0)
        self.lost_rid = self.last_rid

    @rule()
    @precondition(lambda self: self.engine is not None and self.last_delivered is not None)
    def a_message_comes_twice(self):
        self.deliver(self.last_delivered)

    @rule(reject=st.booleans())
    @precondition(
        lambda self: self.engine is not None and (self.requests or self.block or self.acks)
    )
    def round_trip(self, reject):
        """Everything in flight reaches the venue, one block commits it, and both streams
        deliver all of it."""
        while self.requests:
            self.arrive(*self.requests.pop(0))
        self.commit(reject)
        while self.acks or self.fills:
            self.deliver((self.acks or self.fills).pop(0))

    # ----- invariants ---------------------------------------------------------------------

    def venue_worst_case(self) -> tuple[int, int]:
        """``(position + bids that could fill, -(position - asks that could fill))`` in lots,
        over committed orders and requests on their way or waiting for a block."""
        bids = sum(r for s, _, r, _ in self.live.values() if s is Side.BUY)
        asks = sum(r for s, _, r, _ in self.live.values() if s is Side.SELL)
        for a, sent_ns in self.requests + self.block:
            if self.ts - sent_ns > self.expiry_ns:
                continue  # it will be refused as expired whenever it commits: it can do nothing
            if isinstance(a, Place):
                bids += lots(a.size) if a.side is Side.BUY else 0
                asks += lots(a.size) if a.side is Side.SELL else 0
            elif isinstance(a, Modify) and a.cloid in self.live:
                buy = self.live[a.cloid][0] is Side.BUY
                bids += lots(a.size) if buy else 0
                asks += 0 if buy else lots(a.size)
        return self.position + bids, -(self.position - asks)

    @invariant()
    def worst_case_at_the_venue_never_grows_past_the_limit(self):
        e = self.engine
        if e is None:
            return
        high, low = self.venue_worst_case()
        if self.lost_rid is not None:
            # Blind until a snapshot after the loss: the engine is held to "never grows" from
            # the moment it can know, and to cancelling whatever no longer fits.
            self.worst = (high, low)
            return
        limit = math.floor(e.kill_switch.max_position(e.mid) / LOT + 1e-9)
        if limit > 0:
            worst = max(high, low)
            if worst <= limit + 1:  # within the limit (a shrinking one can leave it behind)
                self.peak_use = max(self.peak_use, min(worst / limit, 1.0))
        prev_high, prev_low = self.worst
        assert high <= limit + 1 or high <= prev_high, (high, limit, prev_high)
        assert low <= limit + 1 or low <= prev_low, (low, limit, prev_low)
        self.worst = (high, low)

    @invariant()
    def engine_never_undercounts_what_the_venue_could_still_do(self):
        e = self.engine
        if e is None or self.lost_rid is not None or not self.synced:
            return
        q = e.orders.position_lots
        bids, asks = e.orders.pending_exposure_lots()
        high, low = self.venue_worst_case()
        assert q + bids >= high and -(q - asks) >= low, (q, bids, asks, high, low)

    @invariant()
    def position_is_the_venues_once_everything_has_arrived(self):
        e = self.engine
        if e is None or self.lost_rid is not None or self.fills or self.acks:
            return
        if e.orders.position_unsure:
            RUNS["unsure"] += 1
            return  # a fill no clock can place is reserved until the snapshot already asked
        assert e.orders.position_lots == self.position, e.orders.counters


def _fields(struct) -> dict:
    return {f: getattr(struct, f) for f in struct.__struct_fields__}


EXAMPLES = int(os.environ.get("MM_STATEFUL_EXAMPLES", "1500"))

EngineAgainstHyperliquidVenue.TestCase.settings = settings(
    # 1,500 examples find a cancel-ack/fill race with the settle reservation removed within a
    # few hundred; MM_STATEFUL_EXAMPLES=20000 for a long soak.
    max_examples=EXAMPLES,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.slow
class TestEngineAgainstHyperliquidVenue(EngineAgainstHyperliquidVenue.TestCase):
    def runTest(self) -> None:
        for k in RUNS:
            RUNS[k] = 0
        super().runTest()
        print(f"\ninvariant state machine: {RUNS}")  # shown with -s or -rP
        if EXAMPLES < 300:
            return  # too few examples to judge how often the limit binds
        runs = RUNS["runs"]
        # The invariant binds: without this, "no breach" could mean "never near the limit".
        # "Bound" is the venue's worst case at 80-100 % of the limit (plus one lot) in some
        # step of the example. The share varies with the seed and with where hypothesis's two
        # targets (limit use, IOC escalations) steer it: 19-78 % of examples in the runs
        # measured, so at least a tenth, about 150 examples at the full count, is asserted.
        # (IOC escalations are counted, targeted and reported as an event, not asserted: they
        # need the position beyond a shrinking limit with no passive order covering it, and
        # their share varies widely with the seed, about 3-55 % of examples.)
        assert RUNS["bound"] >= 0.1 * runs, RUNS
        assert RUNS["expired"] > 0 and RUNS["reordered"] > 0, RUNS
