import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market_maker.strategy import glft_coefficients, glft_depths

A = 2.986162360812285
K = 0.04235741115084049


def test_worked_example_from_the_reference_to_1e_12():
    c1, c2 = glft_coefficients(gamma=0.05, xi=0.05, delta=1.0, a=A, k=K)
    assert c1 == pytest.approx(15.590451013297574, rel=1e-12)
    assert c2 == pytest.approx(0.9133085734604557, rel=1e-12)
    d = glft_depths(gamma=0.05, xi=0.05, delta=1.0, a=A, k=K, sigma=10.69, q=0.0)
    assert d.half_spread == pytest.approx(20.472085338443712, rel=1e-12)
    assert d.skew == pytest.approx(9.763268650292272, rel=1e-12)
    assert d.bid_depth == d.ask_depth == d.half_spread


def test_xi_zero_is_the_analytic_limit():
    c1, c2 = glft_coefficients(gamma=0.05, xi=0.0, delta=1.0, a=A, k=K)
    assert c1 == pytest.approx(1 / K)
    assert c2 == pytest.approx(math.sqrt(0.05 * math.e / (2 * A * K)))
    near = glft_coefficients(gamma=0.05, xi=1e-9, delta=1.0, a=A, k=K)
    assert near[0] == pytest.approx(c1, rel=1e-6)
    assert near[1] == pytest.approx(c2, rel=1e-6)


@given(
    st.floats(1e-4, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.1, 10.0),
    st.floats(0.1, 100.0),
    st.floats(1e-3, 2.0),
    st.floats(0.0, 100.0),
    st.floats(-20.0, 20.0),
)
def test_negating_inventory_swaps_the_depths(gamma, xi, delta, a, k, sigma, q):
    long = glft_depths(gamma=gamma, xi=xi, delta=delta, a=a, k=k, sigma=sigma, q=q)
    short = glft_depths(gamma=gamma, xi=xi, delta=delta, a=a, k=k, sigma=sigma, q=-q)
    assert long.bid_depth == pytest.approx(short.ask_depth)
    assert long.ask_depth == pytest.approx(short.bid_depth)


def test_long_inventory_lowers_both_quotes():
    flat = glft_depths(gamma=0.05, xi=0.05, delta=1.0, a=A, k=K, sigma=10.0, q=0.0)
    long = glft_depths(gamma=0.05, xi=0.05, delta=1.0, a=A, k=K, sigma=10.0, q=2.0)
    assert long.bid_depth > flat.bid_depth  # buys further away
    assert long.ask_depth < flat.ask_depth  # sells closer


def test_more_risk_aversion_widens_the_spread():
    lo = glft_depths(gamma=0.01, xi=0.01, delta=1.0, a=A, k=K, sigma=10.0, q=0.0)
    hi = glft_depths(gamma=0.5, xi=0.5, delta=1.0, a=A, k=K, sigma=10.0, q=0.0)
    assert hi.skew > lo.skew
