"""Test-wide settings: no per-example deadline (wall-clock limits make property tests flaky on
a shared CI machine; speed is measured in benches/, never asserted here)."""

import pytest
import structlog
from hypothesis import settings

settings.register_profile("market_maker", deadline=None, print_blob=True)
settings.load_profile("market_maker")


@pytest.fixture(autouse=True)
def _fresh_logging():
    """A test that runs the CLI configures structlog for the process; undo it afterwards so
    no later test logs to a stream pytest has closed."""
    yield
    structlog.reset_defaults()
