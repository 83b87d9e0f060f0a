import math
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


def test_calibrating_a_simulated_market_recovers_its_informed_flow_and_imbalance():
    """Round trip: a market simulated with known parameters, calibrated like a capture."""
    from market_maker.backtest.calibrate import calibrate_events, simulator_overlay
    from market_maker.venues.sim import SimMarket, SimParams

    params = SimParams(
        duration_s=1_800.0,
        mid0=61_800.0,
        tick_size=0.1,
        sigma=0.00013,
        flow_mu=2.8,
        flow_alpha=24.0,
        flow_beta=54.0,
        sell_flow_mu=3.2,
        sell_flow_alpha=29.0,
        sell_flow_beta=87.0,
        k=0.13,
        informed_share=0.38,
        informed_jump_bps=0.8,
        informed_jump_rate_per_s=0.9,
        informed_lead_s=0.13,
        imbalance_sd=0.7,
        imbalance_halflife_s=0.4,
        imbalance_beta_bps=0.42,
    )
    market = SimMarket(params, seed=1)

    def events():
        while market.peek_ns() is not None:
            yield market.pop()

    c = calibrate_events(
        events(),
        source="sim",
        venue="sim",
        symbol="SIM",
        instrument=params.instrument,
        duration_s=params.duration_s,
    )
    got = simulator_overlay(c)
    # A burst walks its move over the lead, so some walks straddle two 0.1 s returns and the
    # move size reads 10-20 % small (and the share as much too large): the fit's known bias.
    assert got["informed_share"] == pytest.approx(0.38, abs=0.1)
    assert got["informed_jump_bps"] == pytest.approx(0.8, rel=0.2)
    assert got["informed_jump_rate_per_s"] == pytest.approx(0.9, rel=0.15)
    assert got["imbalance_beta_bps"] == pytest.approx(0.42, abs=0.06)
    assert got["imbalance_halflife_s"] == pytest.approx(0.4, rel=0.15)
    assert got["imbalance_sd"] == pytest.approx(0.7, abs=0.05)
    assert got["sigma"] == pytest.approx(0.00013, rel=0.08)
    # The fitted Hawkes holds the bursts too; less the informed share it is the uninformed flow.
    for prefix, side in (("", params.buy_flow), ("sell_", params.sell_flow)):
        mu, alpha, beta = side
        fitted = got[f"{prefix}flow_mu"] / (
            1 - got[f"{prefix}flow_alpha"] / got[f"{prefix}flow_beta"]
        )
        assert fitted == pytest.approx(mu / (1 - alpha / beta), rel=0.15)
    # The trade-signed move the share comes from: 0.38 * 0.8 bps * the walk an order sees.
    expected = params.trade_signed_move_bps(1.0)
    assert expected == pytest.approx(0.172, abs=0.002)
    assert c.flow.trade_signed_bps["1s"] == pytest.approx(expected, abs=0.05)
    lo, hi = c.flow.trade_signed_1s_ci
    assert lo < expected < hi


def test_the_capture_calibrates_to_informed_flow_with_intervals():
    c = calibrate(BINANCE)
    f = c.flow
    # Measured by brute force on the capture (5,436 taker orders): +0.29 bps at 1 s.
    assert f.trade_signed_bps["1s"] == pytest.approx(0.29, abs=0.01)
    assert f.trade_signed_1s_ci[0] > 0.0  # informed, beyond doubt
    assert 0.5 < f.informed_share < 0.9 and 0.5 < f.informed_jump_bps < 1.2
    assert 0.1 < f.informed_lead_s < 0.4
    assert f.imbalance_beta_bps == pytest.approx(0.42, abs=0.01)
    assert f.imbalance_beta_ci[0] > 0.2
    assert f.imbalance_acf_0_1s == pytest.approx(0.84, abs=0.01)
    assert c.buy_share == pytest.approx(0.51, abs=0.01)  # of taker orders (0.45 of prints)


def _hits(events, depth_bps):
    import numpy as np

    from market_maker.backtest.flowfit import quote_hits
    from market_maker.model import BookUpdate, Side, Trade

    bt, bid, ask, tt, tp, ts = [], [], [], [], [], []
    for e in events:
        if isinstance(e, BookUpdate) and e.bids and e.asks:
            bt.append(e.ts_ns / 1e9)
            bid.append(e.bids[0][0])
            ask.append(e.asks[0][0])
        elif isinstance(e, Trade):
            tt.append(e.ts_ns / 1e9)
            tp.append(e.price)
            ts.append(1.0 if e.aggressor is Side.BUY else -1.0)
    a = [np.array(x) for x in (bt, bid, ask, tt, tp, ts)]
    return quote_hits(
        book_t=a[0],
        bid=a[1],
        ask=a[2],
        trade_t=a[3],
        trade_price=a[4],
        trade_sign=a[5],
        depth_bps=depth_bps,
    )


def _drain(source):
    while source.peek_ns() is not None:
        yield source.pop()


@pytest.mark.slow
def test_calm_with_the_capture_overlay_marks_out_like_the_capture(tmp_path):
    """Issue 24's check: calibrate on the BTC capture, backtest calm with the overlay.

    GLFT's own fills: the 1 s markout within 0.5 bps of its markout on the capture itself,
    and its fill rate within a factor of 1.5 of the capture's (per second active). Its 10 s
    markout on the capture rests on a few dozen fills (about 0.7 bps of standard error), so
    the 10 s check is on quotes resting 1 and 1.5 bps from the mid, engine-free, hundreds of
    hits on each market: their rates within a factor of 1.6 and their 1 s and 10 s markouts
    within the two markets' combined 95 % interval."""
    from market_maker.backtest.scenarios import scenario, with_simulator
    from market_maker.venues.replay import ReplayMarket
    from market_maker.venues.sim import SimMarket

    overlay = tmp_path / "btc.toml"
    assert main(["calibrate", "--data", str(BINANCE), "-o", str(overlay)]) == 0
    config = load_config(overlay)
    capture, _ = run_session(config, strategy="glft", data=BINANCE, seed=1)
    sim, _ = run_session(config, strategy="glft", scenario="calm", seed=1, duration_s=1_800)
    real, synthetic = capture.attribution.markout_bps, sim.attribution.markout_bps
    assert abs(synthetic["1s"] - real["1s"]) < 0.5
    assert synthetic["1s"] < 0.0 and synthetic["10s"] < 0.0  # adverse selection, as on the capture
    active_s = capture.time_in_state_s["active"]
    ratio = (sim.fills / sim.time_in_state_s["active"]) / (capture.fills / active_s)
    assert 1 / 1.5 < ratio < 1.5
    assert sim.source == "scenario:calm" and sim.limit_breaches == 0
    params = with_simulator(scenario("calm", duration_s=1_800), config.simulator)
    for depth in (1.0, 1.5):
        there = _hits(_drain(ReplayMarket(BINANCE)), depth)
        here = _hits(_drain(SimMarket(params, seed=1)), depth)
        assert there.hits > 40 and here.hits > 200
        assert 1 / 1.6 < here.hits_per_s / there.hits_per_s < 1.6
        for h in ("1s", "10s"):
            se = math.hypot(there.markout_se_bps[h], here.markout_se_bps[h])
            assert abs(here.markout_bps[h] - there.markout_bps[h]) < 1.96 * se, (depth, h)
            assert there.markout_bps[h] < 0.0 and here.markout_bps[h] < 0.0


@pytest.mark.parametrize("capture", ["binance", "hyperliquid"])
def test_the_overlay_carries_the_captures_feed_latency_into_the_simulated_market(tmp_path, capture):
    """A backtest of the overlay delays market data as the capture's feed did, not by the
    scenario's 5 ms: the same figure a replay of the capture itself uses."""
    from market_maker.backtest.calibrate import overlay_toml
    from market_maker.backtest.session import capture_feed_latency
    from tests.backtest.test_backtest import HYPERLIQUID

    path = BINANCE if capture == "binance" else HYPERLIQUID
    c = calibrate(path)
    feed = capture_feed_latency(path)
    assert c.feed_latency_ms == feed.base_ms and c.feed_latency_source == feed.source
    overlay = tmp_path / "x.toml"
    overlay.write_text(overlay_toml(c))
    config = load_config(overlay)
    assert config.simulator.market_data_latency_ms == feed.base_ms
    result, _ = run_session(config, scenario="calm", seed=1, duration_s=30)
    assert result.latency is not None and result.latency.feed_ms == feed.base_ms
    assert feed.base_ms != 5.0  # the scenario's own figure, which it replaces


def test_a_fit_the_capture_cannot_pin_down_is_marked_and_not_written_unless_forced(
    tmp_path, capsys
):
    """The Hyperliquid capture: 31 orders in 25 s. The Hawkes fit runs to beta = 1e13, A and k
    stay at the estimator's priors, sigma rests on 26 samples (and is under the engine's
    floor): each is marked in the table and left out of the overlay with its reason."""
    from tests.backtest.test_backtest import HYPERLIQUID

    overlay = tmp_path / "hl.toml"
    assert main(["calibrate", "--data", str(HYPERLIQUID), "-o", str(overlay)]) == 0
    table = capsys.readouterr().out
    rows = {line[:15].strip(): line for line in table.splitlines()[2:]}
    assert " no fit " in rows["hawkes beta"] and " no fit " in rows["sigma"]
    assert " prior " in rows["fill A"] and " prior " in rows["fill k"]
    assert " fit " in rows["trade rate"]
    assert "not written to an overlay (--force writes them):" in table
    text = overlay.read_text()
    for key in ("[estimators.hawkes]\n", "a_prior =", "sigma_prior =", "\nsigma =", "\nk ="):
        assert key not in text, key
    assert "# [estimators.intensity] left at its defaults (prior: too few trades" in text
    assert main(["check-config", str(overlay)]) == 0
    # Forced: the priors and the thin sigma are written; a Hawkes no config accepts is not.
    assert main(["calibrate", "--data", str(HYPERLIQUID), "-o", str(overlay), "--force"]) == 0
    text = overlay.read_text()
    assert "a_prior = 1" in text and "sigma_prior = 5.46896e-06" in text
    assert "[estimators.hawkes]\n" not in text
    assert main(["check-config", str(overlay)]) == 0


def test_the_btc_capture_pins_everything_down():
    c = calibrate(BINANCE)
    assert c.unidentified() == {}
    assert c.fill_fitted and c.sigma > c.sigma_floor


def test_a_branching_ratio_at_the_boundary_and_a_sigma_under_the_floor_are_out_of_range():
    import msgspec

    c = calibrate(BINANCE)
    edge = msgspec.structs.replace(c, alpha=0.99 * c.beta, sigma=1e-6)
    bad = edge.unidentified()
    assert bad["hawkes"].startswith("out of range: branching ratio 0.990")
    assert bad["sigma"].startswith("out of range: 1e-06 under the engine's floor")
    from market_maker.backtest.calibrate import overlay_toml

    text = overlay_toml(edge)
    assert "[estimators.hawkes]\n" not in text and "sigma_prior =" not in text
    forced = overlay_toml(edge, force=True)
    assert "[estimators.hawkes]\n" in forced and "sigma_prior = 1e-06" in forced
