"""The engine's record of the venue's funding (pure, synchronous): the rate in force, the
payments booked to the account, and what they mean for sizing and quoting (``risk/carry.py``).

Rates and payments arrive as events (``FundingRate``, ``FundingPayment``) from the venue: the
simulated one at its funding times, Hyperliquid from ``activeAssetCtx`` and ``userFundings``.
What is not believable is counted and ignored, never raised: a rate that is not a finite
number or beyond 10 % a payment, a payment that is not a finite number within 1e15, a payment
seen before. A rate beyond the venue's cap (Hyperliquid's 4 % an hour) is taken at the cap,
as the venue pays it. Spot has no funding: its rates are ignored.
"""

from __future__ import annotations

import math

from market_maker.config import FundingConfig
from market_maker.funding import funding_model
from market_maker.model import FundingPayment, FundingRate, Instrument
from market_maker.risk.carry import carry_per_unit, funding_skew_fraction, funding_times_within

__all__ = ["MAX_FUNDING_RATE", "FundingBook"]

MAX_FUNDING_RATE = 0.1
"""A rate beyond this a payment (10 %) is not a funding rate: refused."""
_SEEN = 4_096


class FundingBook:
    """Funding as the engine knows it (see the module docstring)."""

    __slots__ = (
        "_cap",
        "_seen",
        "_sizing",
        "_skew",
        "_skew_horizon_s",
        "_skew_max_bps",
        "_spot",
        "bad",
        "cash",
        "duplicates",
        "interval_s",
        "payments",
        "rate",
        "skew_fraction",
    )

    def __init__(self, config: FundingConfig, instrument: Instrument) -> None:
        model = funding_model(instrument, config.interval_s)
        self._spot = instrument.spot
        self._cap = None if model is None else model.cap
        self._sizing = config.sizing
        self._skew = config.skew
        self._skew_horizon_s = config.skew_horizon_s
        self._skew_max_bps = config.skew_max_bps
        self.interval_s = 3_600.0 if model is None else model.interval_s
        self.rate: float | None = None
        """The rate the venue will charge next (positive: longs pay); None until it says."""
        self.skew_fraction = 0.0
        """The reservation price's shift, a fraction of the mid (0: skew off or no rate)."""
        self.cash = 0.0
        """Funding received (negative: paid) since the start, settlement currency."""
        self.payments = 0
        self.bad = 0
        """Rates and payments refused (not finite, absurd)."""
        self.duplicates = 0
        self._seen: dict[str, None] = {}

    def on_rate(self, ev: FundingRate) -> bool:
        """Take the venue's rate; False (counted) when it is not believable, or on spot."""
        if self._spot:
            return False
        rate, interval = ev.rate, ev.interval_s
        if not (abs(rate) <= MAX_FUNDING_RATE and 60.0 <= interval <= 86_400.0 * 7):
            self.bad += 1  # also NaN
            return False
        cap = self._cap
        if cap is not None:
            rate = cap if rate > cap else (-cap if rate < -cap else rate)
        if rate == self.rate and interval == self.interval_s:
            return False
        self.rate = rate
        self.interval_s = interval
        if self._skew:
            self.skew_fraction = funding_skew_fraction(
                rate, interval, self._skew_horizon_s, self._skew_max_bps
            )
        return True

    def on_payment(self, ev: FundingPayment) -> bool:
        """Book a payment once; False (counted) when seen before or not a number."""
        if not abs(ev.amount) < 1e15:  # also NaN
            self.bad += 1
            return False
        seen = self._seen
        if ev.payment_id in seen:
            self.duplicates += 1
            return False
        seen[ev.payment_id] = None
        if len(seen) > _SEEN:
            del seen[next(iter(seen))]
        self.cash += ev.amount
        self.payments += 1
        return True

    def carry(self, ts_ns: int, horizon_s: float) -> tuple[int, float]:
        """``(side, carry)``: the side that pays (+1 longs, -1 shorts, 0 none) and what it
        pays per unit of position value over ``(ts_ns, ts_ns + horizon_s]`` (sizing off or
        no rate known: ``(0, 0.0)``)."""
        rate = self.rate
        if not self._sizing or rate is None or rate == 0.0:
            return 0, 0.0
        n = funding_times_within(ts_ns, horizon_s, self.interval_s)
        if n == 0:
            return 0, 0.0
        c = carry_per_unit(rate, n)
        return (1 if c > 0.0 else -1), math.fabs(c)
