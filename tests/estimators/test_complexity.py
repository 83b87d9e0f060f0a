"""O(1) state: memory does not grow with history (counted with tracemalloc, never timed)."""

import gc
import math
import tracemalloc

import pytest

from market_maker.estimators import FillIntensityEstimator, IncrementalHawkes, IncrementalVolStats

N = 1_000_000


def grown_bytes(update, warmup: int, n: int) -> int:
    for i in range(warmup):
        update(i)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(warmup, warmup + n):
            update(i)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after - before


@pytest.mark.parametrize("estimator", ["hawkes", "volatility", "intensity"])
@pytest.mark.slow
def test_memory_is_flat_over_a_million_updates(estimator):
    if estimator == "hawkes":
        hawkes = IncrementalHawkes(1.0, 0.5, 1.0)

        def update(i):
            hawkes.update(i * 0.01, 1.0 + (i % 3))
            hawkes.intensity(i * 0.01 + 0.005)

    elif estimator == "volatility":
        vol = IncrementalVolStats(sample_interval_s=0.05, halflife_s=60.0)

        def update(i):
            vol.update(100.0 + math.sin(i * 0.001), i * 0.01)

    else:
        est = FillIntensityEstimator(tick_size=0.1, step_s=0.1, window_s=60.0)

        def update(i):
            t = i * 0.01
            est.on_mid(100.0, t)
            est.update(100.0 + 0.1 * (i % 7), t, i % 2 == 0)

    grown = grown_bytes(update, warmup=20_000, n=N)
    # A per-event leak of even one float would be 24 MB here.
    assert grown < 4_096, f"{estimator} grew {grown} bytes over {N} updates"
