"""Long store backtests in segments: the replay from a later time, the warm-up, the exact
merge, the same summary on any number of workers, and sweeps walking forward by day."""

import gzip
import json
import math
import random
from concurrent.futures import Future
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("pyarrow")
pytest.importorskip("fsspec")

from market_maker.backtest import sweep
from market_maker.backtest.analytics import FillLedger, FillRecord
from market_maker.backtest.merge import MarkoutSums, PathStats, _drawdown
from market_maker.backtest.parallel import local_mapper
from market_maker.backtest.segments import (
    parse_length,
    plan_segments,
    run_segmented,
)
from market_maker.backtest.session import StoreRange
from market_maker.cli import main
from market_maker.config import AppConfig
from market_maker.errors import MarketMakerError
from market_maker.store import StoreMarket, import_capture

ROOT = Path(__file__).resolve().parents[2]
BINANCE = ROOT / "data" / "binance-usdm" / "btcusdt_20240808.gz"
HYPERLIQUID = ROOT / "data" / "hyperliquid" / "btc_20250126.gz"
NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
SEGMENT_S = 60.0
WARMUP_S = 20.0


@pytest.fixture(autouse=True)
def _decode_the_text(monkeypatch):
    monkeypatch.setenv("MM_CACHE_DIR", "off")


def _capture(src: Path, out: Path, *, lines: int | None = None, shift_ns: int = 0) -> Path:
    """The first ``lines`` of a capture, every receive stamp moved by ``shift_ns``."""
    with gzip.open(src, "rb") as fh, gzip.open(out, "wb") as dst:
        for i, line in enumerate(fh):
            if lines is not None and i >= lines:
                break
            head, _, body = line.partition(b" ")
            dst.write(b"%d %s" % (int(head) + shift_ns, body))
    return out


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """125 s of the BTC capture (23:54:15 to 23:56:19 UTC): three 60 s segments."""
    tmp = tmp_path_factory.mktemp("segments")
    import_capture(_capture(BINANCE, tmp / "btc.gz", lines=30_000), str(tmp / "store"))
    return StoreRange(store=str(tmp / "store"), symbol="BTCUSDT")


def _serial(fn, calls, keys, done):
    """A mapper that runs every call here, in order."""
    for i, args in enumerate(calls):
        future: Future = Future()
        future.set_result(fn(*args))
        done(i, future)


@pytest.fixture(scope="module")
def segmented(small_store):
    return run_segmented(AppConfig(), small_store, _serial, length_s=SEGMENT_S, warmup_s=WARMUP_S)


def _drain_from(market, from_ns):
    while (t := market.peek_ns()) is not None and t < from_ns:
        market.pop()
    return market


def test_store_replay_from_a_time_when_sources_have_a_gap_then_events_and_depth_book_as_if_read_through(
    tmp_path,
):
    store = str(tmp_path / "store")
    a = _capture(BINANCE, tmp_path / "a.gz", lines=20_000)
    b = _capture(BINANCE, tmp_path / "b.gz", lines=20_000, shift_ns=400 * NS_PER_S)
    import_capture(a, store)
    import_capture(b, store)
    first = StoreMarket(store, "BTCUSDT").peek_ns()
    assert first is not None
    # In a, at a's end, in the gap, in b, after everything; 999-row batches split the books.
    for offset_s in (0, 37.5, 83, 200, 430.2, 2_000):
        at = first + int(offset_s * NS_PER_S)
        read = _drain_from(StoreMarket(store, "BTCUSDT", batch_rows=999), at)
        skipped = StoreMarket(store, "BTCUSDT", batch_rows=999, from_ns=at)
        assert skipped.peek_ns() == read.peek_ns(), offset_s
        assert (skipped._bids, skipped._asks) == (read._bids, read._asks), offset_s
        n = 0
        while read.peek_ns() is not None:
            assert skipped.peek_ns() == read.peek_ns(), (offset_s, n)
            assert skipped.pop() == read.pop(), (offset_s, n)
            if n % 251 == 0:
                assert (skipped._bids, skipped._asks) == (read._bids, read._asks), (offset_s, n)
            n += 1
        assert skipped.peek_ns() is None


def test_store_replay_when_warm_up_starts_before_a_gap_then_the_next_source_resyncs_alone(
    tmp_path,
):
    store = str(tmp_path / "store")
    a = _capture(BINANCE, tmp_path / "a.gz", lines=20_000)
    b = _capture(BINANCE, tmp_path / "b.gz", lines=20_000, shift_ns=400 * NS_PER_S)
    import_capture(a, store)
    import_capture(b, str(tmp_path / "b-only"))
    import_capture(b, store)
    b_first = StoreMarket(str(tmp_path / "b-only"), "BTCUSDT").peek_ns()
    assert b_first is not None
    # The warm-up begins in a's last seconds; across the gap nothing of a's depth is left.
    market = _drain_from(StoreMarket(store, "BTCUSDT", from_ns=b_first - 330 * NS_PER_S), b_first)
    alone = StoreMarket(str(tmp_path / "b-only"), "BTCUSDT")
    assert market.peek_ns() == alone.peek_ns() == b_first
    assert (market._bids, market._asks) == (alone._bids, alone._asks)
    assert market.stats.depth_gaps >= 1
    n = 0
    while alone.peek_ns() is not None:
        assert market.peek_ns() == alone.peek_ns()
        assert market.pop() == alone.pop()
        n += 1
    assert n > 10_000


def test_segments_when_planned_then_utc_aligned_with_data_and_warm_up_before_each():
    t0 = 1_723_161_255 * NS_PER_S  # 2024-08-08 23:54:15 UTC
    segments = plan_segments([(t0, t0 + 125 * NS_PER_S)], length_s=60.0, warmup_s=20.0)
    assert [s.label for s in segments] == [
        "2024-08-08T23:54:00",
        "2024-08-08T23:55:00",
        "2024-08-08T23:56:00",
    ]
    assert all(s.end_ns - s.start_ns == 60 * NS_PER_S for s in segments)
    assert all(s.start_ns - s.warmup_from_ns == 20 * NS_PER_S for s in segments)
    days = plan_segments(
        [(t0, t0 + 1), (t0 + 2 * NS_PER_DAY, t0 + 2 * NS_PER_DAY)], length_s=86_400, warmup_s=0
    )
    assert [s.label for s in days] == ["2024-08-08", "2024-08-10"]  # no data on the 9th
    assert parse_length("day") == 86_400 and parse_length("6h") == 21_600
    for bad in ("7s", "2d", "7m", "x"):
        with pytest.raises(MarketMakerError, match="--segments"):
            parse_length(bad)


def test_segments_when_run_then_every_event_counted_once_and_nothing_traded_in_warm_up(
    small_store, segmented
):
    rows = segmented.segments
    assert len(rows) == 3
    market = small_store.open()
    total = 0
    while market.peek_ns() is not None:
        market.pop()
        total += 1
    # The counted parts partition the range: each event is in exactly one segment.
    assert sum(o.result.market_events for o in rows) == total
    for o in rows:
        assert o.result.fills == len(o.fills)
        assert all(o.segment.start_ns <= f.t_ns < o.segment.end_ns for f in o.fills)
        assert o.result.start_ns >= o.segment.start_ns
    assert sum(len(o.fills) for o in rows) >= 10  # enough fills for the merge to be tested


def test_segments_merge_when_summed_then_equals_the_brute_force_pooled_over_every_fill(segmented):
    merged = segmented.summary
    fills = [f for o in segmented.segments for f in o.fills]
    parts = [o.result for o in segmented.segments]
    assert merged.fills == len(fills) == sum(p.fills for p in parts)
    assert merged.pnl_usd == pytest.approx(sum(p.pnl_usd for p in parts), abs=1e-9)
    maker = sum(f.price * f.size for f in fills if not f.taker)
    assert merged.maker_volume_usd == pytest.approx(maker, rel=1e-12)
    assert merged.fees_usd == pytest.approx(sum(f.fee for f in fills), rel=1e-12)
    a = merged.attribution
    assert a is not None
    # The parts add up to the PnL, as in a single run.
    assert a.spread_capture_usd + a.inventory_usd - a.fees_usd == pytest.approx(
        merged.pnl_usd, abs=1e-6
    )
    pooled = _pooled(fills)
    assert a.markout_fills == pooled.markout_fills
    assert pooled.markout_fills["1s"] > 10
    for k, mean in pooled.markout_bps.items():
        if mean is None:  # 60 s segments: no fill is followed by 60 s of its own segment
            assert a.markout_bps[k] is None and a.markout_se_bps[k] is None
            continue
        assert a.markout_bps[k] == pytest.approx(mean, rel=1e-9, abs=1e-12)
        assert a.markout_se_bps[k] == pytest.approx(pooled.markout_se_bps[k], rel=1e-9)
    assert merged.duration_s == pytest.approx(sum(p.duration_s for p in parts))


def _pooled(fills):
    ledger = FillLedger()
    ledger.fills = list(fills)
    return ledger.attribution(math.nan)


def _fill(rng, t):
    markouts = [None if rng.random() < 0.2 else rng.gauss(0.0, 3.0) for _ in range(3)]
    return FillRecord(
        t_ns=t,
        buy=rng.random() < 0.5,
        price=60_000 + rng.uniform(-500, 500),
        size=rng.choice((0.001, 0.01, 0.2)),
        fee=0.1,
        mid=60_000.0,
        taker=False,
        markouts_bps=markouts,
    )


@given(st.integers(0, 10_000), st.lists(st.integers(0, 30), min_size=1, max_size=6))
def test_markout_sums_when_combined_then_pooled_means_and_standard_errors(seed, sizes):
    rng = random.Random(seed)
    groups = [[_fill(rng, i) for i in range(n)] for n in sizes]
    pooled = _pooled([f for g in groups for f in g])
    for h, label in enumerate(("1s", "10s", "60s")):
        total = MarkoutSums()
        for g in groups:
            total = total.combine(MarkoutSums.of(g, h))
        assert total.n == pooled.markout_fills[label]
        if pooled.markout_bps[label] is None:
            assert total.n == 0
            continue
        assert total.mean == pytest.approx(pooled.markout_bps[label], rel=1e-9, abs=1e-12)
        if pooled.markout_se_bps[label] is None:
            assert total.se is None
        else:
            assert total.se == pytest.approx(pooled.markout_se_bps[label], rel=1e-9, abs=1e-12)


@given(
    st.lists(
        st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=40),
        min_size=1,
        max_size=5,
    )
)
def test_drawdown_when_paths_laid_end_to_end_then_that_of_the_whole_curve(steps):
    paths = []
    for s in steps:
        path, v = [], 0.0
        for x in s:
            v += x
            path.append(v)
        paths.append(path)
    curve, offset = [], 0.0
    for p in paths:
        curve.extend(offset + v for v in p)
        offset += p[-1]
    peak, worst = -math.inf, 0.0
    for v in curve:
        peak = max(peak, v)
        worst = max(worst, peak - v)
    merged = _drawdown([(p[-1], PathStats.of(p)) for p in paths])
    assert merged == pytest.approx(worst, abs=1e-9)


def test_segments_when_one_or_two_worker_processes_then_the_same_merged_summary(
    small_store, segmented
):
    one = run_segmented(
        AppConfig(), small_store, local_mapper(1), length_s=SEGMENT_S, warmup_s=WARMUP_S
    )
    two = run_segmented(
        AppConfig(), small_store, local_mapper(2), length_s=SEGMENT_S, warmup_s=WARMUP_S
    )
    assert one.summary.timing_free() == two.summary.timing_free()
    assert one.summary.timing_free() == segmented.summary.timing_free()  # and in-process
    assert [o.fills for o in one.segments] == [o.fills for o in two.segments]


def test_segments_when_dask_cluster_on_localhost_then_the_same_merged_summary(
    small_store, segmented
):
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    from market_maker.backtest.parallel import dask_mapper

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        remote = run_segmented(
            AppConfig(),
            small_store,
            dask_mapper(cluster.scheduler_address),
            length_s=SEGMENT_S,
            warmup_s=WARMUP_S,
        )
    assert remote.summary.timing_free() == segmented.summary.timing_free()


def test_backtest_cli_when_segments_then_merged_json_with_a_row_each_and_a_report(
    small_store, segmented, tmp_path, capsys
):
    args = ["backtest", "--store", small_store.store, "--symbol", "BTCUSDT"]
    report = tmp_path / "report"
    code = main([*args, "--segments", "1m", "--warmup", "20", "--workers", "1", "--json",
                 "--report", str(report)])  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["segment"] for r in data["segments"]] == [o.segment.label for o in segmented.segments]
    assert data["fills"] == segmented.summary.fills
    assert data["pnl_usd"] == pytest.approx(segmented.summary.pnl_usd, abs=1e-9)
    assert any("each starts flat" in n for n in data["notes"])
    assert sorted(p.name for p in report.iterdir()) == ["fills.csv", "segments.csv", "summary.json"]
    assert len((report / "fills.csv").read_text().splitlines()) == 1 + data["fills"]
    assert len((report / "segments.csv").read_text().splitlines()) == 1 + 3
    for extra, message in (
        (["--segments", "day", "--compare", "glft,ladder"], "--compare does not apply"),
        (["--segments", "day", "--duration", "60"], "--duration does not apply"),
        (["--workers", "2", "--cluster", "tcp://127.0.0.1:1"], "conflict"),
        (["--segments", "45s"], "divides a day"),
    ):
        assert main([*args, *extra]) != 0
        assert message in capsys.readouterr().err
    assert main(["backtest", "--scenario", "calm", "--segments", "day"]) != 0
    assert "--segments only applies with --store" in capsys.readouterr().err


@pytest.fixture(scope="module")
def three_days(tmp_path_factory):
    """The Hyperliquid capture on 2025-01-26, -27 and -28 (a source a day)."""
    tmp = tmp_path_factory.mktemp("days")
    for i in range(3):
        capture = _capture(HYPERLIQUID, tmp / f"hl{i}.gz", shift_ns=i * NS_PER_DAY)
        import_capture(capture, str(tmp / "store"))
    return tmp / "store"


def _grid(tmp_path, store, **extra):
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items())
    path = tmp_path / "grid.toml"
    path.write_text(
        "[sweep]\nscenarios = []\nseeds = 1\nheld_back_seeds = 0\n"
        f'store = "{store}"\nsymbol = "BTC"\nwarmup_s = 60.0\n{lines}'
        '[params]\n"strategy.spread_multiplier" = [1.0, 2.0]\n'
    )
    return path


def test_sweep_when_store_then_tunes_on_the_earlier_days_and_scores_the_held_back_ones(
    tmp_path, three_days
):
    plan = sweep.build_plan(_grid(tmp_path, three_days))
    assert plan.store_days == ["2025-01-26", "2025-01-27", "2025-01-28"]
    tune = sweep._tasks(plan, plan.points, "tune")
    test = sweep._tasks(plan, plan.points, "test")
    assert {t.day for t in tune} == {"2025-01-26", "2025-01-27"}
    assert {t.day for t in test} == {"2025-01-28"}
    assert sweep.runs_per_point(plan) == 2
    two = sweep.build_plan(_grid(tmp_path, three_days, held_back_days=2))
    assert {t.day for t in sweep._tasks(two, two.points, "test")} == {"2025-01-27", "2025-01-28"}
    ranged = sweep.build_plan(_grid(tmp_path, three_days, to="2025-01-27"))
    assert ranged.store_days == ["2025-01-26", "2025-01-27"]

    def serial(base, tasks, done):
        for t in tasks:
            done(sweep.run_task(base, t))

    result = sweep.run_sweep(plan, tmp_path / "out", serial)
    assert not result.failures
    assert result.runs == 3 * 2 + 3 * 1  # every point on two days, the best and base on one
    runs = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    held = {r["source"] for r in runs if r["split"] == "test"}
    assert held == {"store:BTC:2025-01-28"}
    assert all(r["duration_s"] > 0 for r in runs)
    with pytest.raises(sweep.GridError, match="none to tune on"):
        sweep.build_plan(_grid(tmp_path, three_days, held_back_days=3))
