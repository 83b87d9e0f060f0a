"""The adverse move after our own fills: how far the mid goes against a fill ``horizon_s``
later, in bps of the fill price, decayed over fills and shrunk towards a prior.

``on_fill`` queues a fill; ``on_mid`` settles every queued fill whose horizon has passed at
the mid then (a fill's markout is ``s * (mid(t + h) - price) / price``; the adverse move is its
negative). The estimate is ``(w0 * prior + S) / (w0 + W)`` with ``S`` and ``W`` the decayed
sum of adverse moves and of weights (each fill weighs 1, older ones ``0.5 ** (1 / halflife)``
less per later fill): with no fills it is the prior, after many the fills' own recent mean.
O(1) amortised per event; the queue holds the fills of the last ``horizon_s`` (bounded).
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["AdverseSelection"]

_MAX_QUEUED = 10_000


class AdverseSelection:
    __slots__ = ("_decay", "_horizon_ns", "_prior", "_prior_weight", "_queue", "_sum", "_weight")

    def __init__(
        self, *, prior_bps: float, prior_fills: float, halflife_fills: float, horizon_s: float
    ) -> None:
        self._prior = prior_bps
        self._prior_weight = prior_fills
        self._decay = 0.5 ** (1.0 / halflife_fills)
        self._horizon_ns = int(horizon_s * 1e9)
        self._queue: deque[tuple[int, float, float]] = deque()
        self._sum = 0.0
        self._weight = 0.0

    @property
    def bps(self) -> float:
        """The expected adverse move after a fill, bps (positive: the mid goes against us)."""
        w = self._prior_weight + self._weight
        return (self._prior_weight * self._prior + self._sum) / w if w > 0.0 else self._prior

    @property
    def settled(self) -> float:
        """The decayed weight of fills settled so far (0 before the first)."""
        return self._weight

    def on_fill(self, ts_ns: int, buy: bool, price: float) -> None:
        if not (price > 0.0 and math.isfinite(price)):
            return
        queue = self._queue
        if len(queue) >= _MAX_QUEUED:
            queue.popleft()  # a flood of fills: the oldest go unsettled
        queue.append((ts_ns + self._horizon_ns, 1.0 if buy else -1.0, price))

    def on_mid(self, ts_ns: int, mid: float) -> None:
        queue = self._queue
        if not queue or queue[0][0] > ts_ns or not mid > 0.0:
            return
        decay = self._decay
        while queue and queue[0][0] <= ts_ns:
            _, sign, price = queue.popleft()
            adverse = -sign * (mid - price) / price * 1e4
            self._sum = self._sum * decay + adverse
            self._weight = self._weight * decay + 1.0
