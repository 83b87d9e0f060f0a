"""Our own request budget, so the venue never has to throttle us.

A token bucket in virtual time: ``per_s`` tokens a second up to ``burst``. The order manager
spends one token per action and, when tokens run short, sends cancels first (they reduce risk)
and leaves re-pricing for a later cycle. Pure: time comes in as an argument.

The bucket is kept as the instant it would be empty, in integer nanoseconds (the generic cell
rate algorithm's form): the tokens at ``ts`` are ``(ts - empty_ns) * per_s``, capped at
``burst``. Adding refills float by float on every read made the budget depend on how often it
was read (``0.1 + 0.2`` is not ``0.3``), so an engine that skips cycles and one that runs them
all could see 0 and 1 token at the same instant and send different orders.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    __slots__ = ("_empty_ns", "_full_ns", "_token_ns", "burst", "per_s")

    def __init__(self, per_s: float, burst: float) -> None:
        if not (per_s > 0.0 and burst >= 1.0):
            raise ValueError("per_s must be positive and burst at least 1")
        self.per_s = per_s
        self.burst = burst
        self._token_ns = 1e9 / per_s
        self._full_ns = round(burst * self._token_ns)
        """How long an empty bucket takes to fill."""
        self._empty_ns = -(1 << 62)
        """When the bucket would be empty if nothing refilled it (long ago: full)."""

    def available(self, ts_ns: int) -> int:
        """Whole tokens available at ``ts_ns``."""
        return int(self.tokens_at(ts_ns) + 1e-9)

    def tokens_at(self, ts_ns: int) -> float:
        """Tokens at ``ts_ns``, fractions included."""
        empty = self._empty_ns
        if ts_ns - empty >= self._full_ns:
            self._empty_ns = empty = ts_ns - self._full_ns  # full: nothing banks beyond it
        return (ts_ns - empty) / self._token_ns

    def spend(self, n: int) -> None:
        self._empty_ns += round(n * self._token_ns)
