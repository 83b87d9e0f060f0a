import gzip
import json

import msgspec
import pytest

from market_maker.backtest import SCENARIOS, engine_config
from market_maker.backtest.runner import run_backtest
from market_maker.backtest.scenarios import scenario as scenario_params
from market_maker.backtest.session import run_session
from market_maker.cli import main
from market_maker.config import AppConfig, load_config, with_strategy
from market_maker.engine import QuoteEngine
from market_maker.model import Side
from market_maker.venues import Faults
from market_maker.venues.replay import ReplayMarket
from market_maker.venues.sim import simulated_exchange
from tests.test_config import ROOT

BINANCE = ROOT / "data" / "binance-usdm" / "btcusdt_20240808.gz"
HYPERLIQUID = ROOT / "data" / "hyperliquid" / "btc_20250126.gz"


SHIPPED = sorted((ROOT / "config").glob("*.toml"))
DEFAULT = ROOT / "config" / "default.toml"


def binding(config: AppConfig, cap: float = 0.02) -> AppConfig:
    """``config`` with a position cap of two default orders, so the limit binds within minutes
    (unless the config's own limit is tighter already)."""
    if config.risk.max_position_cap is not None and config.risk.max_position_cap <= cap:
        return config
    risk = msgspec.structs.replace(config.risk, max_position_cap=cap)
    return msgspec.structs.replace(config, risk=risk)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("strategy", ["glft", "ladder"])
def test_every_shipped_config_on_every_scenario_holds_the_limit_while_it_binds(
    path, name, strategy
):
    """Checked against the simulated venue's own position at every event, with fills on their
    own stream lagging the acks (the ordinary case live). Utilisation near 100 % is what makes
    "0 breaches" mean something: before settled fills, conservative.toml breached 9,108 times."""
    config = binding(load_config(path))
    result, _ = run_session(config, strategy=strategy, scenario=name, seed=7, duration_s=420)
    assert result.max_limit_utilisation >= 0.8, result.max_limit_utilisation
    assert result.limit_breaches == 0
    assert result.fills > 0
    assert result.quote_cycles == result.events


def test_conservative_config_as_shipped_holds_its_limit_in_a_calm_quarter_hour():
    """The new user's first try from the issue: 9,108 breaches and a halt, before."""
    config = load_config(ROOT / "config" / "conservative.toml")
    result, _ = run_session(config, scenario="calm", seed=1, duration_s=900)
    assert result.max_limit_utilisation >= 0.95
    assert result.limit_breaches == 0
    assert all(state != "halted" for _, state, _ in result.state_changes)


def test_cascade_drives_the_kill_switch_to_pause_or_halt():
    result, _ = run_session(AppConfig(), scenario="cascade", seed=3, duration_s=420)
    states = [(t, s, reasons) for t, s, reasons in result.state_changes]
    hit = [(t, s, r) for t, s, r in states if s in ("paused", "halted") and t >= 300]
    assert hit, states
    assert any("cascade" in reason for _, _, reasons in hit for reason in reasons)
    assert result.limit_breaches == 0


def test_same_seed_gives_identical_results():
    a, _ = run_session(AppConfig(), scenario="volatile", seed=11, duration_s=300)
    b, _ = run_session(AppConfig(), scenario="volatile", seed=11, duration_s=300)
    c, _ = run_session(AppConfig(), scenario="volatile", seed=12, duration_s=300)
    assert json.dumps(a.timing_free(), sort_keys=True) == json.dumps(
        b.timing_free(), sort_keys=True
    )
    assert a.timing_free() != c.timing_free()


def test_strategies_see_the_same_market_on_the_same_seed():
    glft, _ = run_session(AppConfig(), strategy="glft", scenario="calm", seed=5, duration_s=200)
    sym, _ = run_session(AppConfig(), strategy="symmetric", scenario="calm", seed=5, duration_s=200)
    assert glft.market_events == sym.market_events


def test_binance_replay_end_to_end_with_fills_and_no_breach():
    result, _ = run_session(AppConfig(), data=BINANCE, seed=1)
    assert result.market_events == 66_089 + 21_313
    assert result.fills > 0
    assert result.limit_breaches == 0
    assert result.duration_s == pytest.approx(345, abs=5)


def test_hyperliquid_replay_runs():
    result, _ = run_session(AppConfig(), data=HYPERLIQUID, seed=1)
    assert result.market_events == 46 + 64
    assert result.limit_breaches == 0


def test_malformed_and_truncated_lines_are_skipped_and_counted(tmp_path):
    with gzip.open(BINANCE, "rb") as fh:
        good = fh.read().split(b"\n")[:3000]
    bad = [b"garbage", b"123 {not json", b"456", b'789 {"stream":"x@trade"}']
    lines = [*good[:100], *bad, *good[100:]]
    raw = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "broken.gz"
    path.write_bytes(raw[: len(raw) - 200])  # truncated gzip stream
    market = ReplayMarket(path)
    n = 0
    while market.peek_ns() is not None:
        market.pop()
        n += 1
    assert market.stats.bad_lines + market.stats.bad_timestamps >= 4
    assert n > 2_000


def test_backtest_cli_json_has_the_documented_fields(capsys):
    assert main(["backtest", "--scenario", "calm", "--duration", "120", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in (
        "pnl_usd",
        "sharpe",
        "max_drawdown_usd",
        "fills",
        "maker_volume_usd",
        "fees_usd",
        "final_position",
        "max_abs_position",
        "max_limit_utilisation",
        "limit_breaches",
        "time_reduce_only_s",
        "kill_switch_events",
        "quote_cycles",
        "events",
        "cycle_us_p50",
        "cycle_us_p99",
        "events_per_s",
        "wall_s",
    ):
        assert key in report


def test_backtest_cli_compare_and_report(capsys, tmp_path):
    code = main(
        [
            "backtest",
            "--scenario",
            "calm",
            "--duration",
            "60",
            "--compare",
            "glft,symmetric",
            "--json",
            "--report",
            str(tmp_path),
        ]
    )
    assert code == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["strategy"] for r in reports] == ["glft", "symmetric"]
    png = tmp_path / "glft" / "backtest.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        json.loads((tmp_path / "symmetric" / "summary.json").read_text())["strategy"] == "symmetric"
    )
    assert (tmp_path / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "compare.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in table[1:]] == ["glft", "symmetric"]
    assert float(table[1].split(",")[1]) == pytest.approx(reports[0]["pnl_usd"], abs=1e-5)


def test_compare_prints_one_table_within_80_columns(capsys):
    code = main(["backtest", "--duration", "120", "--compare", "glft,ladder,symmetric"])
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Compare  scenario:calm")
    assert [line.split()[0] for line in out[2:5]] == ["glft", "ladder", "symmetric"]
    assert max(len(line) for line in out) <= 80


@pytest.mark.parametrize("strategy", ["glft", "ladder"])
@pytest.mark.parametrize(
    "faults",
    [
        Faults(duplicate=0.05, drop_ack=0.02, reorder_ms=10.0),
        Faults(duplicate=0.1, drop_ack=0.05, drop_fill=0.05, reorder_ms=20.0),
    ],
    ids=["answers-lost-duplicated-reordered", "fills-lost-too"],
)
def test_a_venue_that_loses_duplicates_and_reorders_messages_never_breaks_the_limit(
    strategy, faults
):
    params = scenario_params("volatile", duration_s=600)
    config = engine_config(params, with_strategy(binding(load_config(DEFAULT)), strategy))
    exchange = simulated_exchange(params, 3)
    exchange.faults = faults
    engine = QuoteEngine(config, params.instrument)
    result, _ = run_backtest(exchange, engine, source="faults", seed=3)
    assert exchange.stats.dropped > 0 and exchange.stats.duplicated > 0
    assert result.max_limit_utilisation >= 0.8
    assert result.limit_breaches == 0
    counters = result.engine_counters
    assert counters["snapshots"] > 0 and counters["lost_requests"] > 0
    if faults.drop_fill == 0.0:
        assert engine.orders.position_lots == exchange.position_lots


CORRUPTIONS = {
    "trade price nan": (b'"p":"', b'"p":"nan', b"@trade"),
    "trade price inf": (b'"p":"', b'"p":"inf', b"@trade"),
    "trade price 1e400": (b'"p":"', b'"p":"1e400', b"@trade"),
    "ticker bid 1e400": (b'"b":"', b'"b":"1e400', b"@bookTicker"),
    "ticker bid nan": (b'"b":"', b'"b":"nan', b"@bookTicker"),
    "depth price nan": (b'"b":[["', b'"b":[["nan', b"@depth"),
    "invalid utf-8": (b'"p":"', b'"p":"\xff\xfe', b"@trade"),
    "stamp with a leading 9": (b"", b"9", b"@trade"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_corrupted_capture_line_is_skipped_and_counted_never_a_crash_or_a_hang(name, tmp_path):
    old, new, stream = CORRUPTIONS[name]
    with gzip.open(BINANCE, "rb") as fh:
        lines = fh.read().split(b"\n")[:6_000]
    hit = next(i for i, line in enumerate(lines) if stream in line and i > 100)
    line = lines[hit]
    if old:
        head, _, body = line.partition(b" ")
        line = head + b" " + body.replace(old, new, 1)
    else:
        line = new + line
    lines[hit] = line
    path = tmp_path / "corrupt.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    market = ReplayMarket(path)
    events = 0
    while market.peek_ns() is not None:
        market.pop()
        events += 1
    assert market.stats.bad_lines + market.stats.bad_timestamps >= 1
    result, _ = run_session(AppConfig(), data=path, seed=1)
    assert result.market_events >= events - 1 and result.limit_breaches == 0


@pytest.mark.slow
def test_a_capture_with_five_percent_of_its_lines_swapped_keeps_its_market(tmp_path):
    """From the issue: 5 % of lines swapped in pairs left 14 of 87,401 market events."""
    import random

    with gzip.open(BINANCE, "rb") as fh:
        lines = fh.read().rstrip(b"\n").split(b"\n")
    rng = random.Random(1)
    for _ in range(len(lines) * 5 // 200):
        i = rng.randrange(len(lines) - 1)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    path = tmp_path / "swapped.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    result, _ = run_session(AppConfig(), data=path, seed=1)
    assert result.market_events >= 0.9 * (66_089 + 21_313)
    assert result.capture is not None and result.capture["reordered"] > 1_000
    assert result.limit_breaches == 0


def test_cycle_latency_percentiles_in_constant_memory_within_two_percent():
    import numpy as np

    from market_maker.backtest.runner import LatencyHistogram

    rng = np.random.default_rng(3)
    samples = (rng.lognormal(mean=10.0, sigma=0.8, size=200_000)).astype(int)  # ~20 us
    hist = LatencyHistogram()
    size = len(hist.counts)
    for ns in samples:
        hist.observe_ns(int(ns))
    assert len(hist.counts) == size  # nothing grows with the number of events
    for q in (0.5, 0.99):
        exact = float(np.quantile(samples, q)) / 1000.0
        assert abs(hist.percentile_us(q) / exact - 1.0) < 0.02


@pytest.mark.slow
def test_depth_diffs_before_a_snapshot_are_bounded(tmp_path):
    from market_maker.venues.replay import _MAX_PENDING_DIFFS

    with gzip.open(BINANCE, "rb") as fh:
        lines = [line for line in fh.read().split(b"\n") if b"@depth" in line]
    path = tmp_path / "diffs-only.gz"
    later = []  # the same diffs again, 400 s later: 13,102 diffs and never a snapshot
    for line in lines:
        head, _, body = line.partition(b" ")
        later.append(str(int(head) + 400 * 10**9).encode() + b" " + body)
    path.write_bytes(gzip.compress(b"\n".join(lines + later)))
    market = ReplayMarket(path)
    while market.peek_ns() is not None:
        market.pop()
    assert market.stats.depth_diffs > _MAX_PENDING_DIFFS
    assert len(market._pending_diffs) < _MAX_PENDING_DIFFS
    # The book was rebuilt from the diffs' absolute levels instead of waiting for ever.
    assert market.stats.depth_resyncs >= 1
    assert len(market.depth(Side.BUY)) > 50 and len(market.depth(Side.SELL)) > 50


def _depth_at_end(path):
    market = ReplayMarket(path)
    while market.peek_ns() is not None:
        market.pop()
    return market


@pytest.mark.slow
def test_a_depth_gap_re_syncs_from_later_diffs_instead_of_keeping_a_wrong_book(tmp_path):
    """Drop diffs mid-capture: the book that follows must agree with the unbroken replay's."""
    with gzip.open(BINANCE, "rb") as fh:
        lines = fh.read().rstrip(b"\n").split(b"\n")
    depth = [i for i, line in enumerate(lines) if b"@depth" in line]
    lost = set(depth[len(depth) // 2 : len(depth) // 2 + 40])  # 40 diffs lost in the middle
    path = tmp_path / "gap.gz"
    path.write_bytes(gzip.compress(b"\n".join(ln for i, ln in enumerate(lines) if i not in lost)))
    whole, gapped = _depth_at_end(BINANCE), _depth_at_end(path)
    assert gapped.stats.depth_gaps == 1 and gapped.stats.depth_resyncs == 1
    for side in (Side.BUY, Side.SELL):
        mine, truth = gapped.depth(side), whole.depth(side)
        wrong = {t for t, q in mine.items() if truth.get(t) != q}
        assert not wrong, f"{len(wrong)} stale levels survived the gap"
        near = sorted(truth, reverse=side is Side.BUY)[:20]
        assert all(mine.get(t) == truth[t] for t in near)


@pytest.mark.slow
def test_ctrl_c_during_a_backtest_prints_a_partial_summary_and_exits_130(tmp_path):
    """Issue: Ctrl-C printed a KeyboardInterrupt traceback and lost the results."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "market_maker",
            "backtest",
            "--scenario",
            "calm",
            "--duration",
            "86400",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted: partial" in out and "PnL" in out


def test_sharpe_needs_an_hour_of_minutes_and_says_how_it_is_annualised():
    import itertools
    import math
    import random

    from market_maker.backtest.runner import _sharpe

    rng = random.Random(2)
    equity = [0.0]
    for _ in range(3 * 3600):  # three hours of one-second equity
        equity.append(equity[-1] + rng.gauss(0.001, 0.05))
    assert _sharpe(equity[: 59 * 60 + 1]) is None  # 59 one-minute changes: not enough
    full = _sharpe(equity)
    minutes = equity[::60]
    changes = [b - a for a, b in itertools.pairwise(minutes)]
    mean = sum(changes) / len(changes)
    sd = math.sqrt(sum((c - mean) ** 2 for c in changes) / (len(changes) - 1))
    assert full is not None and abs(full - mean / sd * math.sqrt(525_600)) < 1e-9


@pytest.mark.slow
def test_a_replay_reports_its_progress_through_the_file_to_the_end():
    """Issue: replay backtests showed a blank screen for seconds (no progress at all)."""
    seen: list[float] = []
    run_session(AppConfig(), data=BINANCE, seed=1, progress=seen.append)
    assert len(seen) >= 20 and seen == sorted(seen)
    assert seen[0] < 0.05 and seen[1] < 0.1 and seen[-1] == 1.0


@pytest.mark.parametrize(("strategy", "two_sided"), [("glft", 0.9), ("ladder", 0.95)])
def test_in_calm_both_sides_rest_at_the_venue_and_few_cycles_wait_for_the_budget(
    strategy, two_sided
):
    """Measured from the simulated exchange's own book, over the time the engine is ACTIVE
    and wants both sides. Before the budget went where it matters, calm 120 s (then without
    informed flow): GLFT 34 %, the ladder 6 % (the bid took every scarce token), 68 % of cycles
    held. Now, on the informed calm over 300 s: GLFT 99.5 % (its backup order rests while a
    filled quote's replacement travels), the ladder 100 %, no cycle held."""
    result, _ = run_session(AppConfig(), strategy=strategy, scenario="calm", seed=1, duration_s=300)
    assert result.resting_two_sided_share is not None
    assert result.resting_two_sided_share >= two_sided, result.resting_two_sided_share
    assert result.held_cycle_share < 0.2, result.held_cycle_share
    assert result.fills > 20
    # 31-39 requests a fill here (33-37 over an hour: a fill is about 900 USD traded, so one
    # request per 25 USD, far inside Hyperliquid's one per USDC); 46 for the ladder on the
    # uninformed calm before, when it filled three times as often.
    assert result.requests_per_fill is not None and result.requests_per_fill < 50.0
    assert result.time_resting_both_s <= result.time_active_wanting_both_s <= result.duration_s
