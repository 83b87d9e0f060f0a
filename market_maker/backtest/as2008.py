"""The Avellaneda-Stoikov (2008) simulation, run through this project's strategies.

The paper's experiment: ``S0 = 100``, ``T = 1``, ``sigma = 2``, ``dt = 0.005`` (200 steps),
``k = 1.5``, ``A = 140``; each step the mid moves ``+/- sigma * sqrt(dt)`` with equal chance and
each of our two quotes (size 1) fills with probability ``A * exp(-k * delta) * dt``. The
"inventory" strategy quotes around the reservation price; the "symmetric" one uses the same
spread around the mid. Profit is cash plus inventory at the final mid.

Here the strategies are the engine's own (``AvellanedaStoikovStrategy`` with a finite horizon,
its inventory-blind twin for "symmetric", and ``GlftStrategy``), fed ``MarketParams`` in ticks of
0.01 (so ``k = 0.015`` per tick, ``sigma = 200`` ticks and ``gamma = 0.1`` per USD is ``0.001``
per tick). Quotes are not rounded to the tick, as in the paper.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import msgspec
import numpy as np

from market_maker.config import StrategyConfig
from market_maker.model import QuoteSet
from market_maker.risk import BindingLimit, TradingState
from market_maker.strategy import AvellanedaStoikovStrategy, GlftStrategy, MarketParams, Strategy

__all__ = ["PAPER_TABLE", "As2008Row", "format_table", "run_as2008"]

S0 = 100.0
T = 1.0
SIGMA = 2.0
DT = 0.005
K = 1.5
A = 140.0
TICK = 0.01

# Avellaneda & Stoikov (2008), table for gamma = 0.1 (1000 simulations).
PAPER_TABLE = {
    "inventory": {
        "spread": 1.29,
        "profit": 62.94,
        "std_profit": 5.89,
        "final_q": 0.10,
        "std_final_q": 2.80,
    },
    "symmetric": {
        "spread": 1.29,
        "profit": 67.21,
        "std_profit": 13.43,
        "final_q": -0.018,
        "std_final_q": 8.66,
    },
}


class As2008Row(msgspec.Struct, kw_only=True):
    strategy: str
    spread: float
    profit: float
    std_profit: float
    final_q: float
    std_final_q: float
    paths: int


class _Symmetric:
    """The paper's benchmark: the inventory strategy's spread, centred on the mid."""

    def __init__(self, inner: AvellanedaStoikovStrategy) -> None:
        self.inner = inner

    def quote(self, params: MarketParams) -> QuoteSet:
        return self.inner.quote(msgspec.structs.replace(params, position=0.0))


def _strategy(kind: str, gamma: float) -> Strategy:
    per_tick = gamma * TICK
    config = StrategyConfig(
        kind="avellaneda_stoikov" if kind != "glft" else "glft",
        order_size=1.0,
        gamma=per_tick,
        min_half_spread_bps=0.0,
        as_horizon_s=T,
        as_terminal=True,
        gamma_utilisation_scale=0.0,
        cascade_widening=0.0,
    )
    if kind == "glft":
        return GlftStrategy(config)
    if kind == "symmetric":
        return _Symmetric(AvellanedaStoikovStrategy(config))
    return AvellanedaStoikovStrategy(config)


def run_as2008(
    kind: str,
    *,
    paths: int = 1000,
    seed: int = 1,
    gamma: float = 0.1,
    progress: Callable[[float], None] | None = None,
) -> As2008Row:
    """Monte-Carlo of the paper's experiment for one strategy: ``inventory`` (or
    ``avellaneda_stoikov``), ``symmetric`` or ``glft``."""
    name = "inventory" if kind in ("inventory", "avellaneda_stoikov") else kind
    strategy = _strategy(name, gamma)
    rng = random.Random(seed)
    steps = round(T / DT)
    move = SIGMA * math.sqrt(DT)
    k_tick = K * TICK
    profits = np.empty(paths)
    finals = np.empty(paths)
    spreads = np.empty(paths)
    base = MarketParams(
        ts_ns=0,
        mid=S0,
        best_bid=S0 - TICK / 2,
        best_ask=S0 + TICK / 2,
        tick_size=TICK,
        lot_size=1.0,
        sigma=SIGMA / S0,
        sigma_ticks=SIGMA / TICK,
        a=A,
        k=k_tick,
        hawkes_ratio=1.0,
        flow_imbalance=0.0,
        position=0.0,
        pending_bids=0.0,
        pending_asks=0.0,
        dynamic_max_position=1e12,
        max_position_cap=None,
        max_position_value=None,
        binding_limit=BindingLimit.STATIC,
        trading_state=TradingState.ACTIVE,
        order_size=1.0,
        target_liquidity=1.0,
    )
    replace = msgspec.structs.replace
    step = max(1, paths // 100)
    for path in range(paths):
        if progress is not None and path % step == 0:
            progress(path / paths)
        s = S0
        q = 0
        cash = 0.0
        spread_sum = 0.0
        for step in range(steps):
            params = replace(
                base,
                ts_ns=int(step * DT * 1e9),
                mid=s,
                position=float(q),
                best_bid=s - TICK / 2,
                best_ask=s + TICK / 2,
                sigma=SIGMA / s,
            )
            quotes = strategy.quote(params)
            bid = quotes.bids[0].price
            ask = quotes.asks[0].price
            spread_sum += ask - bid
            if rng.random() < A * math.exp(-K * (s - bid)) * DT:
                q += 1
                cash -= bid
            if rng.random() < A * math.exp(-K * (ask - s)) * DT:
                q -= 1
                cash += ask
            s += move if rng.random() < 0.5 else -move
        profits[path] = cash + q * s
        finals[path] = q
        spreads[path] = spread_sum / steps
    return As2008Row(
        strategy=name,
        spread=float(spreads.mean()),
        profit=float(profits.mean()),
        std_profit=float(profits.std(ddof=1)),
        final_q=float(finals.mean()),
        std_final_q=float(finals.std(ddof=1)),
        paths=paths,
    )


def format_table(rows: list[As2008Row]) -> str:
    """Rows in the paper's layout, with the paper's own figures beside ours."""
    head = (
        f"{'strategy':<12}{'spread':>8}{'profit':>9}{'std(profit)':>13}{'final q':>9}{'std(q)':>8}"
    )
    lines = [f"Avellaneda-Stoikov (2008), gamma 0.1, {rows[0].paths} paths", head]
    for r in rows:
        lines.append(
            f"{r.strategy:<12}{r.spread:>8.2f}{r.profit:>9.2f}{r.std_profit:>13.2f}"
            f"{r.final_q:>9.2f}{r.std_final_q:>8.2f}"
        )
    lines.append("paper (1000 paths):")
    for name, p in PAPER_TABLE.items():
        lines.append(
            f"{name:<12}{p['spread']:>8.2f}{p['profit']:>9.2f}{p['std_profit']:>13.2f}"
            f"{p['final_q']:>9.2f}{p['std_final_q']:>8.2f}"
        )
    return "\n".join(lines)
