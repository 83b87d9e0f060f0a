import subprocess
import sys

import pytest

from market_maker.backtest.calibrate import calibrate
from market_maker.backtest.session import run_session
from market_maker.cli import main
from market_maker.config import load_config
from tests.backtest.test_backtest import BINANCE


@pytest.mark.slow
def test_calibrate_prints_the_fit_with_intervals_and_writes_an_overlay_that_backtests(
    tmp_path, capsys
):
    overlay = tmp_path / "btc.toml"
    assert main(["calibrate", "--data", str(BINANCE), "-o", str(overlay)]) == 0
    out = capsys.readouterr().out
    assert "BTCUSDT" in out and "5,436 aggressive orders" in out and "hawkes beta" in out
    text = overlay.read_text()
    assert text.startswith("# market-maker calibrate") and "btcusdt_20240808.gz" in text
    config = load_config(overlay)
    h = config.estimators.hawkes
    # The trade rate the fit implies is the one counted: mu / (1 - alpha/beta) ~ 15.8/s.
    assert abs(h.mu / (1 - h.alpha / h.beta) - 5_436 / 343.3) < 1.5
    result, _ = run_session(config, data=BINANCE, seed=1)
    assert result.limit_breaches == 0 and result.fills > 0
    assert main(["calibrate", "--data", str(BINANCE), "-o", str(overlay)]) == 1  # no clobber
    assert "pass --force" in capsys.readouterr().err


def test_each_estimate_lies_in_its_interval_and_sigma_matches_the_returns():
    c = calibrate(BINANCE)
    for value, (lo, hi) in zip((c.mu, c.alpha, c.beta), c.hawkes_ci, strict=True):
        assert lo < value < hi
    lo, hi = c.sigma_ci
    assert lo < c.sigma < hi
    assert c.trade_rate_ci[0] < 5_436 / 343.3 < c.trade_rate_ci[1]
    assert c.a > 0 and c.k > 0


def test_importing_the_engine_does_not_import_scipy():
    code = "import sys, market_maker.engine, market_maker.runtime; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
