"""Our own request budget, so the venue never has to throttle us.

A token bucket in virtual time: ``per_s`` tokens a second up to ``burst``. The order manager
spends one token per action and, when tokens run short, sends cancels first (they reduce risk)
and leaves re-pricing for a later cycle. Pure: time comes in as an argument.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]

_NS = 1e-9


class TokenBucket:
    __slots__ = ("_last_ns", "burst", "per_s", "tokens")

    def __init__(self, per_s: float, burst: float) -> None:
        if not (per_s > 0.0 and burst >= 1.0):
            raise ValueError("per_s must be positive and burst at least 1")
        self.per_s = per_s
        self.burst = burst
        self.tokens = burst
        self._last_ns: int | None = None

    def available(self, ts_ns: int) -> int:
        """Whole tokens available at ``ts_ns`` (refills first)."""
        last = self._last_ns
        if last is None or ts_ns > last:
            if last is not None:
                self.tokens = min(self.burst, self.tokens + (ts_ns - last) * _NS * self.per_s)
            self._last_ns = ts_ns
        return int(self.tokens)

    def spend(self, n: int) -> None:
        self.tokens -= n
