"""Sweep scaling: one fixed sweep on one worker process, then on two (target: >= 1.7x)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from market_maker.backtest import sweep

GRID = """
[sweep]
scenarios = ["calm"]
seeds = 2
held_back_seeds = 0
duration_s = 900

[params]
"strategy.spread_multiplier" = [1.0, 1.25, 1.5, 2.0]
"strategy.gamma" = [0.05, 0.1]
"""


def _sweep(tmp: Path, workers: int) -> float:
    tmp.mkdir(parents=True)
    path = tmp / "grid.toml"
    path.write_text(GRID)
    plan = sweep.build_plan(path)
    t0 = time.perf_counter()
    result = sweep.run_sweep(plan, tmp / f"out-{workers}", sweep.process_executor(workers))
    elapsed = time.perf_counter() - t0
    assert result.runs == 18 and not result.failures
    return elapsed


@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_18_runs(benchmark, tmp_path, workers):
    """18 runs of 15 simulated minutes (9 points x 2 seeds), process start-up included."""
    counter = iter(range(1000))
    seconds = benchmark.pedantic(
        lambda: _sweep(tmp_path / str(next(counter)), workers), rounds=2, iterations=1
    )
    benchmark.extra_info["workers"] = workers
    benchmark.extra_info["seconds"] = seconds
