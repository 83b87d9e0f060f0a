"""Funding as a cost of carry: in the position limit (sizing) and in the reservation price (an
optional skew). Pure functions of numbers; ``FundingBook`` (``market_maker/funding_book.py``)
feeds them the venue's rate.

**Sizing** (``[funding] sizing``, on by default). The volatility limit is the position whose
``num_sigmas`` adverse move over the horizon ``T`` loses ``risk_fraction`` of the account:
``x * r = V * risk_fraction`` with ``r = num_sigmas * sigma * sqrt(T)`` the adverse move per
unit of position value. Funding is paid at funding times, on the position held then (positive
rate: longs pay): a position held over ``(t, t + T]`` pays ``rate`` of its value at each of
the ``n`` funding times in that window. On the side that pays, the same loss budget must cover
both, ``x * (r + c) = V * risk_fraction`` with ``c = |rate| * n``, so its volatility limit is
``volatility_usd * r / (r + c)``; the smallest of that, the leverage limit and the budget
limit is the paying side's limit. The side that receives keeps its limit: an expected receipt
is not counted as a cushion against the adverse move. With ``T`` at most one funding interval
``n`` is 0 or 1: the paying side's room shrinks only while a funding time is within the
horizon, by as much as that payment weighs against the adverse move (0.01 % against a 1 %
move: 1 %; Hyperliquid's 4 % cap against it: 80 %).

**Skew** (``[funding] skew``, off by default). One more unit held for ``skew_horizon_s`` pays
(or earns) ``rate * skew_horizon_s / interval_s`` of its value in expectation (funding accrues
over the interval at the rate in force): the reservation price moves by minus that, capped at
``skew_max_bps`` either way. A positive rate (longs pay) lowers the price the quotes centre on,
so the asks come closer and the bids go further: the quotes lean towards holding the side
that is paid. It moves prices only; the sizes and the room of each side are unchanged.
"""

from __future__ import annotations

import math

from market_maker.risk.limits import PositionLimits

__all__ = [
    "carry_per_unit",
    "funding_skew_fraction",
    "funding_times_within",
    "paying_side_limit_usd",
]

_NS_PER_S = 1_000_000_000


def funding_times_within(ts_ns: int, horizon_s: float, interval_s: float) -> int:
    """Funding times (multiples of ``interval_s`` since the Unix epoch) in
    ``(ts_ns, ts_ns + horizon_s]``; 0 for a horizon or interval that is not a positive
    number."""
    if not (horizon_s > 0.0 and interval_s > 0.0 and math.isfinite(horizon_s + interval_s)):
        return 0
    step = round(interval_s * _NS_PER_S)
    if step <= 0:
        return 0
    end = ts_ns + round(horizon_s * _NS_PER_S)
    return end // step - ts_ns // step


def carry_per_unit(rate: float, funding_times: int) -> float:
    """What a long pays over the horizon per unit of position value (negative: it receives;
    a short pays minus this). 0 for a rate that is not a finite number."""
    if not math.isfinite(rate):
        return 0.0
    return rate * funding_times


def paying_side_limit_usd(limits: PositionLimits, *, num_sigmas: float, carry: float) -> float:
    """The limit, USD of position value, of the side that pays ``carry`` (>= 0) per unit of
    value over the horizon: ``min(leverage, volatility * r / (r + carry), budget)`` with
    ``r = num_sigmas * sigma_used * sqrt(horizon)``. ``carry <= 0``: the limit unchanged."""
    if not carry > 0.0:  # also NaN
        return limits.max_position_value
    r = num_sigmas * limits.sigma_used * math.sqrt(limits.horizon_s)
    if not (r > 0.0 and math.isfinite(r)):
        return limits.max_position_value
    value = limits.volatility_usd * r / (r + carry)
    if limits.leverage_usd < value:
        value = limits.leverage_usd
    if limits.budget_usd is not None and limits.budget_usd < value:
        value = limits.budget_usd
    return value if value < limits.max_position_value else limits.max_position_value


def funding_skew_fraction(
    rate: float, interval_s: float, skew_horizon_s: float, max_bps: float
) -> float:
    """The reservation price's shift as a fraction of the mid: ``-rate * skew_horizon_s /
    interval_s``, within ``+/- max_bps``; 0 for input that is not a finite number."""
    if not (math.isfinite(rate) and interval_s > 0.0 and math.isfinite(interval_s)):
        return 0.0
    shift = -rate * skew_horizon_s / interval_s
    cap = max_bps * 1e-4
    if shift > cap:
        return cap
    if shift < -cap:
        return -cap
    return shift
