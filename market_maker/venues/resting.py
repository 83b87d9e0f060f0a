"""What our orders at a simulated venue held, time-weighted: the venue's truth for reports.

``ExchangeCore`` tells its ``RestingMeter`` our best resting bid and ask (integer ticks, 0 for
none) every time the set of our resting orders changes, at the venue's own time (an order comes
to rest, is cancelled or replaced, or fills completely). The meter integrates, over time, the
stretches with at least one side resting, both sides, one side only, and the spread between our
best bid and ask in basis points of their midpoint. So a backtest's "two-sided" share is what the
venue held, not what the engine wanted.

``totals(t_ns)`` reads the integrals up to ``t_ns``, which may lie before the last few changes
(a runner that stops at its last event while the venue has already applied actions after it):
the meter keeps a short log of its recent changes for that.
"""

from __future__ import annotations

from collections import deque

import msgspec

__all__ = ["RestingMeter", "RestingTime"]

_LOG = 4096  # recent changes kept for reading totals a little in the past


class RestingTime(msgspec.Struct, frozen=True, kw_only=True):
    """Nanoseconds in each resting condition, and the spread integral, up to one instant."""

    any_ns: int = 0
    """At least one side rested."""
    both_ns: int = 0
    """A bid and an ask rested."""
    bid_only_ns: int = 0
    ask_only_ns: int = 0
    spread_bps_ns: float = 0.0
    """Our best ask minus best bid over their midpoint (bps), times ns, while both rested."""

    @property
    def mean_spread_bps(self) -> float | None:
        """Time-weighted mean spread over two-sided time (None: never two-sided)."""
        return self.spread_bps_ns / self.both_ns if self.both_ns else None


class RestingMeter:
    """Integrates our best resting bid and ask over the venue's time."""

    __slots__ = ("_log", "ask_ticks", "bid_ticks", "changes", "since_ns", "tick", "total")

    def __init__(self, tick_size: float, *, record: bool = False) -> None:
        self.tick = tick_size
        self.bid_ticks = 0
        """Our best resting bid at the venue (ticks; 0: none)."""
        self.ask_ticks = 0
        self.since_ns = 0
        """When the current state began."""
        self.total = RestingTime()
        """Integrals up to ``since_ns``."""
        self._log: deque[tuple[int, RestingTime, int, int]] = deque(maxlen=_LOG)
        self.changes: list[tuple[int, float | None, float | None]] | None = [] if record else None
        """Every change of our best resting prices ``(t_ns, bid, ask)`` when recording."""

    def update(self, t_ns: int, bid_ticks: int, ask_ticks: int) -> None:
        """The best resting prices from ``t_ns`` on (0: nothing rests on that side)."""
        if bid_ticks == self.bid_ticks and ask_ticks == self.ask_ticks:
            return
        self.total = self._until(t_ns, self.since_ns, self.total, self.bid_ticks, self.ask_ticks)
        self.since_ns = t_ns
        self.bid_ticks = bid_ticks
        self.ask_ticks = ask_ticks
        self._log.append((t_ns, self.total, bid_ticks, ask_ticks))
        if self.changes is not None:
            tick = self.tick
            self.changes.append(
                (
                    t_ns,
                    bid_ticks * tick if bid_ticks else None,
                    ask_ticks * tick if ask_ticks else None,
                )
            )

    def totals(self, t_ns: int) -> RestingTime:
        """The integrals from the start up to ``t_ns``."""
        if t_ns >= self.since_ns:
            return self._until(t_ns, self.since_ns, self.total, self.bid_ticks, self.ask_ticks)
        since, total, bid, ask = 0, RestingTime(), 0, 0
        for entry in reversed(self._log):
            if entry[0] <= t_ns:
                since, total, bid, ask = entry
                break
        return self._until(t_ns, since, total, bid, ask)

    def both_ns_at(self, t_ns: int) -> int:
        """``totals(t_ns).both_ns``, without building the totals (read on every event)."""
        if t_ns >= self.since_ns:
            both = self.total.both_ns
            if self.bid_ticks and self.ask_ticks:
                both += t_ns - self.since_ns
            return both
        return self.totals(t_ns).both_ns

    @staticmethod
    def _until(t_ns: int, since: int, total: RestingTime, bid: int, ask: int) -> RestingTime:
        dt = t_ns - since
        if dt <= 0 or not (bid or ask):
            return total
        if bid and ask:
            spread = 2e4 * (ask - bid) / (ask + bid)
            return msgspec.structs.replace(
                total,
                any_ns=total.any_ns + dt,
                both_ns=total.both_ns + dt,
                spread_bps_ns=total.spread_bps_ns + spread * dt,
            )
        if bid:
            return msgspec.structs.replace(
                total, any_ns=total.any_ns + dt, bid_only_ns=total.bid_only_ns + dt
            )
        return msgspec.structs.replace(
            total, any_ns=total.any_ns + dt, ask_only_ns=total.ask_only_ns + dt
        )
