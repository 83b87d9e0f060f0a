"""How long our orders rested at a simulated venue, measured from the venue's own book.

The exchange tells ``RestingClock`` each time one of our orders joins or leaves its book (a
place or a modify's new leg committed; a cancel, a modify's old leg, the last lot filled), so
the clock integrates, in the venue's time, how long a bid and an ask were both resting. Reports
read it over any interval (``both_ns``); nothing here looks at what the engine wants.
"""

from __future__ import annotations

from market_maker.model import Side

__all__ = ["RestingClock"]

_BUY = Side.BUY


class RestingClock:
    """Our orders resting per side at the venue, and the time both sides had one."""

    __slots__ = ("_both_ns", "_since_ns", "asks", "bids")

    def __init__(self) -> None:
        self.bids = 0
        """Our orders resting on the bid side now."""
        self.asks = 0
        self._both_ns = 0
        self._since_ns = 0  # when both sides last came to rest (valid while both do)

    def joined(self, side: Side, t_ns: int) -> None:
        """One of our orders on ``side`` rests from ``t_ns``."""
        before = self.bids > 0 and self.asks > 0
        if side is _BUY:
            self.bids += 1
        else:
            self.asks += 1
        if not before and self.bids > 0 and self.asks > 0:
            self._since_ns = t_ns

    def left(self, side: Side, t_ns: int) -> None:
        """One of our orders on ``side`` left the book at ``t_ns``."""
        if self.bids > 0 and self.asks > 0:
            ending = (self.bids if side is _BUY else self.asks) == 1
            if ending and t_ns > self._since_ns:
                self._both_ns += t_ns - self._since_ns
        if side is _BUY:
            self.bids -= 1
        else:
            self.asks -= 1

    @property
    def two_sided(self) -> bool:
        return self.bids > 0 and self.asks > 0

    def both_ns(self, t_ns: int) -> int:
        """Nanoseconds, up to ``t_ns``, with a bid and an ask of ours both resting."""
        if self.bids > 0 and self.asks > 0 and t_ns > self._since_ns:
            return self._both_ns + t_ns - self._since_ns
        return self._both_ns
