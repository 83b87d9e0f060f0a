"""Every shipped config x every scenario x glft and ladder against the simulated exchange's
Hyperliquid profile (70 ms blocks: post-only, then cancels, then IOCs; snapshots answered at
once from committed state, on a server clock 300 ms off; requests expire after 1 s), with the
limit binding. Checked at every event against the venue's own state: its worst case, the
position plus every order that could still fill on a side (resting, waiting for a block, or on
its way), never passes the cap by more than one lot."""

from __future__ import annotations

import msgspec
import pytest

from market_maker.backtest import SCENARIOS, engine_config
from market_maker.backtest.scenarios import scenario as scenario_params
from market_maker.config import load_config, with_strategy
from market_maker.engine import QuoteEngine
from market_maker.model import Modify, Place, Side
from market_maker.venues.exchange import ExchangeCore
from market_maker.venues.sim import simulated_exchange
from tests.backtest.test_backtest import SHIPPED, binding

S = 1_000_000_000
CAP = 0.02
DURATION = 360  # long enough for the position to reach 80 % of the cap on every scenario


def worst_case(ex: ExchangeCore) -> tuple[int, int]:
    """(position + every bid that could fill, position - every ask that could fill), lots."""
    lot = ex.lot
    bids = asks = 0
    sides = {o.cloid: o.side for o in ex._orders.values()}
    for o in ex._orders.values():
        if o.side is Side.BUY:
            bids += o.remaining_lots
        else:
            asks += o.remaining_lots
    for a in ex.uncommitted():
        if isinstance(a, Place):
            side, lots = a.side, round(a.size / lot)
        elif isinstance(a, Modify) and a.cloid in sides:
            side, lots = sides[a.cloid], round(a.size / lot)
        else:
            continue
        if side is Side.BUY:
            bids += lots
        else:
            asks += lots
    q = ex.position_lots
    return q + bids, q - asks


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("strategy", ["glft", "ladder"])
def test_the_hyperliquid_profile_never_lets_the_venues_worst_case_past_the_cap(
    path, name, strategy
):
    # The cascade comes at 300 s: run past it. The informed calm fills least (about 500 an
    # hour): its position needs longer to reach the cap.
    duration = {"cascade": 420, "calm": 480}.get(name, DURATION)
    params = msgspec.structs.replace(
        scenario_params(name, duration_s=duration), server_skew_ms=300.0
    )
    assert params.venue_model == "hyperliquid"  # the simulator's default
    config = engine_config(params, with_strategy(binding(load_config(path), CAP), strategy))
    ex = simulated_exchange(params, 7, request_expiry_s=config.orders.request_expiry_s)
    engine = QuoteEngine(config, ex.instrument)
    cap = round(config.risk.max_position_cap / ex.lot)
    peak = 0.0
    started = False
    while (ev := ex.pop_next()) is not None:
        if not started:
            started = True
            ex.submit(engine.start(ev.ts_ns), ev.ts_ns)
        actions = engine.on_event(ev)
        if actions:
            ex.submit(actions, ev.ts_ns)
        high, low = worst_case(ex)
        assert high <= cap and low >= -cap, (ev.ts_ns, high, low, cap)
        limit = engine.kill_switch.max_position(engine.mid) / ex.lot
        if limit >= 1.0:
            peak = max(peak, abs(ex.position_lots) / limit)
    assert ex.stats.blocks > 100 and ex.stats.fills > 0
    assert peak >= 0.8, peak  # the position itself reached 80 % of the limit it was held to


def test_each_capture_is_replayed_on_its_venues_profile_and_the_simulator_on_hyperliquids():
    from market_maker.backtest.session import replay_exchange
    from market_maker.venues.exchange import FIFO
    from market_maker.venues.replay import ReplayMarket
    from tests.backtest.test_backtest import BINANCE, HYPERLIQUID

    assert replay_exchange(ReplayMarket(HYPERLIQUID), 1).profile.model == "hyperliquid"
    assert replay_exchange(ReplayMarket(BINANCE), 1).profile.model == "fifo"
    forced = replay_exchange(ReplayMarket(HYPERLIQUID), 1, profile=FIFO)
    assert forced.profile.model == "fifo"
    sim = simulated_exchange(scenario_params("calm"), 1)
    assert sim.profile.model == "hyperliquid" and sim.profile.block_ms == 70.0
    fifo = msgspec.structs.replace(scenario_params("calm"), venue_model="fifo")
    assert simulated_exchange(fifo, 1).profile.model == "fifo"


def test_paper_trading_runs_on_the_hyperliquid_profile():
    from market_maker.model import Instrument
    from market_maker.venues.paper import PaperVenue

    inst = Instrument(symbol="BTC", tick_size=1.0, lot_size=0.00001, min_notional=10.0)
    venue = PaperVenue(None, inst)  # type: ignore[arg-type]  # no feed needed to build it
    assert venue.exchange.profile.model == "hyperliquid"
    assert venue.exchange._expiry_ns == 1_000_000_000  # the engine's default deadline
