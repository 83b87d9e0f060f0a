"""Funding of perpetual contracts: when it is paid, how much, and by whom (pure).

Per venue (``funding_model``), from the venues' documentation:

- **Hyperliquid** (trading/funding; ``reference/hyperliquid-verified.md`` section 7): paid
  every hour at 1/8 of the 8-hour rate, the rate capped at 4 % an hour, on the position's
  notional at the oracle price.
- **Binance USD-M and COIN-M**: every 8 hours (00:00, 08:00, 16:00 UTC); the rate is the
  venue's published one (its cap varies by symbol, so none is applied here).
- **Spot**: no funding.

A positive rate means longs pay shorts: a position of ``q`` contracts receives
``-rate * value(q)``, ``value`` in the settlement currency (``q * contract_size * price`` for a
linear contract, ``q * contract_size / price`` coin for an inverse one). Funding times are the
multiples of the interval since the Unix epoch, on the venue's clock. A backtest marks the
position at the mid (captures carry no oracle price).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence

import msgspec

from market_maker.model import Instrument

__all__ = [
    "FundingModel",
    "FundingSeries",
    "funding_model",
    "funding_payment",
    "next_funding_ns",
]

_NS_PER_S = 1_000_000_000


class FundingModel(msgspec.Struct, frozen=True, kw_only=True):
    """How a venue pays funding: every ``interval_s``, the rate capped at ``cap`` a
    payment (a fraction; None: the venue's published rate, uncapped here)."""

    venue: str
    interval_s: float
    cap: float | None = None


_MODELS = {
    "hyperliquid": FundingModel(venue="hyperliquid", interval_s=3_600.0, cap=0.04),
    "binance-usdm": FundingModel(venue="binance-usdm", interval_s=28_800.0),
    "binance-coinm": FundingModel(venue="binance-coinm", interval_s=28_800.0),
}


def funding_model(instrument: Instrument, interval_s: float | None = None) -> FundingModel | None:
    """The venue's funding model for a perpetual (None for spot); ``interval_s`` overrides
    the interval (a venue that changed it for a symbol)."""
    if instrument.spot:
        return None
    model = _MODELS.get(instrument.venue, _MODELS["binance-usdm"])
    if interval_s is not None:
        model = msgspec.structs.replace(model, interval_s=interval_s)
    return model


def next_funding_ns(model: FundingModel, after_ns: int) -> int:
    """The first funding time strictly after ``after_ns`` (multiples of the interval since
    the Unix epoch)."""
    step = round(model.interval_s * _NS_PER_S)
    return (after_ns // step + 1) * step


def funding_payment(
    instrument: Instrument, position: float, rate: float, price: float, cap: float | None = None
) -> float:
    """What a position of ``position`` contracts receives at a funding time, in the settlement
    currency (negative: it pays). ``rate`` is clamped to ``cap`` in either direction."""
    if cap is not None:
        rate = min(cap, max(-cap, rate))
    if not (price > 0.0 and math.isfinite(price)) or position == 0.0:
        return 0.0
    size = position * instrument.contract_size
    value = size / price if instrument.inverse else size * price
    return -rate * value


class FundingSeries(msgspec.Struct, frozen=True, kw_only=True):
    """Funding rates over time: ``(from_ns, rate)`` steps, each rate holding until the next
    (a constant rate is one step from 0)."""

    steps: tuple[tuple[int, float], ...]

    @classmethod
    def constant(cls, rate: float) -> FundingSeries:
        return cls(steps=((0, rate),))

    @classmethod
    def from_points(cls, points: Sequence[tuple[int, float]]) -> FundingSeries:
        return cls(steps=tuple(sorted(points)))

    def next_change_ns(self, after_ns: int) -> int | None:
        """The first step strictly after ``after_ns`` whose rate differs from the one in force
        at ``after_ns`` (None: the rate holds to the end)."""
        starts = [t for t, _ in self.steps]
        i = bisect_right(starts, after_ns)
        now = self.steps[max(0, i - 1)][1]
        for t, rate in self.steps[i:]:
            if rate != now:
                return t
        return None

    def rate_at(self, t_ns: int) -> float:
        """The rate in force at ``t_ns`` (the first step's before it starts)."""
        starts = [t for t, _ in self.steps]
        i = bisect_right(starts, t_ns) - 1
        return self.steps[max(0, i)][1]
