import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from market_maker.cli import main
from market_maker.config import AppConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_limits_json_reports_every_limit_and_the_binding_one(capsys):
    code, out, _ = run_cli(
        capsys,
        "limits",
        "--account-value",
        "10000",
        "--sigma",
        "0.002",
        "--trade-rate",
        "0.01",
        "--mid",
        "50000",
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    # T = min(1 / 0.01, 120) = 100 s; vol limit = 10000 * 0.5 / (5 * 0.002 * 10) = 50,000
    assert report["horizon_s"] == 100.0
    assert report["volatility_limit_usd"] == pytest.approx(50_000.0)
    assert report["leverage_limit_usd"] == pytest.approx(200_000.0)
    assert report["binding_limit"] == "volatility"
    assert report["max_position_contracts"] == pytest.approx(1.0)


def test_limits_defaults_use_the_prior_and_hawkes_rate(capsys):
    code, out, _ = run_cli(capsys, "limits", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["confidence"] == 0.0
    assert report["sigma_used"] == AppConfig().risk.sigma_prior
    assert report["trade_rate_per_s"] == AppConfig().estimators.hawkes.mu


def test_limits_text_names_the_binding_limit(capsys):
    code, out, _ = run_cli(capsys, "limits", "--config", str(ROOT / "config/conservative.toml"))
    assert code == 0
    assert "<- binds" in out
    assert "max position" in out


@pytest.mark.parametrize("columns", [80, 60])
def test_limits_text_fits_the_terminal_and_never_cuts_a_number(capsys, monkeypatch, columns):
    """The issue: ``limits`` wrapped at 80 columns and broke numbers mid-word at 60."""
    args = ["limits", "--account-value", "12345678", "--mid", "2682.45", "--sigma", "0.0003"]
    args += ["--samples", "100", "--balance", "20000000", "--config"]
    args += [str(ROOT / "config/conservative.toml")]
    monkeypatch.setenv("COLUMNS", "200")
    code, wide, _ = run_cli(capsys, *args)
    monkeypatch.setenv("COLUMNS", str(columns))
    code_narrow, out, _ = run_cli(capsys, *args)
    assert code == code_narrow == 0
    assert max(len(line) for line in wide.splitlines()) <= 80  # never wider than 80
    assert max(len(line) for line in out.splitlines()) <= columns
    # The same words in the same order: every number whole, only the line breaks moved.
    assert out.split() == wide.split()
    assert "12,345,678.00" in out.split() and "2,682.45" in out.split()


def test_limits_budget_from_balance(capsys):
    code, out, _ = run_cli(
        capsys,
        "limits",
        "--config",
        str(ROOT / "config/conservative.toml"),
        "--account-value",
        "20000",
        "--balance",
        "20000",
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    assert report["budget_limit_usd"] == pytest.approx(1_000.0)  # 5 % of 20,000 < 2,000 cap
    assert report["binding_limit"] == "budget"


def test_check_config_ok_and_bad(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "check-config", str(ROOT / "config/aggressive.toml"))
    assert code == 0 and "ok" in out
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nnum_sigmas = 0\n")
    code, out, err = run_cli(capsys, "check-config", str(bad))
    assert code == 2
    expected = f"market-maker: config error: {bad}: risk.num_sigmas: Expected `float` >= 0.1 (standard deviations)"
    assert err.strip() == expected
    assert "Traceback" not in err


def test_init_config_writes_a_loadable_default_and_refuses_to_overwrite(capsys, tmp_path):
    target = tmp_path / "mm.toml"
    code, _, _ = run_cli(capsys, "init-config", "-o", str(target))
    assert code == 0
    assert load_config(target, env={}) == AppConfig()
    code, _, err = run_cli(capsys, "init-config", "-o", str(target))
    assert code == 1 and "--force" in err
    assert run_cli(capsys, "init-config", "-o", str(target), "--force")[0] == 0


def test_python_dash_m_and_bad_config_exit_non_zero(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[kill_switch]\ncascade_pause_ratio = 0.5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "market_maker", "limits", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "kill_switch.cascade_pause_ratio" in proc.stderr
    assert "Traceback" not in proc.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "market_maker", "limits", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["binding_limit"] == "leverage"


def test_scenario_choices_are_the_simulator_scenarios():
    from market_maker.backtest import SCENARIOS
    from market_maker.cli import SIM_SCENARIOS

    assert set(SIM_SCENARIOS) == set(SCENARIOS)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["backtest", "--data", "/nonexistent/capture.gz"], "cannot read the capture"),
        (["backtest", "--compare", "glft,nope", "--duration", "5"], "unknown strategy 'nope'"),
        (["run", "--venue", "replay"], "--venue replay needs --data FILE"),
    ],
)
def test_user_errors_are_one_line_not_a_traceback(capsys, argv, message):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_a_file_that_is_not_a_capture_is_refused(capsys, tmp_path):
    import gzip

    path = tmp_path / "notes.gz"
    path.write_bytes(gzip.compress(b"hello\nworld\n"))
    assert main(["backtest", "--data", str(path)]) == 1
    assert "not a Binance (USD-M, COIN-M, spot) or Hyperliquid capture" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["backtest", "--scenario", "nope"], ["backtest", "--paths", "0", "--scenario", "as2008"]],
)
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_environment_overrides_apply_without_a_config_file(capsys, monkeypatch):
    monkeypatch.setenv("MM_RISK__MAX_LEVERAGE", "3")
    assert main(["limits", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["leverage_limit_usd"] == pytest.approx(30_000.0)
    monkeypatch.setenv("MM_RISK__MAX_LEVERAGE", "lots")
    assert main(["limits"]) == 2
    assert "<defaults>: risk.max_leverage" in capsys.readouterr().err


def test_unwritable_output_is_an_error_line(capsys, tmp_path):
    assert main(["init-config", "-o", str(tmp_path / "missing" / "x.toml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("market-maker: error:") and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["backtest", "--compare", ","], "no strategy given"),
        (["backtest", "--strategy", "ladder", "--compare", "glft"], "conflict"),
        (
            ["backtest", "--scenario", "as2008", "--strategy", "ladder", "--paths", "5"],
            "not 'ladder'",
        ),
        (
            ["backtest", "--scenario", "as2008", "--report", "REPORT_DIR", "--paths", "5"],
            "does not apply",
        ),
        (["backtest", "--duration", "600", "--report", "EXISTING_FILE"], "not a directory"),
        (["run", "--data", "x.gz"], "--data only applies"),
    ],
    ids=[
        "empty-compare",
        "strategy-and-compare",
        "as2008-ladder",
        "as2008-report",
        "report-is-a-file",
        "data-without-replay",
    ],
)
def test_options_that_conflict_or_do_not_apply_are_refused_before_anything_runs(
    argv, message, tmp_path, capsys
):
    existing = tmp_path / "file"
    existing.write_text("x")
    argv = [
        str(existing) if a == "EXISTING_FILE" else str(tmp_path / "r") if a == "REPORT_DIR" else a
        for a in argv
    ]
    t0 = time.monotonic()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert time.monotonic() - t0 < 2.0  # refused up front, not after the run


def test_a_bad_metrics_port_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--metrics-port", "99999"])
    assert exit_.value.code == 2 and "1 to 65535" in capsys.readouterr().err


def test_an_empty_config_file_says_it_has_no_settings(tmp_path, capsys):
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing yet\n")
    assert main(["check-config", str(empty)]) == 0
    assert "no settings, using defaults" in capsys.readouterr().out


@pytest.mark.parametrize("venue", ["sim", "replay"])
def test_run_gives_the_simulated_venue_the_configured_request_deadline(
    venue, tmp_path, monkeypatch
):
    """The venue refuses a request that reaches its block later than the engine's own
    ``[orders] request_expiry_s``, not a default of its own."""
    import market_maker.runtime as runtime
    from market_maker.venues.exchange import ExchangeCore

    seen: list[ExchangeCore] = []

    async def no_run(venue_, engine, **_):
        seen.append(venue_.exchange)
        raise SystemExit(0)

    monkeypatch.setattr(runtime, "run_live", no_run)
    cfg = tmp_path / "mm.toml"
    cfg.write_text("[orders]\nrequest_expiry_s = 0.4\n")
    data = Path(__file__).parent.parent / "data" / "hyperliquid" / "btc_20250126.gz"
    argv = ["run", "--venue", venue, "--config", str(cfg)]
    if venue == "replay":
        argv += ["--data", str(data)]
    with pytest.raises(SystemExit):
        main(argv)
    assert seen[0].request_expiry_s == pytest.approx(0.4)


def test_help_texts_say_what_they_write(capsys):
    for argv, wanted in (
        (["calibrate", "--help"], "with 95 % intervals"),
        (["backtest", "--help"], "fills.csv"),
    ):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert wanted in text and "%%" not in text


def test_the_simulator_refuses_an_asset_it_cannot_price(capsys, tmp_path):
    """It used to quote ETH at BTC's 100,000."""
    assert main(["run", "--asset", "ETH", "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert "--asset ETH: the simulator's scenarios are a BTC-like market" in err
    assert "[simulator] mid0" in err


def test_a_record_that_never_connected_is_an_error_and_leaves_no_file(capsys, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    out = tmp_path / "nothing.gz"
    url = f"ws://127.0.0.1:{port}/ws"
    assert main(["record", "--out", str(out), "--ws-url", url, "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"connecting to {url} ...")  # said at once, not after the wait
    assert f"never connected to {url} in 1 s: nothing recorded" in err
    assert not out.exists()
