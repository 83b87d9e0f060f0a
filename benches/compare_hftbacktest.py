"""The BTC capture through hftbacktest's GLFT grid tutorial and through our replay backtest.

    pip install -e '.[compare]'          # hftbacktest (numba + its Rust core)
    python benches/compare_hftbacktest.py [--rounds 3] [--data CAPTURE]

hftbacktest converts the capture with its own converter
(``hftbacktest.data.utils.binancefutures.convert``: depth diffs, trades and book tickers, with
exchange and local times), and runs the loop of its tutorial "GLFT Market Making Model and Grid
Trading" (``gridtrading_glft_mm``): every 100 ms it measures trade arrival depths and the mid
change, refits A, k and the volatility every 5 s, and re-posts a 20-order grid a side at the
GLFT depths. Our side is ``market-maker backtest --data CAPTURE``: the engine reacts to every
event (no time grid) with the default config, the replay read from its decoded cache.

Ours runs three ways each round:

- **event-driven**, as we run it: a quote cycle on every event;
- **same cadence** (100 ms): the engine is handed the market once per 100 ms step of the
  venue's timer, as the tutorial's loop looks at it: the step's latest book, then the timer
  (private messages, fills and acks, as they arrive). The venue still replays and matches every
  event; the step's trades reach only the venue, so the engine's trade-driven estimators keep
  their priors: this measures the cost at the tutorial's number of decisions, not the same
  strategy;
- **replay and venue alone**: the capture through the replay and the simulated exchange with
  no engine (what any backtest of ours pays before it decides anything).

Each round runs hftbacktest, then ours three ways, one after the other in one worker process,
so a busy machine slows them alike; each is warmed up once untimed (numba compiles, our cache
is built), and the times are CPU seconds of the worker. The ratios (ours / hftbacktest) are
taken per round, against that round's hftbacktest time, and summarised by their minimum and
median.

Set alike: the same capture, 20 ms order latency each way (ours: 20 +/- 5 ms, fills 25 ms plus
jitter), a maker fee of 1.5 bps, post-only orders, tick 0.1 and lot 0.001. What differs:
hftbacktest models queue position with its power-probability model (exponent 2) and never
fills partially; ours puts the order behind the displayed size and moves up by the recorded
trades (``venues/exchange.py``). hftbacktest quotes every 100 ms with 20 levels a side; ours
runs a cycle on each of the capture's ~90,000 events with one level a side (GLFT). The
tutorial's 10-minute calibration window is cut to 1 minute here: the capture is 6 minutes long
and the tutorial does not quote before its first fit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "binance-usdm" / "btcusdt_20240808.gz"

_WINDOW_STEPS = 600  # 1 minute of 100 ms steps (the tutorial: 6,000, 10 minutes)
_compiled: dict[str, object] = {}


def _hbt_strategy():
    """The tutorial's ``gridtrading_glft_mm``, njit-compiled once per process."""
    if "mm" in _compiled:
        return _compiled["mm"]
    import numpy as np
    from hftbacktest import BUY, BUY_EVENT, GTX, LIMIT, SELL
    from numba import njit, uint64
    from numba.typed import Dict

    window = _WINDOW_STEPS

    @njit
    def measure_trading_intensity(order_arrival_depth, out):
        max_tick = 0
        for depth in order_arrival_depth:
            if not np.isfinite(depth):
                continue
            tick = round(depth / 0.5) - 1
            if tick < 0 or tick >= len(out):
                continue
            out[:tick] += 1
            max_tick = max(max_tick, tick)
        return out[:max_tick]

    @njit
    def linear_regression(x, y):
        sx = np.sum(x)
        sy = np.sum(y)
        sx2 = np.sum(x**2)
        sxy = np.sum(x * y)
        w = len(x)
        slope = (w * sxy - sx * sy) / (w * sx2 - sx**2)
        intercept = (sy - slope * sx) / w
        return slope, intercept

    @njit
    def compute_coeff(xi, gamma, delta, a, k):
        inv_k = np.divide(1, k)
        c1 = 1 / (xi * delta) * np.log(1 + xi * delta * inv_k)
        c2 = np.sqrt(
            np.divide(gamma, 2 * a * delta * k)
            * ((1 + xi * delta * inv_k) ** (k / (xi * delta) + 1))
        )
        return c1, c2

    @njit
    def gridtrading_glft_mm(hbt, order_qty, max_position):
        asset_no = 0
        tick_size = hbt.depth(asset_no).tick_size
        arrival_depth = np.full(1_000_000, np.nan, np.float64)
        mid_price_chg = np.full(1_000_000, np.nan, np.float64)
        t = 0
        prev_mid_price_tick = np.nan
        mid_price_tick = np.nan
        tmp = np.zeros(500, np.float64)
        ticks = np.arange(len(tmp)) + 0.5
        a = np.nan
        k = np.nan
        volatility = np.nan
        gamma = 0.05
        delta = 1
        adj1 = 1
        adj2 = 0.05
        grid_num = 20
        orders_sent = 0
        while hbt.elapse(100_000_000) == 0:
            if not np.isnan(mid_price_tick):
                depth = -np.inf
                for last_trade in hbt.last_trades(asset_no):
                    trade_price_tick = last_trade.px / tick_size
                    if last_trade.ev & BUY_EVENT == BUY_EVENT:
                        depth = np.nanmax(np.array([trade_price_tick - mid_price_tick, depth]))
                    else:
                        depth = np.nanmax(np.array([mid_price_tick - trade_price_tick, depth]))
                arrival_depth[t] = depth
            hbt.clear_last_trades(asset_no)
            hbt.clear_inactive_orders(asset_no)
            depth = hbt.depth(asset_no)
            position = hbt.position(asset_no)
            orders = hbt.orders(asset_no)
            best_bid_tick = depth.best_bid_tick
            best_ask_tick = depth.best_ask_tick
            prev_mid_price_tick = mid_price_tick
            mid_price_tick = (best_bid_tick + best_ask_tick) / 2.0
            mid_price_chg[t] = mid_price_tick - prev_mid_price_tick
            if t % 50 == 0 and t >= window - 1:
                tmp[:] = 0
                lambda_ = measure_trading_intensity(arrival_depth[t + 1 - window : t + 1], tmp)
                if len(lambda_) > 2:
                    lambda_ = lambda_[:70] / (window / 10)
                    x = ticks[: len(lambda_)]
                    y = np.log(lambda_)
                    k_, log_a = linear_regression(x, y)
                    a = np.exp(log_a)
                    k = -k_
                volatility = np.nanstd(mid_price_chg[t + 1 - window : t + 1]) * np.sqrt(10)
            c1, c2 = compute_coeff(gamma, gamma, delta, a, k)
            half_spread_tick = (c1 + delta / 2 * c2 * volatility) * adj1
            skew = c2 * volatility * adj2
            reservation_price_tick = mid_price_tick - skew * position / order_qty
            bid_price_tick = np.minimum(
                np.round(reservation_price_tick - half_spread_tick), best_bid_tick
            )
            ask_price_tick = np.maximum(
                np.round(reservation_price_tick + half_spread_tick), best_ask_tick
            )
            bid_price = bid_price_tick * tick_size
            ask_price = ask_price_tick * tick_size
            grid_interval = max(np.round(half_spread_tick) * tick_size, tick_size)
            bid_price = np.floor(bid_price / grid_interval) * grid_interval
            ask_price = np.ceil(ask_price / grid_interval) * grid_interval
            new_bid_orders = Dict.empty(np.uint64, np.float64)
            if position < max_position and np.isfinite(bid_price):
                for _ in range(grid_num):
                    new_bid_orders[uint64(round(bid_price / tick_size))] = bid_price
                    bid_price -= grid_interval
            new_ask_orders = Dict.empty(np.uint64, np.float64)
            if position > -max_position and np.isfinite(ask_price):
                for _ in range(grid_num):
                    new_ask_orders[uint64(round(ask_price / tick_size))] = ask_price
                    ask_price += grid_interval
            order_values = orders.values()
            while order_values.has_next():
                order = order_values.get()
                if order.cancellable and (
                    (order.side == BUY and order.order_id not in new_bid_orders)
                    or (order.side == SELL and order.order_id not in new_ask_orders)
                ):
                    hbt.cancel(asset_no, order.order_id, False)
                    orders_sent += 1
            for order_id, order_price in new_bid_orders.items():
                if order_id not in orders:
                    hbt.submit_buy_order(
                        asset_no, order_id, order_price, order_qty, GTX, LIMIT, False
                    )
                    orders_sent += 1
            for order_id, order_price in new_ask_orders.items():
                if order_id not in orders:
                    hbt.submit_sell_order(
                        asset_no, order_id, order_price, order_qty, GTX, LIMIT, False
                    )
                    orders_sent += 1
            t += 1
            if t >= len(arrival_depth):
                break
        return t, orders_sent

    _compiled["mm"] = gridtrading_glft_mm
    return gridtrading_glft_mm


def convert(capture: Path, out: Path) -> Path:
    """hftbacktest's own converter for Binance futures captures (``<ns> <json>`` lines)."""
    import numpy as np
    from hftbacktest.data.utils import binancefutures

    data = binancefutures.convert(str(capture), combined_stream=True)
    np.savez_compressed(out, data=data)
    return out


def run_hftbacktest(npz: str) -> dict[str, float]:
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    strategy = _hbt_strategy()
    if "warm" not in _compiled:
        _compiled["warm"] = True
        run_hftbacktest(npz)  # the first call compiles: untimed
    asset = (
        BacktestAsset()
        .data([npz])
        .linear_asset(1.0)
        .constant_order_latency(20_000_000, 20_000_000)
        .power_prob_queue_model(2.0)
        .no_partial_fill_exchange()
        .trading_value_fee_model(0.00015, 0.0005)
        .tick_size(0.1)
        .lot_size(0.001)
        .last_trades_capacity(10_000)
    )
    cpu = time.process_time()
    wall = time.perf_counter()
    hbt = HashMapMarketDepthBacktest([asset])
    steps, orders = strategy(hbt, 0.01, 0.2)
    hbt.close()
    return {
        "cpu_s": time.process_time() - cpu,
        "wall_s": time.perf_counter() - wall,
        "steps": float(steps),
        "orders": float(orders),
    }


class _Steps:
    """The venue as the engine sees it at the same cadence: market data only at the venue's
    100 ms timer (the step's latest book, then the timer), private messages as they come. The
    rest of the venue (its stats, ledger, meter, accounts) is the wrapped one's."""

    def __init__(self, venue: Any) -> None:
        object.__setattr__(self, "_venue", venue)
        object.__setattr__(self, "_out", deque())
        object.__setattr__(self, "_book", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._venue, name, value)  # the runner attaches its ledger to the venue

    def pop_next(self) -> Any:
        from market_maker.model import BookUpdate, Timer, Trade

        out = self._out
        while not out:
            ev = self._venue.pop_next()
            if ev is None:
                return None
            kind = type(ev)
            if kind is BookUpdate:
                object.__setattr__(self, "_book", ev)
            elif kind is Timer:
                if self._book is not None:
                    out.append(self._book)
                    object.__setattr__(self, "_book", None)
                out.append(ev)
            elif kind is not Trade:
                return ev
        return out.popleft()


def _counts(result: Any) -> dict[str, float]:
    counters = result.engine_counters
    return {
        "events": float(result.events),
        "market_events": float(result.market_events),
        "cycles": float(result.quote_cycles),
        "strategy_runs": float(
            result.quote_cycles
            - counters.get("quiet_cycles", 0)
            - counters.get("held_cycles", 0)
            - counters.get("reused_quotes", 0)
        ),
        "orders": float(result.orders_sent),
        "fills": float(result.fills),
    }


def _ours(capture: Path, mode: str) -> dict[str, float]:
    from market_maker.backtest.runner import run_backtest
    from market_maker.backtest.session import capture_feed_latency, replay_exchange, run_session
    from market_maker.config import AppConfig
    from market_maker.engine import QuoteEngine
    from market_maker.venues.replay import ReplayMarket

    if mode == "event":
        result, _ = run_session(AppConfig(), data=capture, seed=1)
        return _counts(result)
    config = AppConfig()
    market = ReplayMarket(capture, overrides=config.instrument)
    feed = capture_feed_latency(capture, market.instrument)
    venue = replay_exchange(
        market, 1, request_expiry_s=config.orders.request_expiry_s, feed_latency=feed
    )
    if mode == "venue":
        events = sum(1 for _ in venue.events())
        return {"events": float(events), "fills": 0.0}
    engine = QuoteEngine(config, market.instrument)
    result, _ = run_backtest(_Steps(venue), engine, source=f"data:{capture.name}", seed=1)
    return _counts(result)


def run_ours(capture: str, mode: str = "event") -> dict[str, float]:
    """Our side, ``mode`` ``event``, ``cadence`` or ``venue`` (see the module docstring)."""
    if mode not in _compiled:
        _compiled[mode] = True
        _ours(Path(capture), mode)  # the first run builds the replay cache: untimed
    cpu = time.process_time()
    wall = time.perf_counter()
    out = _ours(Path(capture), mode)
    return {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, **out}


_MODES = (
    ("event", "event-driven"),
    ("cadence", "same cadence (100 ms)"),
    ("venue", "replay and venue alone"),
)


def _summary(values: list[float]) -> str:
    return f"min {min(values):6.2f}x  median {statistics.median(values):6.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=CAPTURE, help="a Binance USD-M capture")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each side")
    args = parser.parse_args(argv)
    try:
        import hftbacktest  # noqa: F401
    except ImportError:
        print("hftbacktest is not installed: pip install -e '.[compare]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        npz = convert(args.data, Path(tmp) / "capture.npz")
        hbt: list[dict[str, float]] = []
        ours: dict[str, list[dict[str, float]]] = {mode: [] for mode, _ in _MODES}
        with ProcessPoolExecutor(max_workers=1) as pool:
            for _ in range(args.rounds):
                hbt.append(pool.submit(run_hftbacktest, str(npz)).result())
                for mode, _ in _MODES:
                    ours[mode].append(pool.submit(run_ours, str(args.data), mode).result())
    print(
        f"capture: {args.data.name}  rounds: {args.rounds}  (CPU seconds; ratio ours / hftbacktest)"
    )
    print(
        f"hftbacktest GLFT grid, 100 ms steps: {hbt[-1]['steps']:,.0f} steps, "
        f"{hbt[-1]['orders']:,.0f} orders and cancels"
    )
    event, cadence = ours["event"][-1], ours["cadence"][-1]
    print(
        f"ours event-driven: {event['events']:,.0f} events, {event['cycles']:,.0f} cycles, "
        f"{event['strategy_runs']:,.0f} strategy runs, {event['orders']:,.0f} orders, "
        f"{event['fills']:,.0f} fills"
    )
    print(
        f"ours same cadence: {cadence['events']:,.0f} events to the engine, "
        f"{cadence['cycles']:,.0f} cycles, {cadence['strategy_runs']:,.0f} strategy runs, "
        f"{cadence['orders']:,.0f} orders, {cadence['fills']:,.0f} fills"
    )
    header = f"{'round':>5}  {'hftbacktest':>11}" + "".join(f"  {label:>24}" for _, label in _MODES)
    print(header)
    ratios: dict[str, list[float]] = {mode: [] for mode, _ in _MODES}
    for r, h in enumerate(hbt):
        row = f"{r + 1:>5}  {h['cpu_s']:10.3f}s"
        for mode, _ in _MODES:
            o = ours[mode][r]["cpu_s"]
            ratios[mode].append(o / h["cpu_s"])
            row += f"  {o:15.3f}s {o / h['cpu_s']:6.2f}x"
        print(row)
    for mode, label in _MODES:
        times = [x["cpu_s"] for x in ours[mode]]
        print(
            f"{label:>24}: {_summary(ratios[mode])}  "
            f"(ours min {min(times):.3f} s, median {statistics.median(times):.3f} s)"
        )
    h_times = [x["cpu_s"] for x in hbt]
    print(
        f"{'hftbacktest':>24}: min {min(h_times):.3f} s, median {statistics.median(h_times):.3f} s"
    )
    events = ours["event"][-1]["market_events"]
    print(
        f"our market events per CPU second, event-driven: {events / min(r['cpu_s'] for r in ours['event']):,.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
