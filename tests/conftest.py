"""Test-wide settings: no per-example deadline (wall-clock limits make property tests flaky on
a shared CI machine; speed is measured in benches/, never asserted here)."""

from hypothesis import settings

settings.register_profile("market_maker", deadline=None, print_blob=True)
settings.load_profile("market_maker")
