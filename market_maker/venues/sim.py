"""Market simulator: a mid price, self-exciting market-order flow and a synthetic book.

Models, each small and replaceable:

- **Price**: the mid follows geometric Brownian motion with ``sigma`` (fraction per sqrt second)
  and drift, scaled by a volatility regime (a Markov chain over ``regimes`` multipliers), plus
  Poisson jumps.
- **Flow**: market orders arrive on each side as a Hawkes process (``flow_mu``, ``flow_alpha``,
  ``flow_beta``), simulated exactly by Ogata thinning, so bursts cluster like real cascades.
- **Depth**: each market order reaches ``delta ~ Exponential(k)`` ticks from the mid and prints
  at the furthest tick it reached, so an order resting ``delta`` ticks away is reached at rate
  ``A * exp(-k * delta)`` with ``A = flow_mu / (1 - flow_alpha / flow_beta)`` per side: exactly
  GLFT's model, which makes it testable against the engine's estimator.
- **Book**: one-tick spread around the mid, ``book_levels`` levels of random size a side.
- **Cascade** (optional): at ``cascade_at_s`` the mid jumps by ``cascade_jump`` and one side's
  flow gets ``cascade_kick`` of extra intensity, decaying at ``flow_beta``.
- **Venue**: how our requests are handled, ``venue_model`` (``venues/exchange.py``): Hyperliquid's
  block commits by default, or first in, first out.

Everything is drawn from one ``random.Random(seed)``: a seed fixes the whole path.
``SimMarket`` is a ``MarketSource`` for ``ExchangeCore``; ``simulated_exchange`` wires both.
"""

from __future__ import annotations

import math
import random
from collections import deque

import msgspec

from market_maker.model import BookUpdate, Instrument, Side, Trade
from market_maker.venues.exchange import (
    ExchangeCore,
    FeeModel,
    LatencyModel,
    RateLimit,
    VenueModel,
    VenueProfile,
)

__all__ = ["SimMarket", "SimParams", "simulated_exchange"]

_NS = 1_000_000_000


class SimParams(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that defines a simulated market. Units in the names; sigma per sqrt second."""

    duration_s: float = 3600.0
    step_s: float = 0.1
    """Book updates and price moves happen on this grid, seconds."""
    symbol: str = "SIM-BTC"
    mid0: float = 100_000.0
    tick_size: float = 1.0
    lot_size: float = 0.001
    min_notional: float = 10.0
    sigma: float = 0.0002
    drift_per_s: float = 0.0
    regimes: tuple[float, ...] = (1.0,)
    """Volatility multipliers; the regime switches at ``regime_switch_per_s``."""
    regime_switch_per_s: float = 0.0
    jump_rate_per_s: float = 0.0
    jump_sigma: float = 0.0
    """Standard deviation of a jump, fraction of price."""
    flow_mu: float = 1.0
    """Baseline market orders per second, per side."""
    flow_alpha: float = 0.5
    flow_beta: float = 1.0
    k: float = 0.05
    """Depth decay of market orders, per tick."""
    mean_order_size: float = 0.05
    book_levels: int = 5
    book_level_size: float = 0.5
    cascade_at_s: float | None = None
    cascade_jump: float = 0.0
    """Mid jump at the cascade, fraction of price (negative: down)."""
    cascade_kick: float = 0.0
    """Extra market-order intensity (per second) injected at the cascade."""
    cascade_side: Side = Side.SELL
    initial_equity: float = 10_000.0
    maker_fee_bps: float = 1.5
    order_latency_ms: float = 20.0
    """One way, for requests and for their answers (acks, snapshots), on one ordered stream."""
    order_jitter_ms: float = 5.0
    fill_latency_ms: float = 25.0
    """Fills travel on a stream of their own: they often arrive after later acks."""
    fill_jitter_ms: float = 15.0
    market_data_latency_ms: float = 5.0
    latency_load_factor: float = 0.5
    rate_limit_per_s: float = 20.0
    rate_limit_burst: float = 40.0
    venue_model: VenueModel = "hyperliquid"
    """How the venue handles our requests (``venues/exchange.py``): ``hyperliquid`` (block
    commits, snapshots from committed state) or ``fifo`` (first in, first out, Binance-like)."""
    block_ms: float = 70.0
    server_skew_ms: float = 0.0
    """The API server's clock minus the block clock (Hyperliquid), milliseconds."""
    priority_jump_rate_per_s: float = 0.0
    """Makers paying the ALO priority fee who join ahead of a new order of ours within
    400 ms of its arrival, per second (Hyperliquid; 0: none)."""

    def __post_init__(self) -> None:
        if not (self.flow_mu > 0.0 and 0.0 <= self.flow_alpha < self.flow_beta):
            raise ValueError("flow needs mu > 0 and 0 <= alpha < beta")
        if not (self.step_s > 0.0 and self.duration_s > 0.0 and self.k > 0.0):
            raise ValueError("step_s, duration_s and k must be positive")
        if not self.regimes:
            raise ValueError("regimes needs at least one multiplier")
        _ = self.venue_profile  # checks the venue's parameters

    @property
    def instrument(self) -> Instrument:
        return Instrument(
            symbol=self.symbol,
            tick_size=self.tick_size,
            lot_size=self.lot_size,
            min_notional=self.min_notional,
        )

    @property
    def venue_profile(self) -> VenueProfile:
        return VenueProfile(
            model=self.venue_model,
            block_ms=self.block_ms,
            server_skew_ms=self.server_skew_ms,
            priority_jump_rate_per_s=self.priority_jump_rate_per_s,
        )

    @property
    def fill_intensity_a(self) -> float:
        """Market orders per second per side at stationarity: GLFT's ``A``."""
        return self.flow_mu / (1.0 - self.flow_alpha / self.flow_beta)


class _Flow:
    """One side's Hawkes market-order arrivals, simulated exactly (Ogata thinning)."""

    __slots__ = ("alpha", "beta", "excitation", "mu")

    def __init__(self, mu: float, alpha: float, beta: float) -> None:
        self.mu, self.alpha, self.beta = mu, alpha, beta
        self.excitation = 0.0

    def arrivals(self, rng: random.Random, t0: float, t1: float) -> list[float]:
        out: list[float] = []
        t = t0
        mu, alpha, beta = self.mu, self.alpha, self.beta
        s = self.excitation
        while True:
            bound = mu + s
            t_next = t + rng.expovariate(bound)
            if t_next >= t1:
                s *= math.exp(-beta * (t1 - t))
                break
            s *= math.exp(-beta * (t_next - t))
            t = t_next
            if rng.random() * bound <= mu + s:
                out.append(t)
                s += alpha
        self.excitation = s
        return out

    def intensity(self) -> float:
        return self.mu + self.excitation


class SimMarket:
    """A ``MarketSource`` that generates one step of market at a time."""

    def __init__(self, params: SimParams, seed: int = 0) -> None:
        self.params = params
        self.rng = random.Random(f"market-{seed}")
        self.mid = params.mid0
        self.t_s = 0.0
        self.regime = 0
        self.flows = {
            Side.BUY: _Flow(params.flow_mu, params.flow_alpha, params.flow_beta),
            Side.SELL: _Flow(params.flow_mu, params.flow_alpha, params.flow_beta),
        }
        self._baseline = 2.0 * params.fill_intensity_a
        self._buffer: deque[BookUpdate | Trade] = deque()
        self._cascade_at_s = math.inf if params.cascade_at_s is None else params.cascade_at_s
        self.market_orders = 0
        self._bid_sizes: dict[int, float] = {}
        self._ask_sizes: dict[int, float] = {}
        self._buffer.append(self._book(0))

    def peek_ns(self) -> int | None:
        while not self._buffer:
            if self.t_s >= self.params.duration_s:
                return None
            self._step()
        return self._buffer[0].ts_ns

    def pop(self) -> BookUpdate | Trade:
        return self._buffer.popleft()

    def displayed_size(self, side: Side, price_ticks: int) -> float:
        return (self._bid_sizes if side is Side.BUY else self._ask_sizes).get(price_ticks, 0.0)

    def load(self) -> float:
        """Market-order intensity relative to its stationary level (1 when calm)."""
        total = self.flows[Side.BUY].intensity() + self.flows[Side.SELL].intensity()
        return total / self._baseline

    def _step(self) -> None:
        p = self.params
        rng = self.rng
        t0 = self.t_s
        t1 = t0 + p.step_s
        if t1 > self._cascade_at_s:
            self._cascade_at_s = math.inf  # once
            self.mid *= 1.0 + p.cascade_jump
            self.flows[p.cascade_side].excitation += p.cascade_kick
        regimes = len(p.regimes)
        if regimes > 1 and rng.random() < p.regime_switch_per_s * p.step_s:
            self.regime = (self.regime + 1 + rng.randrange(regimes - 1)) % regimes
        orders: list[tuple[float, Side]] = []
        for side, flow in self.flows.items():
            orders.extend((t, side) for t in flow.arrivals(rng, t0, t1))
        orders.sort()
        for t, side in orders:
            self._buffer.append(self._market_order(t, side))
        sigma = p.sigma * p.regimes[self.regime]
        dt = p.step_s
        move = (p.drift_per_s - 0.5 * sigma * sigma) * dt + sigma * math.sqrt(dt) * rng.gauss(
            0.0, 1.0
        )
        if p.jump_rate_per_s > 0.0 and rng.random() < p.jump_rate_per_s * dt:
            move += rng.gauss(0.0, p.jump_sigma)
        self.mid *= math.exp(move)
        self.t_s = t1
        self._buffer.append(self._book(int(t1 * _NS)))

    def _market_order(self, t: float, side: Side) -> Trade:
        p = self.params
        rng = self.rng
        self.market_orders += 1
        depth = rng.expovariate(p.k)
        mid_ticks = self.mid / p.tick_size
        best_bid = math.ceil(mid_ticks) - 1
        if side is Side.BUY:
            price_ticks = max(best_bid + 1, math.ceil(mid_ticks + depth))
        else:
            price_ticks = min(best_bid, math.floor(mid_ticks - depth))
        lots = max(1, int(rng.expovariate(1.0 / p.mean_order_size) / p.lot_size))
        return Trade(
            ts_ns=int(t * _NS),
            price=price_ticks * p.tick_size,
            size=lots * p.lot_size,
            aggressor=side,
        )

    def _book(self, ts_ns: int) -> BookUpdate:
        p = self.params
        rng = self.rng
        tick = p.tick_size
        best_bid = math.ceil(self.mid / tick) - 1
        bids = []
        asks = []
        bid_sizes = self._bid_sizes
        ask_sizes = self._ask_sizes
        bid_sizes.clear()
        ask_sizes.clear()
        for i in range(p.book_levels):
            scale = p.book_level_size * (1.0 + 0.5 * i)
            size_b = _lots(scale * rng.uniform(0.5, 1.5), p)
            size_a = _lots(scale * rng.uniform(0.5, 1.5), p)
            bid_sizes[best_bid - i] = size_b
            ask_sizes[best_bid + 1 + i] = size_a
            bids.append(((best_bid - i) * tick, size_b))
            asks.append(((best_bid + 1 + i) * tick, size_a))
        return BookUpdate(ts_ns=ts_ns, bids=tuple(bids), asks=tuple(asks))


def _lots(size: float, p: SimParams) -> float:
    """Synthetic displayed size on the lot grid (at least one lot)."""
    return max(1, int(size / p.lot_size)) * p.lot_size


def simulated_exchange(
    params: SimParams, seed: int = 0, *, request_expiry_s: float | None = 1.0
) -> ExchangeCore:
    """An ``ExchangeCore`` driven by a ``SimMarket`` with the params' fees, latency, limits and
    venue profile; ``request_expiry_s`` is the deadline the engine puts on its requests
    (``OrdersConfig.request_expiry_s``; None: none)."""
    return ExchangeCore(
        params.instrument,
        SimMarket(params, seed),
        seed=seed,
        initial_equity=params.initial_equity,
        fees=FeeModel(maker_bps=params.maker_fee_bps),
        order_latency=LatencyModel(
            base_ms=params.order_latency_ms,
            jitter_ms=params.order_jitter_ms,
            load_factor=params.latency_load_factor,
        ),
        fill_latency=LatencyModel(
            base_ms=params.fill_latency_ms,
            jitter_ms=params.fill_jitter_ms,
            load_factor=params.latency_load_factor,
        ),
        market_data_latency=LatencyModel(
            base_ms=params.market_data_latency_ms,
            jitter_ms=0.2 * params.market_data_latency_ms,
            load_factor=params.latency_load_factor,
        ),
        rate_limit=RateLimit(per_s=params.rate_limit_per_s, burst=params.rate_limit_burst),
        profile=params.venue_profile,
        request_expiry_s=request_expiry_s,
    )
