"""Builders shared by the tests: simulated event streams and configs."""

from __future__ import annotations

import math
import random

import numpy as np


def simulate_hawkes(
    *, mu: float, alpha: float, beta: float, n_events: int, seed: int = 0
) -> np.ndarray:
    """Event times of a Hawkes process with exponential kernel, by Ogata's thinning.

    Between events the intensity only decays, so the intensity just after the last accepted
    event bounds it until the next candidate: draw a candidate from that bound and accept it
    with probability ``lambda(candidate) / bound``.
    """
    rng = random.Random(seed)
    times = np.empty(n_events)
    t = 0.0
    excitation = 0.0  # sum alpha * exp(-beta * (t - t_i)) at time t
    n = 0
    while n < n_events:
        bound = mu + excitation
        wait = rng.expovariate(bound)
        excitation *= math.exp(-beta * wait)
        t += wait
        if rng.random() * bound <= mu + excitation:
            excitation += alpha
            times[n] = t
            n += 1
    return times


def simulate_gbm(
    *, sigma: float, dt: float, n: int, s0: float = 100.0, drift: float = 0.0, seed: int = 0
) -> np.ndarray:
    """Prices of a geometric Brownian motion sampled every ``dt`` seconds (sigma per sqrt s)."""
    rng = np.random.default_rng(seed)
    steps = (drift - 0.5 * sigma**2) * dt + sigma * math.sqrt(dt) * rng.standard_normal(n - 1)
    return s0 * np.exp(np.concatenate(([0.0], np.cumsum(steps))))
