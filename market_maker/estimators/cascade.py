"""Cascade detection that calibrates itself: trade arrivals now against their long-run rate.

Two exponentially weighted arrival rates, O(1) per event and per query:

- short term: ``S <- S * exp(-dt / window_s) + 1`` per arrival, so ``S`` is the count over about
  the last ``window_s`` seconds (an exponential-kernel intensity with decay ``1 / window_s``);
- long run: the same over ``baseline_s`` (tens of minutes), normalised by the weighted time
  observed, and warm-started: at first it is the configured ``prior_rate`` (weighted as
  ``prior_weight_s`` seconds of data), which fades as real data accumulate.

``ratio = (S + m) / (long_rate * window_s + m)``: how many times more arrivals the last few
seconds brought than the market's own normal rate predicts. ``m`` (``min_events``) is a pseudo
count so that on a quiet market a handful of trades is not a "5x burst". The ratio is 1 until
``warmup_s`` of data have been seen. Nothing here needs calibrating per market: the baseline is
whatever the market normally does.
"""

from __future__ import annotations

import math

__all__ = ["CascadeDetector"]

_exp = math.exp


class CascadeDetector:
    __slots__ = (
        "_first_t",
        "_last_t",
        "_long",
        "_short",
        "baseline_s",
        "count",
        "min_events",
        "prior_rate",
        "prior_weight_s",
        "warmup_s",
        "window_s",
    )

    def __init__(
        self,
        *,
        prior_rate: float,
        window_s: float = 5.0,
        baseline_s: float = 1200.0,
        prior_weight_s: float = 5.0,
        warmup_s: float = 60.0,
        min_events: float = 5.0,
    ) -> None:
        if not (prior_rate > 0.0 and window_s > 0.0 and baseline_s > window_s):
            raise ValueError("need prior_rate > 0 and 0 < window_s < baseline_s")
        self.prior_rate = prior_rate
        self.window_s = window_s
        self.baseline_s = baseline_s
        self.prior_weight_s = prior_weight_s
        self.warmup_s = warmup_s
        self.min_events = min_events
        self.reset()

    def reset(self) -> None:
        self._short = 0.0
        self._long = 0.0
        self._first_t = math.nan
        self._last_t = math.nan
        self.count = 0

    @property
    def initialized(self) -> bool:
        return self.count > 0

    def update(self, t_s: float) -> None:
        """One arrival at ``t_s`` (seconds); an earlier time counts at the last one, a
        non-finite time is ignored."""
        if not math.isfinite(t_s):
            return
        if self.count == 0:
            self._first_t = self._last_t = t_s
        else:
            dt = t_s - self._last_t
            if dt > 0.0:  # False for NaN
                self._short *= _exp(-dt / self.window_s)
                self._long *= _exp(-dt / self.baseline_s)
                self._last_t = t_s
        self._short += 1.0
        self._long += 1.0
        self.count += 1

    def short_count(self, t_s: float) -> float:
        """Arrivals over about the last ``window_s`` seconds, at ``t_s`` (does not mutate)."""
        dt = t_s - self._last_t
        return self._short * _exp(-dt / self.window_s) if dt > 0.0 else self._short

    def long_rate(self, t_s: float) -> float:
        """Arrivals per second over about the last ``baseline_s``, warm-started by the prior."""
        if self.count == 0:
            return self.prior_rate
        b = self.baseline_s
        dt = t_s - self._last_t
        decayed = self._long * _exp(-dt / b) if dt > 0.0 else self._long
        elapsed = t_s - self._first_t if t_s > self._first_t else 0.0
        fade = _exp(-elapsed / b)
        prior_w = self.prior_weight_s * fade
        weight = b * (1.0 - fade) + prior_w
        if weight <= 0.0:  # no prior weight and no time elapsed yet: only the prior to go by
            return self.prior_rate
        return (decayed + self.prior_rate * prior_w) / weight

    def ratio(self, t_s: float) -> float:
        """Short-term arrivals over what the long-run rate predicts; 1 while warming up."""
        return self.rates(t_s)[1]

    def rates(self, t_s: float) -> tuple[float, float]:
        """``(long_rate(t_s), ratio(t_s))``, the long-run rate computed once."""
        long_rate = self.long_rate(t_s)
        if self.count == 0 or not t_s - self._first_t >= self.warmup_s:
            return long_rate, 1.0
        m = self.min_events
        return long_rate, (self.short_count(t_s) + m) / (long_rate * self.window_s + m)
