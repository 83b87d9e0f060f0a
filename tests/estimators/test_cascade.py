import random

import pytest

from market_maker.estimators import CascadeDetector


def poisson(rate: float, start: float, end: float, rng: random.Random) -> list[float]:
    out, t = [], start
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            return out
        out.append(t)


@pytest.mark.parametrize("rate", [0.5, 5.0, 50.0])
def test_normal_trading_reads_about_one_whatever_the_markets_rate(rate):
    """No calibration: the same detector on markets 100x apart in activity."""
    rng = random.Random(7)
    d = CascadeDetector(prior_rate=1.0)
    ratios = []
    for t in poisson(rate, 0.0, 1_800.0, rng):
        d.update(t)
        if t > 600.0:
            ratios.append(d.ratio(t))
    assert d.long_rate(1_800.0) == pytest.approx(rate, rel=0.15)
    ratios.sort()
    assert 0.7 < ratios[len(ratios) // 2] < 1.4
    assert ratios[int(len(ratios) * 0.999)] < 3.0  # the pause line is not reached by noise


def test_ten_seconds_at_five_times_the_normal_rate_read_about_four():
    """Expected: count 50 * 5 * (1 - e^-2) + 10 * 5 * e^-2 = 223 against 50, so (223 + 5) /
    (50 + 5) = 4.1."""
    rng = random.Random(3)
    d = CascadeDetector(prior_rate=1.0, window_s=5.0)
    for t in poisson(10.0, 0.0, 900.0, rng):
        d.update(t)
    for t in poisson(50.0, 900.0, 910.0, rng):
        d.update(t)
    assert 3.0 < d.ratio(910.0) < 5.5


def test_the_prior_seeds_the_long_run_rate_and_fades():
    d = CascadeDetector(prior_rate=2.0, prior_weight_s=5.0, baseline_s=1200.0)
    assert d.long_rate(0.0) == 2.0
    for i in range(20 * 120):  # 20 trades a second for two minutes
        d.update(i * 0.05)
    assert d.long_rate(120.0) == pytest.approx(20.0, rel=0.1)


def test_no_cascade_is_called_while_warming_up():
    d = CascadeDetector(prior_rate=1.0, warmup_s=60.0)
    for i in range(500):
        d.update(1.0 + 0.001 * i)
    assert d.ratio(1.5) == 1.0
    assert d.ratio(61.0) != 1.0


def test_bad_times_never_break_it():
    d = CascadeDetector(prior_rate=1.0, warmup_s=0.0)
    d.update(float("nan"))
    assert d.count == 0
    d.update(10.0)
    d.update(5.0)  # earlier: counted at the last time
    d.update(float("inf"))  # ignored: it would stop the clock
    assert d.count == 2
    assert d.ratio(10.0) == d.ratio(10.0)  # not NaN
