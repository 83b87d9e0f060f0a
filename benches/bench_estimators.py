"""Estimator cost per event: incremental vs naive Hawkes, and flatness as history grows."""

from __future__ import annotations

import math
from collections import deque

import pytest

from market_maker.estimators import FillIntensityEstimator, IncrementalHawkes, IncrementalVolStats


class NaiveHawkes:
    """The O(n) original: a sum over the last 500 events on every query."""

    def __init__(self, mu: float, alpha: float, beta: float, window: int = 500) -> None:
        self.mu, self.alpha, self.beta = mu, alpha, beta
        self.events: deque[float] = deque(maxlen=window)

    def update(self, t: float) -> None:
        self.events.append(t)

    def intensity(self, t: float) -> float:
        a, b = self.alpha, self.beta
        return self.mu + sum(a * math.exp(-b * (t - ti)) for ti in self.events)


class Clock:
    """Advancing time so every benchmark round sees a fresh, later event."""

    def __init__(self, step: float) -> None:
        self.t = 0.0
        self.step = step

    def tick(self) -> float:
        self.t += self.step
        return self.t


def prefilled_hawkes(events: int) -> tuple[IncrementalHawkes, Clock]:
    hawkes = IncrementalHawkes(1.0, 0.5, 1.0)
    clock = Clock(0.01)
    for _ in range(events):
        hawkes.update(clock.tick())
    return hawkes, clock


@pytest.mark.parametrize("history", [100, 1_000_000])
def test_hawkes_update_and_intensity(benchmark, history):
    hawkes, clock = prefilled_hawkes(history)

    def step() -> float:
        t = clock.tick()
        hawkes.update(t)
        return hawkes.intensity(t)

    benchmark(step)


def test_naive_hawkes_500_events(benchmark):
    naive = NaiveHawkes(1.0, 0.5, 1.0)
    clock = Clock(0.01)
    for _ in range(500):
        naive.update(clock.tick())

    def step() -> float:
        t = clock.tick()
        naive.update(t)
        return naive.intensity(t)

    benchmark(step)


@pytest.mark.parametrize("history", [100, 1_000_000])
def test_volatility_update(benchmark, history):
    vol = IncrementalVolStats(sample_interval_s=0.05)
    clock = Clock(0.01)
    for i in range(history):
        vol.update(100.0 + math.sin(i * 0.01), clock.tick())
    price = [100.0]

    def step() -> None:
        price[0] *= 1.00001
        vol.update(price[0], clock.tick())

    benchmark(step)


@pytest.mark.parametrize("history", [100, 1_000_000])
def test_fill_intensity_update(benchmark, history):
    est = FillIntensityEstimator(tick_size=0.1, step_s=0.1, window_s=600.0)
    clock = Clock(0.02)
    for i in range(history):
        t = clock.tick()
        est.on_mid(100.0, t)
        est.update(100.0 + 0.1 * (i % 5), t, i % 2 == 0)
    n = [0]

    def step() -> None:
        t = clock.tick()
        n[0] += 1
        est.update(100.0 + 0.1 * (n[0] % 5), t, n[0] % 2 == 0)

    benchmark(step)
