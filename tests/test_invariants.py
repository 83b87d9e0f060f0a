"""Random command sequences against the engine and a fake venue with latency.

Book moves, trades, acks delivered late, partial fills (also racing cancels and modifies),
rejects, duplicate fills and account updates that move the limit. After every step:

- the worst-case position ``q + all pending bids`` never grows past ``Q + 1 lot`` (and likewise
  ``q - all pending asks`` never below ``-(Q + 1 lot)``); when ``Q`` is unchanged this is
  exactly ``q + pending bids <= Q + 1 lot``. A shrinking ``Q`` cannot recall orders already out,
  so there the engine must only never add exposure and must cancel what no longer fits;
- the engine's pending exposure is never less than what is really live at the venue;
- every post-only price sent is behind the touch, on the tick grid and above min notional.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from market_maker.config import (
    AppConfig,
    DynamicRiskConfig,
    LadderConfig,
    OrdersConfig,
    StrategyConfig,
)
from market_maker.engine import QuoteEngine
from market_maker.model import (
    AccountUpdate,
    AckStatus,
    BookUpdate,
    Cancel,
    Fill,
    Instrument,
    Modify,
    OrderAck,
    Place,
    Side,
    Trade,
)

S = 1_000_000_000
LOT = 0.001
TICK = 0.5
INST = Instrument(symbol="TEST", tick_size=TICK, lot_size=LOT, min_notional=5.0)


class EngineAgainstFakeVenue(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine: QuoteEngine | None = None
        self.ts = S
        self.bid_ticks = 2000  # 1000.0 USD
        self.spread_ticks = 1
        self.to_venue: list = []  # actions in flight to the venue
        self.to_engine: list = []  # acks and fills in flight to the engine
        self.live: dict[str, list] = {}  # cloid -> [side, price, remaining lots]
        self.fill_seq = 0
        self.sent_fills: list[Fill] = []
        self.delivered_fills: list[Fill] = []
        self.worst = (0, 0)  # last (q + bids, -(q - asks)) in lots

    @rule(
        kind=st.sampled_from(["glft", "ladder", "avellaneda_stoikov", "symmetric"]),
        static=st.integers(1, 60),
        modify=st.booleans(),
        skew=st.floats(0.0, 1.0),
    )
    @precondition(lambda self: self.engine is None)
    def start(self, kind, static, modify, skew):
        cfg = AppConfig(
            risk=DynamicRiskConfig(max_position=static * LOT),
            strategy=StrategyConfig(
                kind=kind,
                order_size=0.008,
                skew_multiplier=skew,
                min_half_spread_bps=0.0,
                symmetric_half_spread_bps=3.0,
                as_horizon_s=1.0,
            ),
            ladder=LadderConfig(levels=3, target_liquidity=0.024),
            orders=OrdersConfig(use_modify=modify),
        )
        self.engine = QuoteEngine(cfg, INST)
        self.deliver_to_engine(self.book())

    # ----- helpers ------------------------------------------------------------------------

    def book(self) -> BookUpdate:
        bid = self.bid_ticks * TICK
        ask = (self.bid_ticks + self.spread_ticks) * TICK
        return BookUpdate(ts_ns=self.ts, bids=((bid, 1.0),), asks=((ask, 1.0),))

    def step_time(self) -> None:
        self.ts += S // 20

    def deliver_to_engine(self, event) -> None:
        assert self.engine is not None
        actions = self.engine.on_event(event)
        self.check_actions(actions)
        self.to_venue.extend(actions)

    def check_actions(self, actions) -> None:
        e = self.engine
        for a in actions:
            if isinstance(a, (Place, Modify)):
                ticks = a.price / TICK
                assert abs(ticks - round(ticks)) < 1e-6, a
                assert a.price * a.size >= INST.min_notional * (1 - 1e-9), a
                assert abs(a.size / LOT - round(a.size / LOT)) < 1e-6, a
                side = a.side if isinstance(a, Place) else e.orders.orders[a.cloid].side
                if side is Side.BUY:
                    assert a.price <= e.best_bid + 1e-9 and a.price < e.best_ask, a
                else:
                    assert a.price >= e.best_ask - 1e-9 and a.price > e.best_bid, a
                if isinstance(a, Place):
                    assert a.post_only

    # ----- market -------------------------------------------------------------------------

    @rule(move=st.integers(-6, 6), spread=st.integers(1, 4))
    @precondition(lambda self: self.engine is not None)
    def market_moves(self, move, spread):
        self.step_time()
        self.bid_ticks = max(100, self.bid_ticks + move)
        self.spread_ticks = spread
        self.deliver_to_engine(self.book())

    @rule(buy=st.booleans(), depth=st.integers(0, 8))
    @precondition(lambda self: self.engine is not None)
    def public_trade(self, buy, depth):
        self.step_time()
        price = (self.bid_ticks + (self.spread_ticks + depth if buy else -depth)) * TICK
        side = Side.BUY if buy else Side.SELL
        self.deliver_to_engine(Trade(ts_ns=self.ts, price=price, size=0.01, aggressor=side))

    @rule(value=st.sampled_from([0.0, 0.3, 1.0, 3.0, 10.0, 100.0]))
    @precondition(lambda self: self.engine is not None)
    def account_update(self, value):
        self.step_time()
        self.deliver_to_engine(AccountUpdate(ts_ns=self.ts, account_value=value))

    # ----- venue --------------------------------------------------------------------------

    @rule(reject=st.booleans(), n=st.integers(1, 4))
    @precondition(lambda self: self.engine is not None and self.to_venue)
    def venue_processes(self, reject, n):
        for _ in range(min(n, len(self.to_venue))):
            a = self.to_venue.pop(0)
            if isinstance(a, Place):
                crosses = (
                    a.price >= (self.bid_ticks + self.spread_ticks) * TICK
                    if a.side is Side.BUY
                    else a.price <= self.bid_ticks * TICK
                )
                if crosses or reject:
                    self.to_engine.append(self.ack(a.cloid, AckStatus.REJECTED))
                else:
                    self.live[a.cloid] = [a.side, a.price, round(a.size / LOT)]
                    self.to_engine.append(self.ack(a.cloid, AckStatus.ACCEPTED))
            elif isinstance(a, Cancel):
                self.live.pop(a.cloid, None)  # cancel by cloid is idempotent
                self.to_engine.append(self.ack(a.cloid, AckStatus.CANCELED))
            elif isinstance(a, Modify):
                order = self.live.get(a.cloid)
                if order is None or reject:
                    self.to_engine.append(self.ack(a.cloid, AckStatus.REJECTED))
                else:
                    order[1] = a.price
                    order[2] = round(a.size / LOT)
                    self.to_engine.append(self.ack(a.cloid, AckStatus.ACCEPTED))

    def ack(self, cloid: str, status: AckStatus) -> OrderAck:
        return OrderAck(ts_ns=self.ts, cloid=cloid, status=status)

    @rule(data=st.data())
    @precondition(lambda self: self.engine is not None and self.live)
    def venue_fills(self, data):
        cloid = data.draw(st.sampled_from(sorted(self.live)))
        side, price, remaining = self.live[cloid]
        lots = data.draw(st.integers(1, remaining))
        self.fill_seq += 1
        fill = Fill(
            ts_ns=self.ts,
            cloid=cloid,
            price=price,
            size=lots * LOT,
            side=side,
            fill_id=f"f{self.fill_seq}",
            fee=0.0,
        )
        self.sent_fills.append(fill)
        self.to_engine.append(fill)
        if lots == remaining:
            del self.live[cloid]
        else:
            self.live[cloid][2] = remaining - lots

    @rule(n=st.integers(1, 4))
    @precondition(lambda self: self.engine is not None and self.to_engine)
    def engine_receives(self, n):
        for _ in range(min(n, len(self.to_engine))):
            self.step_time()
            msg = self.to_engine.pop(0)
            if isinstance(msg, Fill):
                self.delivered_fills.append(msg)
            self.deliver_to_engine(msg.__class__(**{**_fields(msg), "ts_ns": self.ts}))

    @rule(reject=st.booleans())
    @precondition(lambda self: self.engine is not None and (self.to_venue or self.to_engine))
    def round_trip(self, reject):
        """The venue works through everything in flight and the engine hears all of it."""
        self.venue_processes(reject=reject, n=len(self.to_venue))
        self.engine_receives(n=len(self.to_engine))

    @rule()
    @precondition(lambda self: self.engine is not None and self.delivered_fills)
    def duplicate_fill(self):
        self.deliver_to_engine(self.delivered_fills[-1])

    # ----- invariants ---------------------------------------------------------------------

    @invariant()
    def worst_case_position_never_grows_past_the_limit(self):
        e = self.engine
        if e is None:
            return
        q = e.orders.position_lots
        bids, asks = e.orders.pending_exposure_lots()
        limit = math.floor(e.kill_switch.max_position(e.mid) / LOT + 1e-9)
        high, low = q + bids, -(q - asks)
        prev_high, prev_low = self.worst
        assert high <= limit + 1 or high <= prev_high, (high, limit, prev_high)
        assert low <= limit + 1 or low <= prev_low, (low, limit, prev_low)
        self.worst = (high, low)

    @invariant()
    def engine_never_undercounts_live_exposure(self):
        e = self.engine
        if e is None:
            return
        live_bids = sum(r for s, _, r in self.live.values() if s is Side.BUY)
        live_asks = sum(r for s, _, r in self.live.values() if s is Side.SELL)
        bids, asks = e.orders.pending_exposure_lots()
        assert bids >= live_bids and asks >= live_asks

    @invariant()
    def position_matches_the_fills_the_venue_sent(self):
        e = self.engine
        if e is None:
            return
        expected = sum(round(f.size / LOT) * f.side.sign for f in self.delivered_fills)
        assert e.orders.position_lots == expected


def _fields(struct) -> dict:
    return {f: getattr(struct, f) for f in struct.__struct_fields__}


EngineAgainstFakeVenue.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineAgainstFakeVenue = EngineAgainstFakeVenue.TestCase
