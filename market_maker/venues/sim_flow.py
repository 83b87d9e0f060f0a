"""Informed flow for the market simulator: moves announced by bursts of informed orders, and a
top-of-book size imbalance that predicts the next move.

**Informed moves** (``InformedMoves``). The mid makes discrete moves at ``rate_per_s`` (Poisson),
each of size ``Exponential(mean jump_bps)`` and random sign. A move is made by a burst of
informed aggressive orders on its side, ``Geometric`` in number (0, 1, 2, ... with mean
``orders_per_move``), each at a time drawn uniformly in the ``lead_s`` before the move's time:
the burst walks the price there. Each of its ``N`` orders sweeps to the price its share of the
move (``1/N`` of it) takes the mid to, and the mid and the book follow at once, as a real book
does after a sweep; a move no order announces (``N = 0``) is a jump of the book at its time.
So:

- the informed share ``f`` of all aggressive orders is ``informed rate / total rate``;
- an informed order sees its own step and those of the later orders of its burst within the
  horizon; the other moves in any window have random signs. The trade-signed mid move after an
  aggressive order, ``E[s * dmid(h)]``, is ``f * jump_bps * walk_share(h)``
  (``walk_share``: ``(q + g(h) (m - q)) / m`` with ``m`` the orders per move, ``q = m / (1 + m)``
  the chance a move has any, and ``g(h)`` the share of a burst's other orders an order sees
  within ``h``: ``1/2`` once ``h >= lead_s``). ``calibrate`` measures it on a capture at 0.1 s
  and 1 s, which identifies ``f`` and ``lead_s`` (with ``jump_bps`` and the rate from the
  mid's own moves);
- the moves carry ``rate * 2 * jump_bps**2`` of variance per second, whatever the burst size:
  many orders share one move, so a burst does not multiply the variance (the variance budget of
  a real market, where one-sided bursts move the price and most orders do not). The simulator
  takes it, and the imbalance drift's (over one second), out of its diffusion so the total
  stays ``sigma`` on the 1 s grid where the engine and ``calibrate`` measure it.

**Imbalance** (``ImbalanceProcess``). ``I = clip(mean + x, -0.95, 0.95)`` with ``x`` a Gaussian
AR(1) on the book grid (standard deviation ``sd``, half-life ``halflife_s``). The book shows it
in its top sizes, ``(bid - ask) / (bid + ask) = I``, and the mid drifts by ``c * (I - mean)``
per second, with ``c`` chosen so that the regression coefficient of the next 1 s mid change on
``I`` is ``beta_bps`` (the capture's statistic).

Both draw from the simulator's one ``random.Random``, O(1) per event.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque

__all__ = ["ImbalanceProcess", "InformedMoves", "imbalance_drift_per_s", "walk_share"]

_BPS = 1e-4


def walk_share(horizon_s: float, *, orders_per_move: float, lead_s: float) -> float:
    """The share of its move an informed order sees within ``horizon_s``, averaged over
    informed orders: its own step (``1/N`` of the move) and the steps of the burst's orders
    after it within the horizon. ``N`` is geometric with mean ``m``; an order at a uniform
    place in the lead sees ``g(h)`` of the others: ``(h - h**2 / (2 L)) / L`` for ``h < L``,
    ``1/2`` after."""
    m = orders_per_move
    if m <= 0.0:
        return 1.0
    q = m / (1.0 + m)
    lead = lead_s
    h = horizon_s
    g = 0.5 if h >= lead else (h - h * h / (2.0 * lead)) / lead
    return (q + g * (m - q)) / m


def imbalance_drift_per_s(*, beta_bps: float, halflife_s: float, step_s: float) -> float:
    """Mid drift per second per unit of imbalance (a fraction of price) that makes the next
    1 s mid change's regression coefficient on the imbalance ``beta_bps``: the drift acts on
    ``I`` step by step, and ``E[I_j - mean | I_0] = phi**j (I_0 - mean)``."""
    phi: float = 0.5 ** (step_s / halflife_s)
    steps = max(1, round(1.0 / step_s))
    return beta_bps * _BPS / (step_s * sum(phi**j for j in range(steps)))


def imbalance_variance_per_s(
    *, beta_bps: float, sd: float, halflife_s: float, step_s: float
) -> float:
    """Variance the imbalance drift adds to the mid's log returns over one second (the horizon
    on which ``sigma`` is measured), per second: ``c**2 dt**2 sd**2 sum_ij phi**|i-j|`` over the
    second's steps. Over longer horizons the drift's share grows, up to ``(1 + phi) / (1 - phi)``
    times ``c**2 dt sd**2`` per second."""
    if beta_bps == 0.0 or sd == 0.0:
        return 0.0
    c = imbalance_drift_per_s(beta_bps=beta_bps, halflife_s=halflife_s, step_s=step_s)
    phi: float = 0.5 ** (step_s / halflife_s)
    steps = max(1, round(1.0 / step_s))
    pairs = sum(phi ** abs(i - j) for i in range(steps) for j in range(steps))
    return c * c * sd * sd * step_s * step_s * pairs / (steps * step_s)


class ImbalanceProcess:
    """Top-of-book size imbalance with memory, and the drift it predicts."""

    __slots__ = ("_c", "_mean", "_noise", "_phi", "_x", "value")

    def __init__(
        self,
        rng: random.Random,
        *,
        mean: float,
        sd: float,
        halflife_s: float,
        beta_bps: float,
        step_s: float,
    ) -> None:
        self._phi: float = 0.5 ** (step_s / halflife_s)
        self._noise = sd * math.sqrt(1.0 - self._phi * self._phi)
        self._mean = mean
        self._c = imbalance_drift_per_s(beta_bps=beta_bps, halflife_s=halflife_s, step_s=step_s)
        self._x = rng.gauss(0.0, sd)  # stationary from the start
        self.value = self._display()

    def drift(self, dt: float) -> float:
        """Log move over the next ``dt`` predicted by the imbalance now on the book."""
        return self._c * (self.value - self._mean) * dt

    def advance(self, rng: random.Random) -> float:
        """One book step later: the new imbalance."""
        self._x = self._phi * self._x + self._noise * rng.gauss(0.0, 1.0)
        self.value = self._display()
        return self.value

    def _display(self) -> float:
        return min(0.95, max(-0.95, self._mean + self._x))


class InformedMoves:
    """Discrete mid moves, each made by a burst of informed orders that walks the price there.

    Moves are scheduled ``lead_s`` ahead of the simulated time so that their orders can arrive
    before them; ``orders(t1)`` hands out the informed orders up to ``t1``, each with its step
    of the move (the simulator moves the mid as the order prints), and ``moves(t1)`` the total
    log move of the moves up to ``t1`` that no order makes.
    """

    __slots__ = (
        "_heap",
        "_jump",
        "_lead",
        "_moves",
        "_next_t",
        "_q_log",
        "_rate",
        "_seq",
    )

    def __init__(
        self,
        rng: random.Random,
        *,
        rate_per_s: float,
        jump_bps: float,
        orders_per_move: float,
        lead_s: float,
    ) -> None:
        self._rate = rate_per_s
        self._jump = jump_bps * _BPS
        self._lead = lead_s
        q = orders_per_move / (1.0 + orders_per_move)  # P(N = n) = (1 - q) q^n, mean m
        self._q_log = math.log(q) if q > 0.0 else -math.inf
        self._heap: list[tuple[float, int, bool, float]] = []
        self._moves: deque[tuple[float, float]] = deque()
        self._seq = 0
        self._next_t = rng.expovariate(rate_per_s)

    def schedule(self, rng: random.Random, t0: float, t1: float) -> None:
        """Draw every move before ``t1 + lead_s`` with its burst (orders land at or after
        ``t0``: a move first seen now is at least ``lead_s`` past the previous step's end).
        Each of a burst's ``N`` orders carries ``1/N`` of the move; a move with no order is a
        jump at its time."""
        horizon = t1 + self._lead
        while self._next_t < horizon:
            t_move = self._next_t
            size = rng.expovariate(1.0 / self._jump)
            up = rng.random() < 0.5
            log_move = size if up else -size
            count = int(math.log(1.0 - rng.random()) / self._q_log) if self._q_log < 0.0 else 0
            if count == 0:
                self._moves.append((t_move, log_move))
            for _ in range(count):
                t = max(t0, t_move - self._lead * rng.random())
                self._seq += 1
                heapq.heappush(self._heap, (t, self._seq, up, log_move / count))
            self._next_t = t_move + rng.expovariate(self._rate)

    def orders(self, t1: float) -> list[tuple[float, bool, float]]:
        """Informed orders before ``t1``: (time, buy, the log step of the move it makes)."""
        out: list[tuple[float, bool, float]] = []
        heap = self._heap
        while heap and heap[0][0] < t1:
            t, _, up, step = heapq.heappop(heap)
            out.append((t, up, step))
        return out

    def moves(self, t1: float) -> float:
        """Total log move of the moves no order makes, at or before ``t1`` (each once)."""
        total = 0.0
        moves = self._moves
        while moves and moves[0][0] <= t1:
            total += moves.popleft()[1]
        return total
