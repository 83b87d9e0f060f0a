"""Market simulator: a mid price, self-exciting market-order flow and a synthetic book.

Models, each small and replaceable:

- **Price**: the mid follows geometric Brownian motion with ``sigma`` (fraction per sqrt second)
  and drift, scaled by a volatility regime (a Markov chain over ``regimes`` multipliers), plus
  Poisson jumps.
- **Flow**: market orders arrive on each side as a Hawkes process (``flow_mu``, ``flow_alpha``,
  ``flow_beta``; the sell side may have its own, ``sell_flow_*``), simulated exactly by Ogata
  thinning, so bursts cluster like real cascades. This flow is uninformed: it moves no price.
- **Informed flow** (``venues/sim_flow.py``, off unless ``informed_share > 0``): the mid also
  makes discrete moves (``informed_jump_rate_per_s``, mean ``informed_jump_bps``), each made
  by a one-sided burst of informed orders in the ``informed_lead_s`` before it that walks the
  price there: each order sweeps to the price its share of the move takes the mid to, and the
  mid and the book follow at once; ``informed_share`` of all aggressive orders are informed, so
  the trade-signed mid move after an order is ``informed_share * informed_jump_bps`` times the
  share of its burst's walk it sees (``sim_flow.walk_share``).
- **Imbalance** (off unless ``imbalance_sd > 0``): the top-of-book sizes show an imbalance with
  memory (``imbalance_halflife_s``) that drifts the mid, ``imbalance_beta_bps`` per unit over the
  next second. The diffusion gives up the variance the moves and the drift carry, so the mid's
  volatility stays ``sigma``.
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

from market_maker.funding import FundingModel, FundingSeries
from market_maker.model import BookUpdate, Instrument, Side, Trade
from market_maker.venues.exchange import (
    ExchangeCore,
    FeeModel,
    LatencyModel,
    RateLimit,
    VenueModel,
    VenueProfile,
)
from market_maker.venues.sim_flow import (
    ImbalanceProcess,
    InformedMoves,
    imbalance_variance_per_s,
    walk_share,
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
    sell_flow_mu: float | None = None
    """The sell side's own Hawkes baseline (None: ``flow_mu``, which is then the buy side's)."""
    sell_flow_alpha: float | None = None
    sell_flow_beta: float | None = None
    informed_share: float = 0.0
    """Share of all aggressive orders that know the next move (0: no informed flow)."""
    informed_jump_bps: float = 1.0
    """Mean size of an informed move, basis points (exponentially distributed)."""
    informed_jump_rate_per_s: float = 0.5
    """Informed moves per second; their bursts hold ``informed_orders_per_move`` on average."""
    informed_lead_s: float = 0.1
    """An informed order arrives uniformly within this before its move, seconds."""
    imbalance_sd: float = 0.0
    """Standard deviation of the top-of-book size imbalance (0: sizes drawn independently)."""
    imbalance_mean: float = 0.0
    imbalance_halflife_s: float = 0.4
    """Memory of the imbalance, seconds (the BTC capture: autocorrelation 0.84 at 0.1 s)."""
    imbalance_beta_bps: float = 0.0
    """Expected mid change over the next second per unit of imbalance, basis points."""
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
    taker_fee_bps: float = 4.5
    funding_rate: float = 0.0000125
    """Funding rate per ``funding_interval_s`` (positive: longs pay): Hyperliquid's interest
    component alone, 0.01 % per 8 hours paid hourly, i.e. no premium."""
    funding_interval_s: float = 3_600.0
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
        for mu, alpha, beta in (self.buy_flow, self.sell_flow):
            if not (mu > 0.0 and 0.0 <= alpha < beta):
                raise ValueError("flow needs mu > 0 and 0 <= alpha < beta")
        if not 0.0 <= self.informed_share < 1.0:
            raise ValueError("informed_share must be in [0, 1)")
        if self.informed_share > 0.0 and not (
            self.informed_jump_bps > 0.0
            and self.informed_jump_rate_per_s > 0.0
            and self.informed_lead_s >= 0.0
        ):
            raise ValueError("informed flow needs jump_bps > 0, jump_rate_per_s > 0, lead_s >= 0")
        if not (0.0 <= self.imbalance_sd <= 2.0 and abs(self.imbalance_mean) < 0.9):
            raise ValueError("imbalance_sd must be in [0, 2] and |imbalance_mean| < 0.9")
        if self.imbalance_halflife_s <= 0.0:
            raise ValueError("imbalance_halflife_s must be positive")
        if self.imbalance_beta_bps != 0.0 and self.imbalance_sd == 0.0:
            raise ValueError("imbalance_beta_bps needs imbalance_sd > 0")
        if self.diffusion_variance_per_s < 0.0:
            raise ValueError(
                f"informed moves and imbalance drift carry {self.informed_variance_per_s:.3g} "
                f"of variance per second, more than sigma^2 = {self.sigma**2:.3g}: lower "
                "informed_jump_bps, informed_jump_rate_per_s or imbalance_beta_bps"
            )
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
            maker_fee_bps=self.maker_fee_bps,
            taker_fee_bps=self.taker_fee_bps,
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
    def buy_flow(self) -> tuple[float, float, float]:
        """The buy side's Hawkes (mu, alpha, beta)."""
        return self.flow_mu, self.flow_alpha, self.flow_beta

    @property
    def sell_flow(self) -> tuple[float, float, float]:
        """The sell side's Hawkes (mu, alpha, beta): its own where given, else the buy side's."""
        return (
            self.flow_mu if self.sell_flow_mu is None else self.sell_flow_mu,
            self.flow_alpha if self.sell_flow_alpha is None else self.sell_flow_alpha,
            self.flow_beta if self.sell_flow_beta is None else self.sell_flow_beta,
        )

    @property
    def uninformed_rate_per_s(self) -> float:
        """Uninformed market orders per second, both sides, at stationarity."""
        return sum(mu / (1.0 - alpha / beta) for mu, alpha, beta in (self.buy_flow, self.sell_flow))

    @property
    def informed_rate_per_s(self) -> float:
        """Informed orders per second, both sides: ``share / (1 - share)`` of the uninformed."""
        f = self.informed_share
        return self.uninformed_rate_per_s * f / (1.0 - f)

    @property
    def informed_orders_per_move(self) -> float:
        """Mean size of the burst announcing one informed move."""
        if self.informed_share == 0.0:
            return 0.0
        return self.informed_rate_per_s / self.informed_jump_rate_per_s

    def trade_signed_move_bps(self, horizon_s: float) -> float:
        """Expected trade-signed mid move ``horizon_s`` after an aggressive order, bps:
        ``informed_share * informed_jump_bps`` times the share of its burst's walk an
        informed order sees by then (the uninformed move nothing)."""
        if self.informed_share == 0.0:
            return 0.0
        seen = walk_share(
            horizon_s, orders_per_move=self.informed_orders_per_move, lead_s=self.informed_lead_s
        )
        return self.informed_share * self.informed_jump_bps * seen

    @property
    def informed_variance_per_s(self) -> float:
        """Variance of log returns per second carried by informed moves and imbalance drift."""
        jumps = 0.0
        if self.informed_share > 0.0:
            jumps = self.informed_jump_rate_per_s * 2.0 * (self.informed_jump_bps * 1e-4) ** 2
        return jumps + imbalance_variance_per_s(
            beta_bps=self.imbalance_beta_bps,
            sd=self.imbalance_sd,
            halflife_s=self.imbalance_halflife_s,
            step_s=self.step_s,
        )

    @property
    def diffusion_variance_per_s(self) -> float:
        """What is left of ``sigma**2`` for the Brownian part."""
        return self.sigma * self.sigma - self.informed_variance_per_s

    @property
    def fill_intensity_a(self) -> float:
        """Market orders per second per side at stationarity (informed ones too): GLFT's
        ``A``."""
        return 0.5 * (self.uninformed_rate_per_s + self.informed_rate_per_s)


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
            Side.BUY: _Flow(*params.buy_flow),
            Side.SELL: _Flow(*params.sell_flow),
        }
        extra = params.informed_variance_per_s
        self._sigma = params.sigma if extra == 0.0 else math.sqrt(params.diffusion_variance_per_s)
        """The diffusion's sigma: what the informed moves and the drift leave of ``sigma``."""
        self.informed: InformedMoves | None = None
        if params.informed_share > 0.0:
            self.informed = InformedMoves(
                self.rng,
                rate_per_s=params.informed_jump_rate_per_s,
                jump_bps=params.informed_jump_bps,
                orders_per_move=params.informed_orders_per_move,
                lead_s=params.informed_lead_s,
            )
        self.imbalance: ImbalanceProcess | None = None
        if params.imbalance_sd > 0.0:
            self.imbalance = ImbalanceProcess(
                self.rng,
                mean=params.imbalance_mean,
                sd=params.imbalance_sd,
                halflife_s=params.imbalance_halflife_s,
                beta_bps=params.imbalance_beta_bps,
                step_s=params.step_s,
            )
        self.informed_orders = 0
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
        orders: list[tuple[float, Side, float]] = []
        for side, flow in self.flows.items():
            orders.extend((t, side, 0.0) for t in flow.arrivals(rng, t0, t1))
        informed = self.informed
        if informed is not None:
            informed.schedule(rng, t0, t1)
            known = informed.orders(t1)
            self.informed_orders += len(known)
            orders.extend((t, Side.BUY if buy else Side.SELL, move) for t, buy, move in known)
        orders.sort()
        buffer = self._buffer
        for t, side, step in orders:
            buffer.append(self._market_order(t, side, step))
            if step != 0.0:
                # The sweep took the book there: the mid and the book follow at once.
                self.mid *= math.exp(step)
                buffer.append(self._book(buffer[-1].ts_ns))
        sigma = self._sigma * p.regimes[self.regime]
        dt = p.step_s
        move = (p.drift_per_s - 0.5 * sigma * sigma) * dt + sigma * math.sqrt(dt) * rng.gauss(
            0.0, 1.0
        )
        if p.jump_rate_per_s > 0.0 and rng.random() < p.jump_rate_per_s * dt:
            move += rng.gauss(0.0, p.jump_sigma)
        if informed is not None:
            move += informed.moves(t1)
        if self.imbalance is not None:
            move += self.imbalance.drift(dt)
            self.imbalance.advance(rng)
        self.mid *= math.exp(move)
        self.t_s = t1
        self._buffer.append(self._book(int(t1 * _NS)))

    def _market_order(self, t: float, side: Side, log_move: float = 0.0) -> Trade:
        """A market order reaching ``Exponential(k)`` ticks from the mid; an informed one
        (``log_move`` is its step of a move) sweeps at least to where its step takes the mid."""
        p = self.params
        rng = self.rng
        self.market_orders += 1
        depth = rng.expovariate(p.k)
        mid_ticks = self.mid / p.tick_size
        if log_move != 0.0:
            depth = max(depth, mid_ticks * abs(math.expm1(log_move)))
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
        imbalance = self.imbalance
        for i in range(p.book_levels):
            scale = p.book_level_size * (1.0 + 0.5 * i)
            if i == 0 and imbalance is not None:
                # The top sizes show the imbalance: (bid - ask) / (bid + ask) = I.
                total = 2.0 * scale * rng.uniform(0.5, 1.5)
                size_b = _lots(0.5 * total * (1.0 + imbalance.value), p)
                size_a = _lots(0.5 * total * (1.0 - imbalance.value), p)
            else:
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
        fees=FeeModel(maker_bps=params.maker_fee_bps, taker_bps=params.taker_fee_bps),
        funding=FundingModel(
            venue=params.venue_model,
            interval_s=params.funding_interval_s,
            cap=0.04 if params.venue_model == "hyperliquid" else None,
        ),
        funding_rates=FundingSeries.constant(params.funding_rate),
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
