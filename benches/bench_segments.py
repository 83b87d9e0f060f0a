"""A 7-day store backtested in day segments on a Dask cluster on 127.0.0.1: one worker against
two (target: the same merged summary, and >= 1.7x faster on 2 cores).

``python benches/bench_segments.py [COPIES]`` builds the store from the BTC capture's store
file: each of 7 UTC days holds ``COPIES`` (default 3) back-to-back time-shifted copies of the
344 s capture from midnight on, each a source of its own (a depth gap and a fresh snapshot at
every join). Each day runs as a segment with a 600 s warm-up (the previous day holds nothing
then: the warm-up reads no events, the day starts cold). The cluster is started before the
clock starts (``LocalCluster``, one thread a worker, processes), so the timing is the
backtest's; the load average of the machine is printed beside it (the VM is shared).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "binance-usdm" / "btcusdt_20240808.gz"
NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
DAYS = 7
FIRST_DAY_NS = 1_735_689_600 * NS_PER_S  # 2025-01-01 00:00 UTC


def build_week(root: Path, copies: int) -> tuple[str, int]:
    """The store (its path) and how many events it holds."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from market_maker.store import import_capture
    from market_maker.store.schema import METADATA_KEY
    from market_maker.store.writer import ROW_GROUP_ROWS, partition_dir

    base = root / "base"
    (meta,) = import_capture(DATA, str(base))
    (file,) = base.rglob("*.parquet")
    table = pq.read_table(file)
    span = meta.last_ns - meta.first_ns + NS_PER_S
    out = root / "week"
    for d in range(DAYS):
        for i in range(copies):
            first = FIRST_DAY_NS + d * NS_PER_DAY + NS_PER_S + i * span
            shift = first - meta.first_ns
            offset = pa.scalar(shift, pa.int64())
            columns = list(table.columns)
            columns[1] = pc.add(columns[1], offset)
            columns[2] = pc.add(columns[2], offset)
            day = time.strftime("%Y-%m-%d", time.gmtime(first // NS_PER_S))
            part = msgspec.structs.replace(
                meta,
                day=day,
                source_key=f"{meta.source_key}{d:02d}{i:03d}",
                first_ns=first,
                last_ns=meta.last_ns + shift,
            )
            directory = Path(partition_dir(str(out), meta.venue, meta.symbol, day))
            directory.mkdir(parents=True, exist_ok=True)
            with pq.ParquetWriter(
                directory / f"{part.source_key}.parquet", table.schema, compression="zstd"
            ) as writer:
                writer.write_table(
                    pa.Table.from_arrays(columns, schema=table.schema),
                    row_group_size=ROW_GROUP_ROWS,
                )
                writer.add_key_value_metadata({METADATA_KEY: msgspec.json.encode(part)})
    return str(out), meta.events * copies * DAYS


def main() -> None:
    from distributed import LocalCluster

    from market_maker.backtest.parallel import dask_mapper
    from market_maker.backtest.segments import run_segmented
    from market_maker.backtest.session import StoreRange
    from market_maker.config import AppConfig

    copies = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    os.environ.setdefault("MM_CACHE_DIR", "off")
    with tempfile.TemporaryDirectory() as tmp:
        path, events = build_week(Path(tmp), copies)
        store = StoreRange(store=path, symbol="BTCUSDT")
        print(f"store: {DAYS} days x {copies} copies of the capture, {events:,} events")
        runs = {}
        for workers in (1, 2):
            with LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster:
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                run = run_segmented(
                    AppConfig(), store, dask_mapper(cluster.scheduler_address), warmup_s=600.0
                )
                wall = time.perf_counter() - t0
            runs[workers] = (run, wall)
            s = run.summary
            print(
                f"{workers} worker{'s' if workers > 1 else ''}: {wall:,.1f} s "
                f"(load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end); "
                f"{len(run.segments)} segments, PnL {s.pnl_usd:,.2f} USD, {s.fills:,} fills, "
                f"{s.market_events:,} market events"
            )
        (one, t1), (two, t2) = runs[1], runs[2]
        same = one.summary.timing_free() == two.summary.timing_free()
        print(f"same merged summary: {same}; speed-up {t1 / t2:.2f}x")
        assert same


if __name__ == "__main__":
    main()
