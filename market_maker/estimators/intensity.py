"""Fill intensity ``lambda(delta) = A * exp(-k * delta)`` from public trades, delta in whole ticks.

Time is cut into steps of ``step_s``. In each step and for each side we keep the deepest trade
relative to the mid at the start of the step (buys: ``price - mid``; sells: ``mid - price``), in
whole ticks rounded down: a print 2.7 ticks away would have filled resting orders at depths 0, 1
and 2. A rolling window of steps keeps, per depth level, how many (step, side) pairs reached at
least that depth; dividing by the window length and by two sides gives the per-side rate at
which an order resting at that depth would have been hit. ``ln lambda = ln A - k * delta`` is
then fitted by least squares, weighted by hit counts, over the levels that were reached.

Depth is in whole ticks (the hftbacktest tutorial indexes half-ticks while calling them ticks,
which makes its k per half-tick).

Work per trade is O(1); closing a step is O(max_depth_ticks); memory is fixed by
``window_s / step_s`` and ``max_depth_ticks``.
"""

from __future__ import annotations

import math

__all__ = ["FillIntensityEstimator"]

_isfinite = math.isfinite
_NO_TRADE = -1


class FillIntensityEstimator:
    """Rolling least-squares estimate of ``A`` (fills/s at zero depth) and ``k`` (per tick)."""

    __slots__ = (
        "_a_prior",
        "_buy_depth",
        "_counts",
        "_k_prior",
        "_last_t",
        "_mid",
        "_next_refit_t",
        "_ref_mid",
        "_ring",
        "_ring_pos",
        "_sell_depth",
        "_step_end_t",
        "_steps_seen",
        "a",
        "count",
        "fitted",
        "k",
        "max_depth_ticks",
        "refit_interval_s",
        "rejected",
        "step_s",
        "tick_size",
        "window_steps",
    )

    def __init__(
        self,
        *,
        tick_size: float,
        step_s: float = 0.1,
        window_s: float = 600.0,
        max_depth_ticks: int = 20,
        refit_interval_s: float = 5.0,
        a_prior: float = 1.0,
        k_prior: float = 0.5,
    ) -> None:
        if not (_isfinite(tick_size) and tick_size > 0.0):
            raise ValueError(f"tick_size must be positive, got {tick_size!r}")
        if not (_isfinite(step_s) and step_s > 0.0 and _isfinite(window_s) and window_s >= step_s):
            raise ValueError("step_s must be positive and window_s at least one step")
        if max_depth_ticks < 2:
            raise ValueError("max_depth_ticks must be at least 2")
        if not (a_prior > 0.0 and k_prior > 0.0):
            raise ValueError("a_prior and k_prior must be positive")
        self.tick_size = tick_size
        self.step_s = step_s
        self.window_steps = max(1, int(window_s / step_s))
        self.max_depth_ticks = max_depth_ticks
        self.refit_interval_s = refit_interval_s
        self._a_prior = a_prior
        self._k_prior = k_prior
        self._ring: list[int] = [_NO_TRADE] * (2 * self.window_steps)
        self._counts: list[int] = [0] * (max_depth_ticks + 1)
        self.reset()

    def reset(self) -> None:
        """Forget the window and go back to the priors."""
        self.a = self._a_prior
        self.k = self._k_prior
        self.fitted = False
        self.count = 0
        self.rejected = 0
        self._clear_window()
        self._mid = math.nan
        self._ref_mid = math.nan
        self._last_t = -math.inf
        self._step_end_t = math.nan
        self._next_refit_t = -math.inf
        self._buy_depth = _NO_TRADE
        self._sell_depth = _NO_TRADE

    @property
    def initialized(self) -> bool:
        """True once A and k come from data rather than the priors."""
        return self.fitted

    def intensity(self, depth_ticks: float) -> float:
        """Current model rate of fills per second for an order ``depth_ticks`` from the mid."""
        return self.a * math.exp(-self.k * depth_ticks)

    def level_rates(self) -> list[float]:
        """Observed per-side rate (per second) of trades reaching each whole-tick depth."""
        return [self._rate(c) for c in self._counts]

    def _rate(self, hits: int) -> float:
        pairs = 2 * self._steps_seen
        if pairs == 0 or hits <= 0:
            return 0.0
        share = min(hits, pairs - 0.5) / pairs  # a level hit every step is at least this busy
        return -math.log1p(-share) / self.step_s

    def on_mid(self, mid: float, t_s: float) -> None:
        """Advance time to ``t_s`` and record the latest mid."""
        if not (_isfinite(mid) and mid > 0.0 and _isfinite(t_s)) or not self._advance(t_s):
            self.rejected += 1
            return
        self._mid = mid
        if self._step_end_t != self._step_end_t:  # first mid: the first step starts now
            self._ref_mid = mid
            self._step_end_t = t_s + self.step_s

    def update(self, price: float, t_s: float, is_buy: bool | None = None) -> None:
        """Record a public trade at ``price``; ``is_buy`` is the aggressor side if known."""
        if not (_isfinite(price) and price > 0.0 and _isfinite(t_s)) or self._mid != self._mid:
            self.rejected += 1
            return
        if not self._advance(t_s):
            self.rejected += 1
            return
        mid = self._ref_mid
        if is_buy is None:
            is_buy = price >= mid
        offset = (price - mid) if is_buy else (mid - price)
        # Through the mid counts as depth 0; the epsilon keeps a print exactly on a tick boundary
        # from being floored one level short.
        depth = int(offset / self.tick_size + 1e-9) if offset > 0.0 else 0
        if depth > self.max_depth_ticks:
            depth = self.max_depth_ticks
        self.count += 1
        if is_buy:
            if depth > self._buy_depth:
                self._buy_depth = depth
        elif depth > self._sell_depth:
            self._sell_depth = depth

    def _advance(self, t_s: float) -> bool:
        """Close every step that ended at or before ``t_s``; False when time goes backwards."""
        if t_s < self._last_t:
            return False
        self._last_t = t_s
        end = self._step_end_t
        if not t_s >= end:  # inside the current step, or no mid yet (end is NaN)
            return True
        steps = int((t_s - end) / self.step_s) + 1
        if steps > self.window_steps:
            self._clear_window()  # idle longer than the window: everything aged out
        else:
            self._close_step(self._buy_depth, self._sell_depth)
            for _ in range(steps - 1):
                self._close_step(_NO_TRADE, _NO_TRADE)
        self._buy_depth = _NO_TRADE
        self._sell_depth = _NO_TRADE
        self._ref_mid = self._mid
        end += steps * self.step_s
        self._step_end_t = end if end > t_s else t_s + self.step_s
        if t_s >= self._next_refit_t:
            self._refit()
            self._next_refit_t = t_s + self.refit_interval_s
        return True

    def _clear_window(self) -> None:
        self._ring[:] = [_NO_TRADE] * len(self._ring)
        self._counts[:] = [0] * len(self._counts)
        self._ring_pos = 0
        self._steps_seen = 0

    def _close_step(self, buy_depth: int, sell_depth: int) -> None:
        counts = self._counts
        ring = self._ring
        pos = self._ring_pos
        # The step leaving the window counted at depths 0..old, the one entering at 0..new:
        # only the depths between the two change.
        old = ring[pos]
        if buy_depth > old:
            for d in range(old + 1, buy_depth + 1):
                counts[d] += 1
        elif buy_depth < old:
            for d in range(buy_depth + 1, old + 1):
                counts[d] -= 1
        old = ring[pos + 1]
        if sell_depth > old:
            for d in range(old + 1, sell_depth + 1):
                counts[d] += 1
        elif sell_depth < old:
            for d in range(sell_depth + 1, old + 1):
                counts[d] -= 1
        ring[pos] = buy_depth
        ring[pos + 1] = sell_depth
        pos += 2
        self._ring_pos = 0 if pos >= len(ring) else pos
        if self._steps_seen < self.window_steps:
            self._steps_seen += 1

    def _refit(self) -> None:
        """Weighted least squares of ln(rate) on depth over the levels reached; keeps k > 0 only.

        Each level is weighted by its hit count, since ``var(ln count) ~ 1 / count``: the sparse
        deep levels would otherwise drag k (an unweighted fit of ln rate is biased by them).
        """
        levels = 0
        sw = sx = sy = sxx = sxy = 0.0
        for depth, hits in enumerate(self._counts):
            if hits <= 0:
                break  # counts are non-increasing in depth: nothing deeper was reached
            y = math.log(self._rate(hits))
            levels += 1
            sw += hits
            sx += hits * depth
            sy += hits * y
            sxx += hits * depth * depth
            sxy += hits * depth * y
        if levels < 2:
            return
        slope = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
        if not slope < 0.0:
            return
        self.k = -slope
        self.a = math.exp((sy - slope * sx) / sw)
        self.fitted = True
