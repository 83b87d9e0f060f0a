"""Hawkes process of trade arrivals with an exponential kernel.

``lambda(t) = mu + sum_i alpha * m_i * exp(-beta * (t - t_i))``

``IncrementalHawkes`` keeps the excitation sum ``S`` at the last event time and decays it on
demand, so each update and each query is O(1) whatever the history length. The offline
maximum-likelihood fit (``fit_hawkes``) lives in ``estimators/fit.py``, so that running the
engine never imports scipy.
"""

from __future__ import annotations

import math

__all__ = ["IncrementalHawkes"]

_isfinite = math.isfinite
_exp = math.exp


class IncrementalHawkes:
    """O(1) Hawkes intensity tracker.

    ``update(t_s, mark)`` records an event at ``t_s`` seconds; events at the same instant are
    allowed (a batch of prints), events earlier than the last one, non-finite times and marks
    that are not positive are ignored and counted in ``rejected``.
    """

    __slots__ = ("_excitation", "_last_t", "alpha", "beta", "count", "mu", "rejected")

    def __init__(self, mu: float, alpha: float, beta: float) -> None:
        if not (_isfinite(mu) and mu > 0.0):
            raise ValueError(f"mu must be a positive finite rate, got {mu!r}")
        if not (_isfinite(beta) and beta > 0.0):
            raise ValueError(f"beta must be a positive finite rate, got {beta!r}")
        if not (_isfinite(alpha) and 0.0 <= alpha < beta):
            raise ValueError(f"alpha must satisfy 0 <= alpha < beta (stationary), got {alpha!r}")
        self.mu = mu
        self.alpha = alpha
        self.beta = beta
        self.count = 0
        self.rejected = 0
        self._excitation = 0.0
        self._last_t = -math.inf

    @property
    def initialized(self) -> bool:
        """True once at least one event has been recorded."""
        return self.count > 0

    @property
    def branching_ratio(self) -> float:
        """Expected children per event, ``alpha / beta`` (for unit marks)."""
        return self.alpha / self.beta

    def update(self, t_s: float, mark: float = 1.0) -> None:
        """Record an event of weight ``mark`` at ``t_s`` seconds."""
        last = self._last_t
        if not (_isfinite(t_s) and t_s >= last and _isfinite(mark) and mark > 0.0):
            self.rejected += 1
            return
        # Before the first event last is -inf and the (zero) excitation decays to zero.
        self._excitation = self._excitation * _exp(-self.beta * (t_s - last)) + self.alpha * mark
        self._last_t = t_s
        self.count += 1

    def intensity(self, t_s: float) -> float:
        """Intensity at ``t_s`` (events per second); does not change state.

        A query earlier than the last event (or not finite) answers at the last event time.
        """
        dt = t_s - self._last_t
        if dt > 0.0:
            return self.mu + self._excitation * _exp(-self.beta * dt)
        return self.mu + self._excitation

    def ratio(self, t_s: float) -> float:
        """``intensity(t_s) / mu``: 1 with no recent events, large in a cascade."""
        return self.intensity(t_s) / self.mu

    @property
    def stationary_intensity(self) -> float:
        """Long-run average rate ``mu / (1 - alpha / beta)`` (unit marks)."""
        return self.mu / (1.0 - self.alpha / self.beta)

    def activity(self, t_s: float) -> float:
        """``intensity(t_s) / stationary_intensity``: about 1 in normal trading.

        The kill switch's cascade thresholds use this rather than ``ratio``: with a branching
        ratio of 0.5 the intensity sits at twice ``mu`` on average, so ``ratio`` would call
        ordinary clustering a cascade.
        """
        return self.intensity(t_s) * (1.0 - self.alpha / self.beta) / self.mu

    def reset(self) -> None:
        """Forget every event (parameters are kept)."""
        self.count = 0
        self.rejected = 0
        self._excitation = 0.0
        self._last_t = -math.inf
