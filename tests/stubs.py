"""Builders shared by the tests: simulated event streams and configs."""

from __future__ import annotations

import math
import random

import numpy as np


def simulate_hawkes(
    *, mu: float, alpha: float, beta: float, n_events: int, seed: int = 0
) -> np.ndarray:
    """Event times of a Hawkes process with exponential kernel, by Ogata's thinning.

    Between events the intensity only decays, so the intensity just after the last accepted
    event bounds it until the next candidate: draw a candidate from that bound and accept it
    with probability ``lambda(candidate) / bound``.
    """
    rng = random.Random(seed)
    times = np.empty(n_events)
    t = 0.0
    excitation = 0.0  # sum alpha * exp(-beta * (t - t_i)) at time t
    n = 0
    while n < n_events:
        bound = mu + excitation
        wait = rng.expovariate(bound)
        excitation *= math.exp(-beta * wait)
        t += wait
        if rng.random() * bound <= mu + excitation:
            excitation += alpha
            times[n] = t
            n += 1
    return times


def simulate_gbm(
    *, sigma: float, dt: float, n: int, s0: float = 100.0, drift: float = 0.0, seed: int = 0
) -> np.ndarray:
    """Prices of a geometric Brownian motion sampled every ``dt`` seconds (sigma per sqrt s)."""
    rng = np.random.default_rng(seed)
    steps = (drift - 0.5 * sigma**2) * dt + sigma * math.sqrt(dt) * rng.standard_normal(n - 1)
    return s0 * np.exp(np.concatenate(([0.0], np.cumsum(steps))))


def market_params(**overrides):
    """A ``MarketParams`` for a calm BTC-like book; override any field by keyword."""
    from market_maker.risk import BindingLimit, TradingState
    from market_maker.strategy import MarketParams

    fields = dict(
        ts_ns=1_000_000_000,
        mid=100_000.05,
        best_bid=100_000.0,
        best_ask=100_000.1,
        tick_size=0.1,
        lot_size=0.001,
        sigma=0.0002,
        sigma_ticks=0.0002 * 100_000.05 / 0.1,
        a=1.0,
        k=0.5,
        hawkes_ratio=1.0,
        flow_imbalance=0.0,
        position=0.0,
        pending_bids=0.0,
        pending_asks=0.0,
        dynamic_max_position=1.0,
        max_position_cap=None,
        max_position_value=100_000.0,
        binding_limit=BindingLimit.LEVERAGE,
        trading_state=TradingState.ACTIVE,
        order_size=0.01,
        target_liquidity=0.05,
    )
    fields.update(overrides)
    return MarketParams(**fields)


def relabel_binance_capture(src, dst, *, symbol: str, lines: int | None = None) -> None:
    """A Binance USD-M capture of ``symbol`` made from the BTCUSDT one: stream names and ``s``
    relabelled, every price moved tick for tick from BTCUSDT's 0.1 grid onto a 0.01 grid (a
    price ten times smaller), sizes unchanged. Books stay exactly as crossed or uncrossed."""
    import gzip

    import msgspec

    def price(text: str) -> str:
        ticks = round(float(text) * 10)
        return f"{ticks // 100}.{ticks % 100:02d}"

    def levels(rows):
        return [[price(p), q] for p, q in rows]

    low = symbol.lower()
    with gzip.open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        for i, line in enumerate(fin):
            if lines is not None and i >= lines:
                break
            head, _, body = line.partition(b" ")
            msg = msgspec.json.decode(body)
            data = msg.get("data", msg)
            if "stream" in msg:
                msg["stream"] = low + "@" + msg["stream"].partition("@")[2]
                data["s"] = symbol
            for key in ("bids", "asks"):
                if key in data:
                    data[key] = levels(data[key])
            if data.get("e") == "depthUpdate":
                data["b"], data["a"] = levels(data["b"]), levels(data["a"])
            elif data.get("e") == "bookTicker":
                data["b"], data["a"] = price(data["b"]), price(data["a"])
            elif data.get("e") == "trade":
                data["p"] = price(data["p"])
            fout.write(head + b" " + msgspec.json.encode(msg) + b"\n")


def relabel_hyperliquid_capture(src, dst, *, coin: str) -> None:
    """The Hyperliquid BTC capture relabelled as ``coin`` (prices unchanged)."""
    import gzip

    with gzip.open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        fout.write(fin.read().replace(b'"coin":"BTC"', f'"coin":"{coin}"'.encode()))


def rewrite_as_spot(src, dst, *, lines: int | None = None) -> None:
    """The BTCUSDT USD-M capture as a Binance spot stream (Binance spot WebSocket docs): depth
    diffs without ``pu`` or ``T``, continuing by ``U = previous u + 1``; ``bookTicker`` without
    ``e``/``E``/``T``; trades with spot's ``M`` instead of futures' ``X``; the REST snapshot
    without ``E``/``T``; stream names ``btcusdt@depth@100ms``. Prices and sizes unchanged (the
    0.1 grid lies on spot's 0.01)."""
    import gzip

    import msgspec

    with gzip.open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        for i, line in enumerate(fin):
            if lines is not None and i >= lines:
                break
            head, _, body = line.partition(b" ")
            msg = msgspec.json.decode(body)
            if "stream" in msg:
                data = msg["data"]
                kind = data.get("e")
                if kind == "depthUpdate":
                    msg["stream"] = "btcusdt@depth@100ms"
                    data["U"] = data.pop("pu") + 1
                    data.pop("T", None)
                elif kind == "bookTicker":
                    msg["data"] = {k: v for k, v in data.items() if k not in ("e", "E", "T")}
                elif kind == "trade":
                    data.pop("X", None)
                    data["M"] = True
            else:
                msg.pop("E", None)
                msg.pop("T", None)
            fout.write(head + b" " + msgspec.json.encode(msg) + b"\n")


def rewrite_as_inverse(src, dst, *, lines: int | None = None, contract_usd: float = 100.0):
    """The BTCUSDT USD-M capture as Binance COIN-M's BTCUSD_PERP (COIN-M WebSocket docs):
    symbol ``BTCUSD_PERP`` with pair ``ps`` BTCUSD, every size turned from BTC into whole
    contracts of ``contract_usd`` USD at its price (at least one where the size was not 0)."""
    import gzip

    import msgspec

    def contracts(qty: str, price: str) -> str:
        q = float(qty)
        return "0" if q == 0.0 else str(max(1, round(q * float(price) / contract_usd)))

    def levels(rows):
        return [[p, contracts(q, p)] for p, q in rows]

    with gzip.open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        for i, line in enumerate(fin):
            if lines is not None and i >= lines:
                break
            head, _, body = line.partition(b" ")
            msg = msgspec.json.decode(body)
            data = msg.get("data", msg)
            if "stream" in msg:
                msg["stream"] = "btcusd_perp@" + msg["stream"].partition("@")[2]
                data["s"] = "BTCUSD_PERP"
                data["ps"] = "BTCUSD"
            else:
                data["symbol"], data["pair"] = "BTCUSD_PERP", "BTCUSD"
            for key in ("bids", "asks"):
                if key in data:
                    data[key] = levels(data[key])
            kind = data.get("e")
            if kind == "depthUpdate":
                data["b"], data["a"] = levels(data["b"]), levels(data["a"])
            elif kind == "bookTicker":
                data["B"] = contracts(data["B"], data["b"])
                data["A"] = contracts(data["A"], data["a"])
            elif kind == "trade":
                data["q"] = contracts(data["q"], data["p"])
            fout.write(head + b" " + msgspec.json.encode(msg) + b"\n")
