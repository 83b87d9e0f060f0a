"""The volatility limit reads a trade rate held within a band (``risk.limit_tolerance``): it
may sit below the exact limit by at most the tolerance, never above it, and a trade that
moves the rate within the band derives nothing."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from market_maker.config import AppConfig, DynamicRiskConfig
from market_maker.risk import BindingLimit, KillSwitch

EQUITY = 10_000.0
SIGMA = 0.0004  # with 50k samples the prior has no weight: the measured sigma is used


def _switch(tolerance: float) -> KillSwitch:
    # Leverage far out of reach: the volatility limit binds at every rate drawn below.
    risk = DynamicRiskConfig(max_leverage=1e6, limit_tolerance=tolerance)
    ks = KillSwitch(AppConfig(risk=risk))
    ks.on_account(0, EQUITY)
    return ks


def _by_hand(rate: float) -> float:
    """``V * risk_fraction / (num_sigmas * sigma * sqrt(min(1 / rate, 120 s)))``."""
    return EQUITY * 0.5 / (5.0 * SIGMA * math.sqrt(min(1.0 / rate, 120.0)))


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.0, 0.2),
    st.lists(st.floats(1e-3, 500.0, allow_nan=False), min_size=1, max_size=60),
)
def test_the_limit_is_never_above_the_exact_one_and_at_most_the_tolerance_below(tol, rates):
    ks = _switch(tol)
    for rate in rates:
        limits = ks.update_limits(sigma=SIGMA, sigma_samples=50_000, trade_intensity=rate)
        assert limits is not None and limits.binding is BindingLimit.VOLATILITY
        exact = _by_hand(rate)
        assert limits.max_position_value <= exact * (1.0 + 1e-12)
        assert limits.max_position_value >= exact * (1.0 - tol) * (1.0 - 1e-12)


def test_a_rate_that_moves_within_the_band_derives_no_new_limit():
    ks = _switch(0.02)
    first = ks.update_limits(sigma=SIGMA, sigma_samples=50_000, trade_intensity=10.0)
    # Held at 10 * 0.98: the band reaches 10 / 0.98 = 10.204 up and 9.8 down.
    for rate in (10.1, 9.85, 10.2, 9.81):
        assert ks.update_limits(sigma=SIGMA, sigma_samples=50_000, trade_intensity=rate) is first
    moved = ks.update_limits(sigma=SIGMA, sigma_samples=50_000, trade_intensity=10.3)
    assert moved is not first
    assert moved is not None and first is not None
    assert moved.max_position_value > first.max_position_value


def test_no_tolerance_derives_the_exact_limit_at_every_rate():
    ks = _switch(0.0)
    for rate in (10.0, 10.001, 3.0, 0.004):
        limits = ks.update_limits(sigma=SIGMA, sigma_samples=50_000, trade_intensity=rate)
        assert limits is not None
        assert math.isclose(limits.max_position_value, _by_hand(rate), rel_tol=1e-12)
