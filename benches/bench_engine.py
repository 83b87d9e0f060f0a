"""Cost of one quote cycle: book update -> actions, 5-level ladder a side, resting orders.

The venue side (acks for the previous cycle's actions) runs in pytest-benchmark's untimed setup,
so each timed call is exactly one ``on_event``. The request budget is set high enough that no
cycle is held for it: every timed cycle that moves the touch runs the whole pipeline
(estimators, limits, kill switch, strategy, exact sizing, plan).
"""

from __future__ import annotations

import random

import pytest

from market_maker.config import (
    AppConfig,
    EstimatorsConfig,
    HawkesConfig,
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
    Instrument,
    OpenOrder,
    OrderAck,
    RequestSnapshot,
    Side,
    Trade,
    VenueSnapshot,
)
from market_maker.strategy import glft_depths

INST = Instrument(symbol="BTC", tick_size=0.1, lot_size=0.001, min_notional=10.0)
NS = 1_000_000_000


class Feed:
    """A random-walk BTC book at 20 updates a second with a trade every other update.

    ``moves`` are the tick steps of the touch per update; with 0 among them a third of the
    updates change only sizes (on Binance BTCUSDT it is 97 %), which the engine short-cuts.
    """

    def __init__(self, seed: int = 1, moves: tuple[int, ...] = (-3, -1, 0, 0, 1, 3)) -> None:
        self.rng = random.Random(seed)
        self.moves = moves
        self.bid_ticks = 1_000_000
        self.ts = NS

    def book(self) -> BookUpdate:
        self.ts += NS // 20
        self.bid_ticks += self.rng.choice(self.moves)
        bid = self.bid_ticks / 10
        return BookUpdate(ts_ns=self.ts, bids=((bid, 1.0),), asks=((bid + 0.1, 1.0),))

    def trade(self) -> Trade:
        side = self.rng.choice((Side.BUY, Side.SELL))
        price = (self.bid_ticks + (1 if side is Side.BUY else 0)) / 10
        return Trade(ts_ns=self.ts, price=price, size=0.01, aggressor=side)


def acknowledge(engine: QuoteEngine, actions: list, ts: int) -> None:
    """Answer as a venue that fills nothing: places rest, cancels and modifies report 0 filled,
    snapshots list what rests."""
    pending = list(actions)
    while pending:
        a = pending.pop()
        if isinstance(a, RequestSnapshot):
            status = engine.status()
            resting = tuple(
                OpenOrder(cloid=o.cloid, side=side, price=o.price, size=o.size)
                for side, levels in ((Side.BUY, status.bids), (Side.SELL, status.asks))
                for o in levels.resting
                if not o.leaving
            )
            snap = VenueSnapshot(
                ts_ns=ts,
                exchange_ts_ns=ts,
                position=engine.position,
                orders=resting,
                request_id=a.request_id,
            )
            pending += engine.on_event(snap)
            continue
        status = AckStatus.CANCELED if isinstance(a, Cancel) else AckStatus.ACCEPTED
        ack = OrderAck(
            ts_ns=ts, cloid=a.cloid, status=status, request_id=a.request_id, filled_size=0.0
        )
        pending += engine.on_event(ack)


ALWAYS_MOVES = (-3, -2, -1, 1, 2, 3)


QUOTING = QuotingConfig(
    fair_value=True,
    imbalance_beta_bps=0.4,
    adverse_floor=True,
    maker_fee_bps=1.5,
    toxic_guard=True,
)
"""Every [quoting] feature on (the cost of the inputs they read)."""


def warmed_engine(
    events: int,
    kind: str = "ladder",
    moves: tuple[int, ...] | None = None,
    quoting: QuotingConfig | None = None,
) -> tuple[QuoteEngine, Feed]:
    cfg = AppConfig(
        quoting=quoting or QuotingConfig(),
        # 10 trades a second at baseline: the feed's rate, so no cascade is detected.
        estimators=EstimatorsConfig(hawkes=HawkesConfig(mu=10.0, alpha=0.5, beta=1.0)),
        strategy=StrategyConfig(kind=kind, order_size=0.01, min_half_spread_bps=0.5),
        ladder=LadderConfig(levels=5, target_liquidity=0.05),
        orders=OrdersConfig(max_requests_per_s=10_000.0, request_burst=10_000.0),
    )
    engine = QuoteEngine(cfg, INST)
    feed = Feed() if moves is None else Feed(moves=moves)
    engine.on_event(AccountUpdate(ts_ns=feed.ts, account_value=100_000.0))
    for i in range(events):
        ev = feed.book() if i % 2 == 0 else feed.trade()
        acknowledge(engine, engine.on_event(ev), feed.ts)
    return engine, feed


def bench_cycle(benchmark, engine: QuoteEngine, feed: Feed) -> None:
    state: dict = {"actions": [], "event": None}

    def setup():
        acknowledge(engine, state["actions"], feed.ts)
        state["event"] = feed.book()
        return (state["event"],), {}

    def cycle(event):
        state["actions"] = engine.on_event(event)

    benchmark.pedantic(cycle, setup=setup, rounds=20_000, warmup_rounds=200)
    status = engine.status()
    assert status.trading_state == "active"
    assert status.tracked_orders >= 8  # a ladder of resting orders on both sides
    assert status.settling_orders == 0  # nothing piles up


@pytest.mark.parametrize("history", [100, 1_000_000])
def test_quote_cycle_ladder(benchmark, history):
    engine, feed = warmed_engine(history)
    bench_cycle(benchmark, engine, feed)


def test_quote_cycle_ladder_touch_always_moves(benchmark):
    engine, feed = warmed_engine(1_000, moves=ALWAYS_MOVES)
    bench_cycle(benchmark, engine, feed)


@pytest.mark.parametrize("quoting", ["off", "on"])
@pytest.mark.parametrize("moves", ["mixed", "always"])
def test_quote_cycle_glft(benchmark, moves, quoting):
    engine, feed = warmed_engine(
        1_000,
        kind="glft",
        moves=ALWAYS_MOVES if moves == "always" else None,
        quoting=QUOTING if quoting == "on" else None,
    )
    state: dict = {"actions": []}

    def setup():
        acknowledge(engine, state["actions"], feed.ts)
        return (feed.book(),), {}

    def cycle(event):
        state["actions"] = engine.on_event(event)

    benchmark.pedantic(cycle, setup=setup, rounds=20_000, warmup_rounds=200)


@pytest.mark.parametrize("quoting", ["off", "on"])
def test_event_that_changes_no_quote(benchmark, quoting):
    """A book update that moves neither best price (sizes only: 97 % of Binance's bookTicker
    messages) with a 5-level ladder resting a side: staleness, estimators, kill switch, and
    the proof that nothing the rest of the cycle reads has changed. With [quoting] on, the
    sizes change evenly (no imbalance): the fair value stays, and the shortcut with it."""
    engine, feed = warmed_engine(1_000, quoting=QUOTING if quoting == "on" else None)
    acknowledge(engine, engine.on_event(feed.book()), feed.ts)
    bid = engine.best_bid
    ask = engine.best_ask
    state = {"size": 1.0, "calls": 0}

    def setup():
        feed.ts += NS // 20
        state["size"] = 3.0 - state["size"]
        size = state["size"]
        return (BookUpdate(ts_ns=feed.ts, bids=((bid, size),), asks=((ask, size),)),), {}

    def cycle(event):
        state["calls"] += 1
        assert not engine.on_event(event)

    state["calls"] = 0
    before = engine.counters.quiet_cycles
    benchmark.pedantic(cycle, setup=setup, rounds=20_000, warmup_rounds=200)
    # All but the updates on which a volatility sample falls due (one per sample interval);
    # counted per call, as --benchmark-disable runs the function once.
    assert engine.counters.quiet_cycles - before > 0.9 * state["calls"]


def test_trade_event_ladder(benchmark):
    """A public trade: Hawkes, cascade and flow estimators move, so the whole cycle runs."""
    engine, feed = warmed_engine(1_000)
    state: dict = {"actions": []}

    def setup():
        acknowledge(engine, state["actions"], feed.ts)
        feed.ts += NS // 40
        return (feed.trade(),), {}

    def cycle(event):
        state["actions"] = engine.on_event(event)

    benchmark.pedantic(cycle, setup=setup, rounds=20_000, warmup_rounds=200)


def test_glft_depths_alone(benchmark):
    benchmark(glft_depths, gamma=0.05, xi=0.05, delta=1.0, a=2.986, k=0.0423, sigma=10.69, q=1.5)
