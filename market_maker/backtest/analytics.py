"""Where a backtest's PnL came from: every fill the simulated venue executed, the mid then, and
the mid 1 s, 10 s and 60 s later.

PnL splits exactly into three parts. With ``s = +1`` for a buy and ``-1`` for a sell, a fill of
``size`` at ``price`` while the market's mid is ``m``, and ``M`` the mid at the end:

- **spread capture** ``sum s * (m - price) * size``: what quoting away from the mid earned at
  the moment of each fill (negative for a taker order that crossed it);
- **inventory** ``sum s * size * (M - m)``: what holding the position earned or lost as the mid
  moved, which is the integral of position times the mid's changes;
- **fees** (a rebate is a negative fee).

``spread + inventory - fees`` is the change in cash plus position at the mid: the venue's own
equity change, to the float rounding of the sums.

A **markout** is how the fill looks ``h`` seconds later: ``s * (mid(t + h) - price) / price`` in
basis points, averaged over fills weighted by notional. Positive means the mid moved our way
(or stayed and we kept the spread); strongly negative markouts are adverse selection.
``mid(t + h)`` is the venue's mid in force at exactly ``t + h``, read from the market's own
book updates, not from the engine's view of them.
"""

from __future__ import annotations

import math
from collections import deque

import msgspec

__all__ = ["MARKOUT_HORIZONS_S", "FillLedger", "FillRecord", "PnlAttribution"]

MARKOUT_HORIZONS_S = (1.0, 10.0, 60.0)
_NS = 1_000_000_000


class FillRecord(msgspec.Struct, kw_only=True, array_like=True):
    """One fill as the venue executed it; ``markouts_bps`` fill in as time passes (None until
    the horizon is reached, and for good if the market ends first)."""

    t_ns: int
    buy: bool
    price: float
    size: float
    fee: float
    mid: float
    taker: bool
    markouts_bps: list[float | None]
    our_bid: float | None = None
    """Our best bid resting at the venue at the fill (None: none rested)."""
    our_ask: float | None = None
    """Our best ask resting at the venue at the fill (None: none rested)."""


class PnlAttribution(msgspec.Struct, frozen=True, kw_only=True):
    """PnL split into spread capture, inventory, fees and funding, and the fills' markouts.

    ``spread_capture_usd + inventory_usd - fees_usd + funding_usd`` is the run's PnL in USD
    (for an inverse contract, to first order: its fills are counted in the coin their value
    bought)."""

    spread_capture_usd: float
    inventory_usd: float
    fees_usd: float
    markout_bps: dict[str, float | None]
    """Notional-weighted mean markout per horizon ("1s", "10s", "60s"); None without fills
    that reached it."""
    markout_fills: dict[str, int]
    """How many fills reached each horizon before the market ended."""
    markout_se_bps: dict[str, float | None] = msgspec.field(default_factory=dict)
    """Standard error of each mean markout (fills taken as independent; None under two
    fills): a few dozen fills leave the 10 s figure uncertain by most of a basis point."""
    funding_usd: float = 0.0
    """Funding received (negative: paid) at the funding times the run crossed."""
    funding_payments: int = 0


class FillLedger:
    """Attached to an ``ExchangeCore`` (``exchange.ledger``), it sees every fill and every
    change of the touch. Memory grows with fills only; work per touch change is O(1) amortised
    (each pending markout is resolved once)."""

    __slots__ = ("_horizons_ns", "_pending", "fills", "funding", "horizons_s")

    def __init__(self, horizons_s: tuple[float, ...] = MARKOUT_HORIZONS_S) -> None:
        self.horizons_s = horizons_s
        self._horizons_ns = tuple(int(h * _NS) for h in horizons_s)
        self.fills: list[FillRecord] = []
        self.funding: list[tuple[int, float, float]] = []
        """``(t_ns, usd, position)`` of every funding payment (negative: paid) and the
        position (contracts) it was paid on."""
        self._pending: tuple[deque[tuple[int, FillRecord]], ...] = tuple(
            deque() for _ in horizons_s
        )

    def on_fill(
        self,
        t_ns: int,
        buy: bool,
        price: float,
        size: float,
        fee: float,
        mid: float,
        taker: bool,
        *,
        our_bid: float | None = None,
        our_ask: float | None = None,
    ) -> None:
        record = FillRecord(
            t_ns=t_ns,
            buy=buy,
            price=price,
            size=size,
            fee=fee,
            mid=mid,
            taker=taker,
            markouts_bps=[None] * len(self._horizons_ns),
            our_bid=our_bid,
            our_ask=our_ask,
        )
        self.fills.append(record)
        for h_ns, pending in zip(self._horizons_ns, self._pending, strict=True):
            pending.append((t_ns + h_ns, record))

    def on_funding(self, t_ns: int, usd: float, position: float) -> None:
        """A funding payment of ``usd`` received (negative: paid) at ``t_ns`` on
        ``position`` contracts."""
        self.funding.append((t_ns, usd, position))

    def on_mid(self, t_ns: int, mid: float) -> None:
        """The touch changes at ``t_ns``; ``mid`` is the mid in force until then. Markouts due
        before ``t_ns`` are read from it."""
        if mid != mid:
            return  # no mid yet
        for i, pending in enumerate(self._pending):
            while pending and pending[0][0] < t_ns:
                _, record = pending.popleft()
                sign = 1.0 if record.buy else -1.0
                record.markouts_bps[i] = sign * (mid - record.price) / record.price * 1e4

    def attribution(self, final_mid: float) -> PnlAttribution:
        """The split at the end of a run, marking the position at ``final_mid``."""
        spread = inventory = fees = 0.0
        n = len(self.horizons_s)
        weighted = [0.0] * n
        notional = [0.0] * n
        reached = [0] * n
        for f in self.fills:
            sign = 1.0 if f.buy else -1.0
            spread += sign * (f.mid - f.price) * f.size
            if final_mid == final_mid:
                inventory += sign * f.size * (final_mid - f.mid)
            fees += f.fee
            for i, m in enumerate(f.markouts_bps):
                if m is not None:
                    w = f.price * f.size
                    weighted[i] += m * w
                    notional[i] += w
                    reached[i] += 1
        labels = [f"{h:g}s" for h in self.horizons_s]
        mean = [w / v if v > 0.0 else 0.0 for w, v in zip(weighted, notional, strict=True)]
        spread2 = [0.0] * n
        for f in self.fills:
            for i, m in enumerate(f.markouts_bps):
                if m is not None:
                    w = f.price * f.size
                    spread2[i] += (w * (m - mean[i])) ** 2
        se = {
            k: (math.sqrt(s2 * c / (c - 1)) / v if c > 1 and v > 0.0 else None)
            for k, s2, v, c in zip(labels, spread2, notional, reached, strict=True)
        }
        return PnlAttribution(
            spread_capture_usd=spread,
            inventory_usd=inventory,
            fees_usd=fees,
            markout_bps={
                k: (w / v if v > 0.0 else None)
                for k, w, v in zip(labels, weighted, notional, strict=True)
            },
            markout_fills=dict(zip(labels, reached, strict=True)),
            markout_se_bps=se,
            funding_usd=sum(usd for _, usd, _ in self.funding),
            funding_payments=len(self.funding),
        )
