"""Benchmarks run with `scripts/bench` (pytest-benchmark enabled); the test suite skips them."""
