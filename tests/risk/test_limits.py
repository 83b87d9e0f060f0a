import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market_maker.config import DynamicRiskConfig, SizingConfig
from market_maker.risk import (
    BindingLimit,
    blended_sigma,
    budget_limit,
    confidence_from_samples,
    horizon_s,
    max_position_value,
    position_limits,
)

RISK = DynamicRiskConfig()


def test_leverage_binds_for_calm_markets():
    value = max_position_value(
        account_value=10_000.0, sigma=0.0002, horizon_s=1.0, confidence=1.0, config=RISK
    )
    assert value == pytest.approx(10_000.0 * 20.0)


def test_volatility_limit_is_the_first_principles_formula():
    limits = position_limits(
        account_value=10_000.0, sigma=0.002, horizon_s=100.0, confidence=1.0, config=RISK
    )
    expected = 10_000.0 * 0.5 / (5.0 * 0.002 * math.sqrt(100.0))
    assert limits.volatility_usd == pytest.approx(expected)
    assert limits.max_position_value == pytest.approx(expected)
    assert limits.binding is BindingLimit.VOLATILITY


@pytest.mark.parametrize("account_value", [0.0, -100.0, math.nan, -math.inf])
def test_no_equity_gives_zero(account_value):
    limits = position_limits(
        account_value=account_value, sigma=0.001, horizon_s=10.0, confidence=1.0, config=RISK
    )
    assert limits.max_position_value == 0.0
    assert limits.binding is BindingLimit.NO_EQUITY


def test_confidence_zero_uses_the_prior_and_one_uses_the_estimate():
    assert blended_sigma(0.01, 0.0, RISK) == RISK.sigma_prior
    assert blended_sigma(0.01, 1.0, RISK) == 0.01
    assert blended_sigma(0.01, 0.5, RISK) == pytest.approx(0.5 * 0.01 + 0.5 * RISK.sigma_prior)


@pytest.mark.parametrize("sigma", [math.nan, math.inf, -1.0])
def test_unusable_sigma_falls_back_to_the_prior(sigma):
    assert blended_sigma(sigma, 1.0, RISK) == RISK.sigma_prior


def test_a_flat_tape_cannot_remove_the_volatility_limit():
    limits = position_limits(
        account_value=1_000.0, sigma=0.0, horizon_s=120.0, confidence=1.0, config=RISK
    )
    assert limits.sigma_used == RISK.sigma_floor
    assert math.isfinite(limits.volatility_usd)


def test_confidence_from_samples():
    assert confidence_from_samples(0, 50.0) == 0.0
    assert confidence_from_samples(50, 50.0) == pytest.approx(1 - math.exp(-1))
    assert confidence_from_samples(10_000, 50.0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("rate", "expected"), [(2.0, 0.5), (0.001, 120.0), (0.0, 120.0), (math.nan, 120.0)]
)
def test_horizon_is_time_to_next_trade_capped(rate, expected):
    assert horizon_s(rate, 120.0) == expected


# Original design 2: risk 10 %, config max $100.
@pytest.mark.parametrize(
    ("balance", "budget"),
    [(0.0, 100.0), (186.0, 18.6), (500.0, 50.0), (1_000.0, 100.0), (2_000.0, 100.0)],
)
def test_balance_budget_table_from_the_original_design(balance, budget):
    sizing = SizingConfig(enabled=True, risk_per_market_pct=10.0, max_notional_usd=100.0)
    assert budget_limit(balance, sizing) == pytest.approx(budget)


def test_budget_is_the_static_cap_when_disabled_or_balance_unknown():
    assert budget_limit(5_000.0, SizingConfig(max_notional_usd=250.0)) == 250.0
    enabled = SizingConfig(enabled=True, max_notional_usd=250.0)
    assert budget_limit(None, enabled) == 250.0
    assert budget_limit(5_000.0, SizingConfig()) is None


def test_budget_binds_when_smallest():
    sizing = SizingConfig(enabled=True, risk_per_market_pct=10.0, max_notional_usd=100.0)
    limits = position_limits(
        account_value=500.0, sigma=0.0002, horizon_s=1.0, confidence=1.0, config=RISK, sizing=sizing
    )
    assert limits.max_position_value == pytest.approx(50.0)
    assert limits.binding is BindingLimit.BUDGET


equity = st.floats(1.0, 1e9)
sigmas = st.floats(1e-6, 0.1)
horizons = st.floats(1e-3, 1e4)
conf = st.floats(0.0, 1.0)


def limit(v, s, t, c):
    return max_position_value(account_value=v, sigma=s, horizon_s=t, confidence=c, config=RISK)


@given(equity, sigmas, sigmas, horizons, conf)
def test_more_sigma_never_raises_the_limit(v, s1, s2, t, c):
    lo, hi = sorted((s1, s2))
    assert limit(v, hi, t, c) <= limit(v, lo, t, c) * (1 + 1e-12)


@given(equity, sigmas, horizons, horizons, conf)
def test_longer_horizon_never_raises_the_limit(v, s, t1, t2, c):
    lo, hi = sorted((t1, t2))
    assert limit(v, s, hi, c) <= limit(v, s, lo, c) * (1 + 1e-12)


@given(equity, equity, sigmas, horizons, conf)
def test_more_equity_never_lowers_the_limit(v1, v2, s, t, c):
    lo, hi = sorted((v1, v2))
    assert limit(hi, s, t, c) >= limit(lo, s, t, c) * (1 - 1e-12)


@given(equity, sigmas, horizons, conf)
def test_limit_never_exceeds_leverage_and_is_finite(v, s, t, c):
    value = limit(v, s, t, c)
    assert 0.0 < value <= v * RISK.max_leverage * (1 + 1e-12)
    assert math.isfinite(value)
