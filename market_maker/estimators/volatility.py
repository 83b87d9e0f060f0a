"""Online volatility of mid-price log returns (Welford), per sqrt(second).

The mid is sampled on a fixed time grid (``sample_interval_s``): the first observation at or
after each grid point becomes a sample, so bursts of quotes between grid points (bid-ask bounce)
add nothing. Each sample's return is normalised by the time actually elapsed since the previous
sample, ``x = ln(p_i / p_{i-1}) / sqrt(t_i - t_{i-1})``, so a gap spanning several intervals is
one correctly scaled observation and ``sigma = sqrt(var(x))`` is per sqrt(second).

With ``halflife_s`` set, older samples are down-weighted by ``0.5 ** (age / halflife_s)`` using
the weighted incremental (West) form of Welford's update.
"""

from __future__ import annotations

import math

__all__ = ["IncrementalVolStats"]

_isfinite = math.isfinite
_log = math.log
_sqrt = math.sqrt
_floor = math.floor


class IncrementalVolStats:
    """O(1) Welford mean and variance of grid-sampled, time-normalised log returns.

    ``count`` is the number of returns folded in; ``initialized`` is true from two returns on.
    Non-finite or non-positive prices, non-finite times and times earlier than the last
    observation are ignored and counted in ``rejected``.
    """

    __slots__ = (
        "_decay_per_s",
        "_last_seen_t",
        "_m2",
        "_next_sample_t",
        "_sample_price",
        "_sample_t",
        "_weight",
        "count",
        "halflife_s",
        "mean",
        "rejected",
        "sample_interval_s",
    )

    def __init__(self, sample_interval_s: float = 1.0, halflife_s: float | None = None) -> None:
        if not (_isfinite(sample_interval_s) and sample_interval_s > 0.0):
            raise ValueError(f"sample_interval_s must be positive, got {sample_interval_s!r}")
        if halflife_s is not None and not (_isfinite(halflife_s) and halflife_s > 0.0):
            raise ValueError(f"halflife_s must be positive, got {halflife_s!r}")
        self.sample_interval_s = sample_interval_s
        self.halflife_s = halflife_s
        self._decay_per_s = 0.0 if halflife_s is None else math.log(2.0) / halflife_s
        self.reset()

    def reset(self) -> None:
        """Forget every sample."""
        self.count = 0
        self.rejected = 0
        self.mean = 0.0
        self._m2 = 0.0
        self._weight = 0.0
        self._sample_price = 0.0
        self._sample_t = -math.inf
        self._next_sample_t = -math.inf
        self._last_seen_t = -math.inf

    @property
    def initialized(self) -> bool:
        return self.count >= 2

    @property
    def variance(self) -> float:
        """Variance of the normalised returns, per second.

        Unweighted: the unbiased sample variance (``ddof=1``). With forgetting: ``M2 / W``.
        """
        if self.count < 2:
            return 0.0
        if self._decay_per_s:
            return self._m2 / self._weight
        return self._m2 / (self.count - 1)

    @property
    def sigma(self) -> float:
        """Volatility, fraction of price per sqrt(second); 0 until initialized."""
        v = self.variance
        return _sqrt(v) if v > 0.0 else 0.0

    def update(self, price: float, t_s: float) -> None:
        """Observe ``price`` at ``t_s`` seconds; folds in a return when a grid point has passed."""
        if not (_isfinite(price) and price > 0.0 and _isfinite(t_s) and t_s >= self._last_seen_t):
            self.rejected += 1
            return
        self._last_seen_t = t_s
        if t_s < self._next_sample_t:
            return
        prev_t = self._sample_t
        prev_price = self._sample_price
        dt = t_s - prev_t
        ratio = price / prev_price if prev_price > 0.0 else 1.0
        if not (0.0 < ratio < math.inf):
            self.rejected += 1  # a return too extreme to represent (denormal or huge prices)
            return
        self._next_sample_t = (_floor(t_s / self.sample_interval_s) + 1.0) * self.sample_interval_s
        self._sample_t = t_s
        self._sample_price = price
        if not (dt > 0.0) or dt == math.inf:
            return  # the first sample: nothing to difference against
        x = _log(ratio) / _sqrt(dt)
        self.count += 1
        if self._decay_per_s:
            w = self._weight * math.exp(-self._decay_per_s * dt) + 1.0
            shrink = (w - 1.0) / self._weight if self._weight else 0.0
            delta = x - self.mean
            self.mean += delta / w
            self._m2 = self._m2 * shrink + delta * (x - self.mean)
            self._weight = w
        else:
            delta = x - self.mean
            self.mean += delta / self.count
            self._m2 += delta * (x - self.mean)
