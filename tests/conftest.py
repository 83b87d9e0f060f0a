"""Test-wide settings: no per-example deadline (wall-clock limits make property tests flaky on
a shared CI machine; speed is measured in benches/, never asserted here)."""

import os
import signal

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


@pytest.fixture(autouse=True, scope="session")
def _replay_cache(tmp_path_factory):
    """Decoded captures go to a folder of this run, never the user's cache (subprocesses
    inherit it); the run's replays share it, as a user's runs do."""
    os.environ["MM_CACHE_DIR"] = str(tmp_path_factory.mktemp("replay-cache"))
    yield


@pytest.fixture(autouse=True, scope="session")
def _ctrl_c_reaches_children():
    """A shell that starts the suite in the background (``scripts/test &``) makes it ignore
    SIGINT, and every child inherits that: the Ctrl-C tests would then wait on a run that
    cannot be stopped. Catching SIGINT here gives children the default back (exec resets a
    caught signal, never an ignored one)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path_factory, monkeypatch):
    """Live runs keep a state file per account and market (latched halts, the day's opening
    equity): each test keeps its own, never the user's, and no test inherits another's halt
    (subprocesses inherit the variable)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    yield
