import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_maker.estimators import IncrementalHawkes, fit_hawkes
from tests.stubs import simulate_hawkes


def brute_force_intensity(mu, alpha, beta, events, t):
    return mu + sum(alpha * m * math.exp(-beta * (t - ti)) for ti, m in events if ti <= t)


def test_intensity_equals_brute_force_sum_on_random_marked_stream():
    rng = random.Random(7)
    mu, alpha, beta = 0.7, 1.3, 2.1
    hawkes = IncrementalHawkes(mu, alpha, beta)
    events: list[tuple[float, float]] = []
    t = 0.0
    for _ in range(2_000):
        t += rng.expovariate(3.0)
        mark = rng.uniform(0.1, 5.0)
        hawkes.update(t, mark)
        events.append((t, mark))
        query = t + rng.uniform(0.0, 2.0)
        expected = brute_force_intensity(mu, alpha, beta, events, query)
        assert hawkes.intensity(query) == pytest.approx(expected, rel=1e-9)
    assert hawkes.count == 2_000


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=60),
    marks=st.lists(st.floats(0.01, 100.0), min_size=60, max_size=60),
    lag=st.floats(0.0, 50.0),
)
def test_intensity_matches_brute_force_for_any_stream(gaps, marks, lag):
    hawkes = IncrementalHawkes(0.2, 0.9, 1.0)
    events = []
    t = 0.0
    for gap, mark in zip(gaps, marks, strict=False):
        t += gap
        hawkes.update(t, mark)
        events.append((t, mark))
    expected = brute_force_intensity(0.2, 0.9, 1.0, events, t + lag)
    assert hawkes.intensity(t + lag) == pytest.approx(expected, rel=1e-9)


def test_intensity_query_does_not_change_state():
    hawkes = IncrementalHawkes(1.0, 0.5, 1.0)
    hawkes.update(1.0)
    first = hawkes.intensity(3.0)
    hawkes.intensity(100.0)
    hawkes.intensity(2.0)
    assert hawkes.intensity(3.0) == first


def test_ratio_is_one_when_quiet_and_grows_in_a_burst():
    hawkes = IncrementalHawkes(1.0, 0.9, 1.0)
    assert hawkes.ratio(0.0) == 1.0
    for i in range(50):
        hawkes.update(10.0 + i * 0.01)
    assert hawkes.ratio(10.5) > 20.0
    assert hawkes.ratio(1_000.0) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("t", "mark"),
    [(math.nan, 1.0), (math.inf, 1.0), (4.0, 1.0), (6.0, 0.0), (6.0, -1.0), (6.0, math.nan)],
)
def test_update_when_input_is_bad_then_ignored_and_counted(t, mark):
    hawkes = IncrementalHawkes(1.0, 0.5, 1.0)
    hawkes.update(5.0)
    before = hawkes.intensity(7.0)
    hawkes.update(t, mark)
    assert hawkes.rejected == 1
    assert hawkes.count == 1
    assert hawkes.intensity(7.0) == before
    assert math.isfinite(hawkes.ratio(7.0))


def test_events_at_the_same_instant_are_all_counted():
    hawkes = IncrementalHawkes(1.0, 0.5, 1.0)
    for _ in range(3):
        hawkes.update(2.0)
    assert hawkes.count == 3
    assert hawkes.intensity(2.0) == pytest.approx(1.0 + 1.5)


def test_nan_query_time_returns_a_finite_intensity():
    hawkes = IncrementalHawkes(1.0, 0.5, 1.0)
    hawkes.update(1.0)
    assert math.isfinite(hawkes.intensity(math.nan))


@pytest.mark.parametrize(
    ("mu", "alpha", "beta"), [(0.0, 0.1, 1.0), (1.0, 1.0, 1.0), (1.0, -0.1, 1.0), (1.0, 0.1, 0.0)]
)
def test_constructor_rejects_non_stationary_or_invalid_parameters(mu, alpha, beta):
    with pytest.raises(ValueError):
        IncrementalHawkes(mu, alpha, beta)


def test_reset_forgets_events():
    hawkes = IncrementalHawkes(1.0, 0.5, 1.0)
    hawkes.update(1.0)
    hawkes.update(0.5)
    hawkes.reset()
    assert (hawkes.count, hawkes.rejected, hawkes.initialized) == (0, 0, False)
    assert hawkes.intensity(1.0) == 1.0


def test_simulator_matches_the_stationary_rate():
    times = simulate_hawkes(mu=0.5, alpha=0.8, beta=1.6, n_events=20_000, seed=3)
    rate = len(times) / times[-1]
    assert rate == pytest.approx(0.5 / (1 - 0.5), rel=0.05)


def test_fit_hawkes_recovers_simulated_parameters_within_15_percent():
    mu, alpha, beta = 0.5, 0.8, 1.6
    times = simulate_hawkes(mu=mu, alpha=alpha, beta=beta, n_events=20_000, seed=11)
    fit = fit_hawkes(times)
    assert fit.mu == pytest.approx(mu, rel=0.15)
    assert fit.alpha == pytest.approx(alpha, rel=0.15)
    assert fit.beta == pytest.approx(beta, rel=0.15)
    assert fit.branching_ratio < 1.0
    assert fit.events == 20_000


def test_the_intervals_cover_the_true_parameters_about_95_times_in_100():
    """Wald intervals from the observed information, checked against the truth over 40
    independent simulations: about 38 of 40 should cover each parameter."""
    truth = (0.5, 0.8, 1.6)
    covered = [0, 0, 0]
    for seed in range(40):
        fit = fit_hawkes(simulate_hawkes(mu=0.5, alpha=0.8, beta=1.6, n_events=2_000, seed=seed))
        assert fit.ci95 is not None
        for i, (lo, hi) in enumerate(fit.ci95):
            covered[i] += lo < truth[i] < hi
    assert all(c >= 34 for c in covered), covered  # binomial(40, 0.95): 34 is the 0.2 % tail


def test_fit_hawkes_on_a_poisson_stream_finds_little_excitation():
    rng = np.random.default_rng(5)
    times = np.cumsum(rng.exponential(1 / 2.0, size=5_000))
    fit = fit_hawkes(times)
    assert fit.mu == pytest.approx(2.0, rel=0.15)
    assert fit.branching_ratio < 0.1


@pytest.mark.parametrize("times", [[1.0] * 3, [3.0, 2.0] + [4.0] * 20, [math.nan, *range(20)]])
def test_fit_hawkes_rejects_unusable_input(times):
    with pytest.raises(ValueError):
        fit_hawkes(times)
