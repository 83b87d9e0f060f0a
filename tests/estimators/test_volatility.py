import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from market_maker.estimators import IncrementalVolStats
from tests.stubs import simulate_gbm


def test_sigma_within_2_percent_of_known_gbm_over_200k_samples():
    sigma = 0.0005
    prices = simulate_gbm(sigma=sigma, dt=1.0, n=200_001, seed=1)
    vol = IncrementalVolStats(sample_interval_s=1.0)
    for i, p in enumerate(prices):
        vol.update(float(p), float(i))
    assert vol.count == 200_000
    assert vol.sigma == pytest.approx(sigma, rel=0.02)


def test_welford_equals_numpy_variance_of_the_normalised_returns():
    prices = simulate_gbm(sigma=0.001, dt=1.0, n=5_001, seed=2)
    vol = IncrementalVolStats(sample_interval_s=1.0)
    for i, p in enumerate(prices):
        vol.update(float(p), float(i))
    returns = np.diff(np.log(prices))
    assert vol.mean == pytest.approx(returns.mean(), rel=1e-9, abs=1e-15)
    assert vol.variance == pytest.approx(returns.var(ddof=1), rel=1e-9)


def test_updates_faster_than_the_interval_do_not_bias_sigma():
    sigma = 0.0005
    fine_dt = 0.01
    prices = simulate_gbm(sigma=sigma, dt=fine_dt, n=2_000_001, seed=3)
    vol = IncrementalVolStats(sample_interval_s=1.0)
    # Bid-ask bounce on every tick: a real source of bias if every update were a sample.
    signs = np.random.default_rng(9).choice([-1.0, 1.0], size=prices.size)
    bounce = 1.0 + 0.0005 * signs
    quoted = prices * bounce
    for i in range(prices.size):
        vol.update(float(quoted[i]), i * fine_dt)
    assert vol.count == pytest.approx(20_000, abs=2)
    # The bounce adds sqrt(2) * 5e-4 of noise per sample; that is irreducible, the sampling grid
    # makes sure it is counted once per second and not a hundred times.
    expected = math.sqrt(sigma**2 + 2 * 0.0005**2)
    assert vol.sigma == pytest.approx(expected, rel=0.05)


def test_gaps_spanning_several_intervals_are_normalised_by_elapsed_time():
    sigma = 0.001
    rng = np.random.default_rng(4)
    vol = IncrementalVolStats(sample_interval_s=1.0)
    t = 0.0
    price = 100.0
    vol.update(price, t)
    for _ in range(50_000):
        gap = float(rng.choice([1.0, 3.0, 10.0]))
        price *= math.exp(sigma * math.sqrt(gap) * rng.standard_normal())
        t += gap
        vol.update(price, t)
    assert vol.sigma == pytest.approx(sigma, rel=0.02)


def test_halflife_tracks_a_volatility_regime_change():
    low, high = 0.0002, 0.001
    p1 = simulate_gbm(sigma=low, dt=1.0, n=20_000, seed=5)
    p2 = simulate_gbm(sigma=high, dt=1.0, n=20_000, seed=6, s0=float(p1[-1]))
    forgetting = IncrementalVolStats(sample_interval_s=1.0, halflife_s=600.0)
    plain = IncrementalVolStats(sample_interval_s=1.0)
    for i, p in enumerate(np.concatenate((p1, p2))):
        forgetting.update(float(p), float(i))
        plain.update(float(p), float(i))
    assert forgetting.sigma == pytest.approx(high, rel=0.1)
    assert plain.sigma < 0.8 * high


def test_halflife_on_a_stationary_path_matches_the_true_sigma():
    prices = simulate_gbm(sigma=0.0004, dt=1.0, n=50_000, seed=8)
    vol = IncrementalVolStats(sample_interval_s=1.0, halflife_s=3_600.0)
    for i, p in enumerate(prices):
        vol.update(float(p), float(i))
    assert vol.sigma == pytest.approx(0.0004, rel=0.05)


@pytest.mark.parametrize(
    ("price", "t"),
    [(math.nan, 5.0), (math.inf, 5.0), (0.0, 5.0), (-1.0, 5.0), (100.0, math.nan), (100.0, 1.0)],
)
def test_update_when_input_is_bad_then_ignored_and_counted(price, t):
    vol = IncrementalVolStats(sample_interval_s=1.0)
    vol.update(100.0, 2.0)
    vol.update(101.0, 3.0)
    vol.update(100.5, 4.0)
    before = (vol.count, vol.mean, vol.variance)
    vol.update(price, t)
    assert vol.rejected == 1
    assert (vol.count, vol.mean, vol.variance) == before
    assert math.isfinite(vol.sigma)


def test_repeated_timestamps_add_no_sample():
    vol = IncrementalVolStats(sample_interval_s=1.0)
    vol.update(100.0, 1.0)
    vol.update(100.0, 2.0)
    vol.update(150.0, 2.0)
    vol.update(50.0, 2.0)
    assert vol.count == 1
    assert vol.rejected == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(1e-6, 1e9)),
            st.one_of(st.floats(-1e3, 1e6), st.just(math.nan)),
        ),
        max_size=50,
    )
)
@example([(2.0, 0.0), (5e-324, 1.0)])  # a denormal price: the ratio underflows to zero
def test_no_input_sequence_produces_a_nan_or_an_exception(updates):
    vol = IncrementalVolStats(sample_interval_s=0.5, halflife_s=30.0)
    for price, t in updates:
        vol.update(price, t)
        assert math.isfinite(vol.sigma)
        assert vol.sigma >= 0.0


def test_reset_and_initialized():
    vol = IncrementalVolStats()
    assert not vol.initialized
    for i in range(4):
        vol.update(100.0 + i, float(i))
    assert vol.initialized
    vol.reset()
    assert (vol.count, vol.sigma, vol.initialized) == (0, 0.0, False)


@pytest.mark.parametrize("kwargs", [{"sample_interval_s": 0.0}, {"halflife_s": -1.0}])
def test_constructor_rejects_invalid_settings(kwargs):
    with pytest.raises(ValueError):
        IncrementalVolStats(**kwargs)
