import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_maker.estimators import FillIntensityEstimator


def feed_poisson_orders(est, *, a, k, tick, seconds, seed, mid=100.0):
    """Market orders per side at rate ``a``; each reaches a depth ~ Exp(k) ticks from the mid."""
    rng = random.Random(seed)
    t = 0.0
    while t < seconds:
        t += rng.expovariate(2 * a)
        est.on_mid(mid, t)
        depth = rng.expovariate(k) * tick
        is_buy = rng.random() < 0.5
        est.update(mid + depth if is_buy else mid - depth, t, is_buy)


@pytest.mark.parametrize(("a", "k"), [(2.0, 0.3), (0.5, 0.8), (5.0, 0.15)])
def test_fit_recovers_a_and_k_of_a_simulated_order_flow(a, k):
    est = FillIntensityEstimator(tick_size=0.1, step_s=0.1, window_s=1_200.0, max_depth_ticks=30)
    feed_poisson_orders(est, a=a, k=k, tick=0.1, seconds=1_300.0, seed=int(a * 10))
    assert est.fitted
    assert est.a == pytest.approx(a, rel=0.15)
    assert est.k == pytest.approx(k, rel=0.15)


def test_observed_level_rates_follow_the_exponential_law_in_whole_ticks():
    est = FillIntensityEstimator(tick_size=0.5, step_s=0.1, window_s=2_000.0)
    feed_poisson_orders(est, a=1.0, k=0.5, tick=0.5, seconds=2_100.0, seed=1)
    rates = est.level_rates()
    for depth in range(4):
        assert rates[depth] == pytest.approx(math.exp(-0.5 * depth), rel=0.12)


def test_priors_are_used_until_the_first_fit():
    est = FillIntensityEstimator(tick_size=0.1, a_prior=3.0, k_prior=0.7)
    assert (est.a, est.k, est.initialized) == (3.0, 0.7, False)
    assert est.intensity(0.0) == 3.0


def test_trades_before_any_mid_are_rejected():
    est = FillIntensityEstimator(tick_size=0.1)
    est.update(100.0, 1.0, True)
    assert (est.rejected, est.count) == (1, 0)


@pytest.mark.parametrize(
    ("price", "t"), [(math.nan, 2.0), (-5.0, 2.0), (0.0, 2.0), (100.0, math.inf), (100.0, 0.5)]
)
def test_bad_trades_are_ignored_and_counted(price, t):
    est = FillIntensityEstimator(tick_size=0.1)
    est.on_mid(100.0, 1.0)
    est.update(price, t, True)
    assert (est.rejected, est.count) == (1, 0)


def test_bad_mids_are_ignored_and_counted():
    est = FillIntensityEstimator(tick_size=0.1)
    for mid in (math.nan, 0.0, -1.0):
        est.on_mid(mid, 1.0)
    assert est.rejected == 3
    est.update(100.0, 1.0, True)
    assert est.count == 0


def test_depth_is_measured_from_the_mid_at_the_start_of_the_step():
    est = FillIntensityEstimator(tick_size=1.0, step_s=1.0, window_s=100.0, refit_interval_s=1e9)
    est.on_mid(100.0, 0.0)
    est.on_mid(103.0, 0.5)  # a sweep moved the book; the print below is 3 ticks deep, not 0
    est.update(103.0, 0.6, True)
    est.on_mid(103.0, 1.0)  # closes the first step
    hit = [r > 0 for r in est.level_rates()]
    assert hit[:5] == [True, True, True, True, False]


def test_state_is_bounded_over_a_long_stream():
    est = FillIntensityEstimator(tick_size=0.1, step_s=0.1, window_s=10.0)
    sizes = (len(est._ring), len(est._counts))
    feed_poisson_orders(est, a=3.0, k=0.5, tick=0.1, seconds=500.0, seed=2)
    assert (len(est._ring), len(est._counts)) == sizes
    # The window only ever holds window_s / step_s steps per side.
    assert est.level_rates()[0] > 0
    assert sum(1 for d in est._ring if d >= 0) <= 2 * 100


def test_idle_gap_longer_than_the_window_forgets_old_steps():
    est = FillIntensityEstimator(tick_size=0.1, step_s=0.1, window_s=10.0)
    feed_poisson_orders(est, a=3.0, k=0.5, tick=0.1, seconds=20.0, seed=3)
    est.on_mid(100.0, 1_000.0)
    assert est.level_rates() == [0.0] * (est.max_depth_ticks + 1)


# Each step: None (no data at all in it) or the trades in it as (is_buy, depth in ticks).
_steps = st.lists(
    st.none() | st.lists(st.tuples(st.booleans(), st.integers(0, 7)), max_size=4),
    max_size=40,
)


@given(steps=_steps)
@settings(max_examples=300, deadline=None)
def test_rolling_level_counts_equal_a_recount_of_the_steps_in_the_window(steps):
    """The running per-depth hit counts against a brute-force recount of the window's steps."""
    window, max_depth = 5, 4
    est = FillIntensityEstimator(
        tick_size=1.0, step_s=1.0, window_s=float(window), max_depth_ticks=max_depth
    )
    closed: list[tuple[int, int]] = []  # (deepest buy, deepest sell) per step, -1 for none
    for i, trades in enumerate(steps):
        if trades is None:  # an idle step: nothing arrives, the next event closes it
            closed.append((-1, -1))
            continue
        est.on_mid(100.0, float(i))
        deepest = {True: -1, False: -1}
        for j, (is_buy, depth) in enumerate(trades):
            est.update(100.0 + depth if is_buy else 100.0 - depth, i + 0.1 + 0.1 * j, is_buy)
            deepest[is_buy] = max(deepest[is_buy], min(depth, max_depth))
        closed.append((deepest[True], deepest[False]))
    est.on_mid(100.0, float(len(steps)))
    if est._steps_seen == 0:  # no mid before the end: the window never opened
        return
    first = next(i for i, s in enumerate(steps) if s is not None)
    recent = closed[first:][-window:]
    hits = [sum(d >= level for pair in recent for d in pair) for level in range(max_depth + 1)]
    assert est.level_rates() == [est._rate(h) for h in hits]
