"""One batch of store rows made ready to replay, with its depth-book changes left in columns.

A batch's events (books and trades) are pulled out of its rows at once (numpy), so the
replay's Python work is per event, not per row: a Binance capture has five depth-book changes
for every event. The depth book is not updated row by row either: the changes stay in arrays
sorted by level, and a lookup (``size_at``: the simulated exchange asks when one of our orders
joins a level, a few hundred times a run) finds the level's last change before the event the
replay stands at; the book as of the batch's start answers the levels the batch has not
changed. When the replay leaves the batch, its changes are applied in bulk (each level's last
change, after the batch's last ``CLEAR``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from market_maker.store.schema import (
    ASK,
    BID,
    BOOK,
    BOOK_ASK,
    BOOK_BID,
    BUY_TRADE,
    CLEAR,
    SELL_TRADE,
    PartMeta,
)

__all__ = ["Batch", "apply_changes"]


def apply_changes(
    bids: dict[int, float],
    asks: dict[int, float],
    kinds: Any,
    ticks: Any,
    sizes: Any,
) -> None:
    """Apply rows (``kinds`` with their ``ticks`` and float ``sizes``, numpy arrays in row
    order) to the depth book: the last ``CLEAR`` empties it, then each level takes its last
    change after it (size 0 removes the level). Rows of other kinds are ignored."""
    clears = np.flatnonzero(kinds == CLEAR)
    begin = 0
    if clears.size:
        bids.clear()
        asks.clear()
        begin = int(clears[-1]) + 1
    k = kinds[begin:]
    depth = np.flatnonzero((k == BID) | (k == ASK)) + begin
    if not depth.size:
        return
    side = kinds[depth] == BID
    key = ticks[depth] * 2 + side
    _, last = np.unique(key[::-1], return_index=True)  # each level's last change
    last = len(key) - 1 - last
    for is_bid, tick, size in zip(
        side[last].tolist(), ticks[depth][last].tolist(), sizes[depth][last].tolist(), strict=True
    ):
        book = bids if is_bid else asks
        if size > 0.0:
            book[tick] = size
        else:
            book.pop(tick, None)


class Batch:
    """The events of a batch of rows and its depth-book changes (see the module's docstring).

    ``carry_bids``/``carry_asks`` are the levels that ended the previous batch (a book cut
    across two batches): they open this batch's first book. ``tail_bids``/``tail_asks`` are
    this batch's levels after its last event, for the next batch."""

    __slots__ = (
        "ask_from",
        "ask_to",
        "bid_from",
        "carry",
        "change_rows",
        "clear_rows",
        "depth_kinds",
        "depth_sizes",
        "depth_ticks",
        "event_rows",
        "exchange",
        "kinds",
        "n",
        "pairs",
        "sorted_keys",
        "sorted_rows",
        "sorted_sizes",
        "stamps",
        "tail_asks",
        "tail_bids",
        "values_a",
        "values_b",
    )

    def __init__(
        self,
        batch: Any,
        meta: PartMeta,
        carry_bids: list[tuple[float, float]],
        carry_asks: list[tuple[float, float]],
    ) -> None:
        import pyarrow.compute as pc

        kinds = batch.column(0).to_numpy()
        units = batch.column(3).to_numpy()
        lots = batch.column(4).to_numpy()
        num, den = meta.price_step.num, meta.price_step.den
        lot_num, lot_den = meta.lot.num, meta.lot.den
        is_event = (kinds == BOOK) | (kinds == BUY_TRADE) | (kinds == SELL_TRADE)
        rows = np.flatnonzero(is_event)
        self.event_rows = rows.tolist()
        self.n = len(self.event_rows)
        self.kinds = kinds[rows].tolist()
        self.stamps = batch.column(1).to_numpy()[rows].tolist()
        self.exchange = pc.fill_null(batch.column(2), -1).to_numpy()[rows].tolist()
        self.values_a = ((units[rows] * num) / den).tolist()  # a trade's price
        self.values_b = ((lots[rows] * lot_num) / lot_den).tolist()  # and size
        # The books' levels: each level row belongs to the first event row after it.
        levels = np.flatnonzero((kinds == BOOK_BID) | (kinds == BOOK_ASK))
        owner = np.searchsorted(rows, levels)
        is_bid = kinds[levels] == BOOK_BID
        prices = ((units[levels] * num) / den).tolist()
        sizes = ((lots[levels] * lot_num) / lot_den).tolist()
        n_bids = np.bincount(owner[is_bid], minlength=self.n + 1)
        n_all = np.bincount(owner, minlength=self.n + 1)
        starts = np.concatenate(([0], np.cumsum(n_all)[:-1]))
        self.pairs = list(zip(prices, sizes, strict=True))  # every level, in row order
        self.bid_from = starts.tolist()
        self.ask_from = (starts + n_bids).tolist()
        self.ask_to = (starts + n_all).tolist()
        # The first book opens with the levels that ended the previous batch (``levels``).
        self.carry = (carry_bids, carry_asks) if self.n and (carry_bids or carry_asks) else None
        a, b, c = self.bid_from[self.n], self.ask_from[self.n], self.ask_to[self.n]
        carried = self.n == 0  # no event here: the carried levels go on to the next batch
        self.tail_bids = [*(carry_bids if carried else ()), *self.pairs[a:b]]
        self.tail_asks = [*(carry_asks if carried else ()), *self.pairs[b:c]]
        # Depth-book changes, row order, and sorted by level for lookups.
        per_tick = meta.ticks_per_step
        change = np.flatnonzero((kinds == BID) | (kinds == ASK) | (kinds == CLEAR))
        self.change_rows = change
        self.depth_kinds = kinds[change]
        self.depth_ticks = units[change] // per_tick
        self.depth_sizes = (lots[change] * lot_num) / lot_den
        self.clear_rows = change[self.depth_kinds == CLEAR]
        depth = self.depth_kinds != CLEAR
        keys = self.depth_ticks[depth] * 2 + (self.depth_kinds[depth] == ASK)
        order = np.lexsort((change[depth], keys))
        self.sorted_keys = keys[order]
        self.sorted_rows = change[depth][order]
        self.sorted_sizes = self.depth_sizes[depth][order]

    def levels(
        self, i: int
    ) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]:
        """The bids and asks of the ``i``-th event (a book), best first."""
        pairs = self.pairs
        b = self.ask_from[i]
        bids = tuple(pairs[self.bid_from[i] : b])
        asks = tuple(pairs[b : self.ask_to[i]])
        if i == 0 and self.carry is not None:
            bids = (*self.carry[0], *bids)
            asks = (*self.carry[1], *asks)
        return bids, asks

    def size_at(self, key: int, row: int, base: dict[int, float], tick: int) -> float:
        """The size at level ``key`` (``tick * 2``, plus 1 for an ask) with the batch's rows
        before ``row`` applied to ``base`` (the book as of the batch's start; ``tick``'s
        side)."""
        clears = self.clear_rows
        cleared = -1
        if clears.size:
            i = int(np.searchsorted(clears, row)) - 1
            if i >= 0:
                cleared = int(clears[i])
        keys = self.sorted_keys
        lo = int(np.searchsorted(keys, key, "left"))
        hi = int(np.searchsorted(keys, key, "right"))
        if hi > lo:
            j = lo + int(np.searchsorted(self.sorted_rows[lo:hi], row)) - 1
            if j >= lo and int(self.sorted_rows[j]) > cleared:
                return float(self.sorted_sizes[j])
        if cleared >= 0:
            return 0.0
        return base.get(tick, 0.0)

    def finish(self, bids: dict[int, float], asks: dict[int, float]) -> None:
        """Apply every change of the batch to the book (as the replay leaves it)."""
        apply_changes(bids, asks, self.depth_kinds, self.depth_ticks, self.depth_sizes)

    def apply_until(
        self, bids: dict[int, float], asks: dict[int, float], start: int, row: int
    ) -> int:
        """Apply the changes from the ``start``-th up to row ``row`` (excluded), one by one;
        returns the index of the first change not applied (the next ``start``)."""
        rows = self.change_rows
        stop = int(np.searchsorted(rows, row))
        if stop > start:
            kinds = self.depth_kinds[start:stop].tolist()
            ticks = self.depth_ticks[start:stop].tolist()
            sizes = self.depth_sizes[start:stop].tolist()
            for kind, tick, size in zip(kinds, ticks, sizes, strict=True):
                if kind == CLEAR:
                    bids.clear()
                    asks.clear()
                    continue
                book = bids if kind == BID else asks
                if size > 0.0:
                    book[tick] = size
                else:
                    book.pop(tick, None)
        return max(start, stop)
