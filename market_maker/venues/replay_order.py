"""A capture's lines in receive-time order, with lines far out of place set apart.

A capture is written in the order its lines arrived, so its stamps rise; disorder comes from
lines that moved (swapped between streams by a recorder, spliced files, a copy gone wrong).
Two kinds are repaired here:

- **Small disorder** (a line a few dozen lines from its place): a window of ``REORDER`` lines
  hands lines out in stamp order.
- **Lines far out of place.** The stream's time now is the median stamp of the ``2 * HALF + 1``
  lines around the line being judged (itself included), so no single line can move it, and a
  real jump (a recorder that reconnected minutes later) moves it once half the lines around
  have jumped. A line stamped more than ``tolerance`` from it is *displaced*: twice the spread
  between the quartiles of those stamps (about ``2 * HALF`` lines' worth of time, wider than
  any disorder the window repairs), and at least ``MIN_TOLERANCE_NS``. A displaced line from
  the future is held apart (not in the window, where a few of them would crowd out the lines
  around them) and handed out when the stream's time reaches its stamp; one from the past goes
  on, and the reader (``ReplayMarket``) drops it as late or, for a depth diff, merges it into
  the book by its update ids. Held lines the stream never reaches are dropped at the end.

Nothing here trusts the largest stamp seen: before, one line from far in the future made every
later line look out of order. Each line costs O(log n) comparisons and an O(n) move of at most
``2 * HALF + 1`` machine words (``bisect.insort``).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from typing import Protocol

__all__ = [
    "HALF",
    "MAX_HELD",
    "MAX_NS",
    "MIN_NS",
    "MIN_TOLERANCE_NS",
    "REORDER",
    "LineOrder",
    "OrderStats",
]

# A capture's receive times are nanoseconds since 1970 between these years; a line stamped
# outside them is a corrupted stamp.
MIN_NS = 946_684_800 * 1_000_000_000  # 2000-01-01
MAX_NS = 4_102_444_800 * 1_000_000_000  # 2100-01-01
REORDER = 256
"""Lines held back to put small disorder back in order."""
HALF = 64
"""Lines on each side of a line that say what time it is."""
MIN_TOLERANCE_NS = 1_000_000
"""1 ms: the least distance from the stream's time that makes a line displaced (bursts of
lines with one stamp have no spread)."""
MAX_HELD = 50_000
"""Lines from the future held at most (memory); past it the farthest is dropped."""


class OrderStats(Protocol):
    """The counters ``LineOrder`` keeps (``ReplayStats`` has them)."""

    bad_timestamps: int
    reordered: int
    displaced: int
    dropped: int


class LineOrder:
    """``(ns, body)`` lines from ``source`` in receive-time order (see the module docstring).

    ``next()`` returns the next line or None at the end. Lines later than one already handed
    out can still come (displaced into the past, or beyond the window's reach): the reader
    decides what to do with them and counts them."""

    def __init__(self, source: Iterator[tuple[int, bytes]], stats: OrderStats) -> None:
        self._source = source
        self._stats = stats
        self._around: deque[tuple[int, bytes]] = deque()  # file order, the judged line's neighbours
        self._stamps: list[int] = []  # their stamps, sorted
        self._before: list[int] = []  # the stamps of the lines before the judged one, sorted
        self._after: list[int] = []  # and after it
        self._mid = 0  # index in _around of the next line to judge
        self._window: list[tuple[int, int, bytes]] = []  # (ns, seq, body) heap
        self._held: list[tuple[int, int, bytes]] = []  # displaced from the future, heap
        self._seq = 0
        self._top = -1  # the latest stamp that went into the window on time
        self._now = -1  # the stream's time (never goes back)
        self._tolerance = MIN_TOLERANCE_NS
        self._eof = False
        self._finished = False

    def next(self) -> tuple[int, bytes] | None:
        window = self._window
        while len(window) < REORDER and self._judge():
            pass
        if not window:
            return None
        ns, _, body = heapq.heappop(window)
        return ns, body

    def _judge(self) -> bool:
        """Read ahead as needed and judge one more line; False once every line is judged."""
        around, stamps, before, after = self._around, self._stamps, self._before, self._after
        stats = self._stats
        while not self._eof and len(around) - self._mid <= HALF:
            try:
                ns, body = next(self._source)
            except StopIteration:
                self._eof = True
                break
            if not MIN_NS <= ns <= MAX_NS:
                stats.bad_timestamps += 1  # corrupted stamp: it would stop the clock
                continue
            around.append((ns, body))
            insort(stamps, ns)
            insort(after, ns)
        if self._mid >= len(around):
            self._finish()
            return False
        ns, body = around[self._mid]
        del after[bisect_left(after, ns)]
        n = len(stamps)
        now = self._now = max(self._now, stamps[n // 2])
        tolerance = self._tolerance = max(
            MIN_TOLERANCE_NS, 2 * (stamps[(3 * n) // 4] - stamps[n // 4])
        )
        early = bool(after) and ns > after[len(after) // 2] + tolerance
        late = bool(before) and ns < before[len(before) // 2] - tolerance
        insort(before, ns)
        self._mid += 1
        if self._mid > HALF:
            old, _ = around.popleft()
            del stamps[bisect_left(stamps, old)]
            del before[bisect_left(before, old)]
            self._mid -= 1
        held, window = self._held, self._window
        while held and held[0][0] <= now:
            heapq.heappush(window, heapq.heappop(held))
        self._seq += 1
        if early:
            stats.displaced += 1
            self._hold((ns, self._seq, body))
            return True
        if late:
            stats.displaced += 1  # from the past: the reader drops it as late (or mends)
        elif ns < self._top:
            stats.reordered += 1
        else:
            self._top = ns
        heapq.heappush(window, (ns, self._seq, body))
        return True

    def _hold(self, line: tuple[int, int, bytes]) -> None:
        held = self._held
        heapq.heappush(held, line)
        if len(held) > MAX_HELD:
            held.remove(max(held))  # rare: the farthest is the least likely to be reached
            heapq.heapify(held)
            self._stats.dropped += 1

    def _finish(self) -> None:
        """At the end: the held lines the stream reached go on, the others are dropped."""
        if self._finished:
            return
        self._finished = True
        end = max(self._top, self._now) + self._tolerance
        held, window = self._held, self._window
        while held and held[0][0] <= end:
            heapq.heappush(window, heapq.heappop(held))
        self._stats.dropped += len(held)
        held.clear()
