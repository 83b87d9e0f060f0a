"""The adverse move after our fills, against a brute-force reading of the same path."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_maker.estimators import AdverseSelection

S = 1_000_000_000


def brute_force(fills, mids, horizon_ns, prior, prior_w, halflife):
    """Each fill's adverse move at the first mid at or after its horizon, in settle order,
    decayed by 0.5 ** (1 / halflife) per later settled fill, shrunk towards the prior."""
    settled = []
    for t, buy, price in fills:
        due = t + horizon_ns
        later = [m for tm, m in mids if tm >= due]
        if later:
            mid = later[0]
            settle_t = next(tm for tm, _ in mids if tm >= due)
            sign = 1.0 if buy else -1.0
            settled.append((settle_t, due, -sign * (mid - price) / price * 1e4))
    settled.sort(key=lambda x: (x[0], x[1]))
    d = 0.5 ** (1.0 / halflife)
    n = len(settled)
    s = sum(a * d ** (n - 1 - i) for i, (_, _, a) in enumerate(settled))
    w = sum(d ** (n - 1 - i) for i in range(n))
    return (prior_w * prior + s) / (prior_w + w)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000), halflife=st.sampled_from([1.0, 5.0, 50.0]))
def test_the_estimate_is_the_decayed_shrunk_mean_of_settled_fills(seed, halflife):
    rng = random.Random(seed)
    est = AdverseSelection(prior_bps=1.0, prior_fills=5.0, halflife_fills=halflife, horizon_s=1.0)
    fills, mids = [], []
    t, mid = 0, 100.0
    for _ in range(rng.randint(1, 60)):
        t += rng.randint(1, 400) * 10_000_000
        if rng.random() < 0.3:
            buy = rng.random() < 0.5
            price = mid - 0.01 if buy else mid + 0.01
            fills.append((t, buy, price))
            est.on_fill(t, buy, price)
        else:
            mid *= 1.0 + rng.gauss(0.0, 1e-4)
            mids.append((t, mid))
            est.on_mid(t, mid)
    assert est.bps == pytest.approx(brute_force(fills, mids, S, 1.0, 5.0, halflife), abs=1e-9)


def test_no_fills_is_the_prior_and_many_fills_their_own_mean():
    est = AdverseSelection(prior_bps=2.0, prior_fills=10.0, halflife_fills=1e6, horizon_s=1.0)
    assert est.bps == 2.0 and est.settled == 0.0
    for i in range(1000):
        t = i * S
        est.on_fill(t, True, 100.0)  # bought at 100: the mid at 99.99 a second later is -1 bp
        est.on_mid(t + S, 99.99)
    assert est.bps == pytest.approx((10 * 2.0 + 1000 * 1.0) / 1010, rel=1e-4)


def test_the_queue_is_bounded_and_bad_prices_are_ignored():
    est = AdverseSelection(prior_bps=1.0, prior_fills=1.0, halflife_fills=10.0, horizon_s=60.0)
    for i in range(20_000):
        est.on_fill(i, i % 2 == 0, 100.0)
    est.on_fill(0, True, float("nan"))
    est.on_fill(0, True, -1.0)
    assert len(est._queue) == 10_000
    est.on_mid(61 * S, float("nan"))  # a bad mid settles nothing
    assert est.settled == 0.0
