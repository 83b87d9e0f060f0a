"""The market-data store: events per second of a store replay against the replay cache, and
peak memory as the store grows (``python benches/bench_store.py`` prints both; under
``scripts/bench`` the events-per-second pair runs as benchmarks).

Longer stores are built by time-shifting the BTC capture's store file (344 s each): the
copies follow each other, each a source of its own (a depth gap and a fresh snapshot at every
join), as a week of daily captures would be. Peak RSS is measured in a fresh process per size.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "binance-usdm" / "btcusdt_20240808.gz"
NS_PER_S = 1_000_000_000


def _drain(market: object) -> int:
    n = 0
    peek, pop = market.peek_ns, market.pop  # type: ignore[attr-defined]
    while peek() is not None:
        pop()
        n += 1
    return n


def build_store(root: Path, copies: int) -> int:
    """A store of ``copies`` back-to-back time-shifted copies of the BTC capture; its events."""
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
    out = root / f"x{copies}"
    for i in range(copies):
        shift = i * span
        offset = pa.scalar(shift, pa.int64())
        columns = list(table.columns)
        columns[1] = pc.add(columns[1], offset)
        columns[2] = pc.add(columns[2], offset)
        shifted = pa.Table.from_arrays(columns, schema=table.schema)
        first = meta.first_ns + shift
        day = time.strftime("%Y-%m-%d", time.gmtime(first // NS_PER_S))
        part = msgspec.structs.replace(
            meta,
            day=day,
            source_key=f"{meta.source_key}{i:05d}",
            first_ns=first,
            last_ns=meta.last_ns + shift,
        )
        directory = Path(partition_dir(str(out), meta.venue, meta.symbol, day))
        directory.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(
            directory / f"{part.source_key}.parquet", table.schema, compression="zstd"
        ) as writer:
            writer.write_table(shifted, row_group_size=ROW_GROUP_ROWS)
            writer.add_key_value_metadata({METADATA_KEY: msgspec.json.encode(part)})
    return meta.events * copies


def _peak_rss_mb(code: str) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter; its peak RSS (``VmHWM``: this process's own, where
    ``ru_maxrss`` would carry the forking parent's over the exec) and what it printed."""
    probe = (
        "\nprint(next(int(line.split()[1]) for line in open('/proc/self/status')"
        " if line.startswith('VmHWM')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code + probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.split()
    return int(out[-1]) / 1024, " ".join(out[:-1])


def test_store_market_events(benchmark, tmp_path):
    """Market events per second out of the store (row groups, depth book kept)."""
    from market_maker.store import StoreMarket, import_capture

    import_capture(DATA, str(tmp_path))
    n = benchmark.pedantic(lambda: _drain(StoreMarket(str(tmp_path), "BTCUSDT")), rounds=5)
    benchmark.extra_info["market_events_per_s"] = n / benchmark.stats.stats.median


def main() -> None:
    from market_maker.store import StoreMarket, import_capture
    from market_maker.venues.replay import ReplayMarket

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "one"
        import_capture(DATA, str(store))
        size = sum(p.stat().st_size for p in store.rglob("*.parquet"))
        print(
            f"store {size:,} bytes vs capture {DATA.stat().st_size:,} bytes "
            f"({size / DATA.stat().st_size:.2f}x)"
        )
        _drain(ReplayMarket(DATA, cache=True))  # build the cache
        cached_rates: list[float] = []
        for _ in range(3):  # interleaved: this VM's speed drifts
            t = time.perf_counter()
            n = _drain(ReplayMarket(DATA, cache=True))
            cached = n / (time.perf_counter() - t)
            cached_rates.append(cached)
            t = time.perf_counter()
            m = _drain(StoreMarket(str(store), "BTCUSDT"))
            assert m == n
            streamed = m / (time.perf_counter() - t)
            print(
                f"events/s: cached replay {cached:,.0f}, store {streamed:,.0f} "
                f"({streamed / cached:.2f}x)"
            )
        rss, _ = _peak_rss_mb(
            "from market_maker.venues.replay import ReplayMarket\n"
            f"m = ReplayMarket({str(DATA)!r}, cache=True)\n"
            "while m.peek_ns() is not None: m.pop()"
        )
        print(f"peak RSS, cached replay of the capture (344 s): {rss:,.0f} MB")
        rss, _ = _peak_rss_mb(
            "import market_maker.store, market_maker.venues.replay, pyarrow.parquet"
        )
        print(f"peak RSS, the imports alone: {rss:,.0f} MB")
        cached_median = sorted(cached_rates)[1]
        print(f"load average before the sizes: {os.getloadavg()[0]:.2f}")
        first_rss = None
        for copies, label in ((10, "1 h"), (63, "6 h"), (251, "24 h")):
            if len(sys.argv) > 1 and copies > int(sys.argv[1]):
                break
            events = build_store(Path(tmp) / f"b{copies}", copies)
            path = Path(tmp) / f"b{copies}" / f"x{copies}"
            t = time.perf_counter()
            rss, out = _peak_rss_mb(
                "from market_maker.store import StoreMarket\n"
                f"m = StoreMarket({str(path)!r}, 'BTCUSDT')\n"
                "n = 0\n"
                "while m.peek_ns() is not None:\n    m.pop(); n += 1\n"
                "print(n)"
            )
            wall = time.perf_counter() - t
            assert int(out) == events, (out, events)
            first_rss = first_rss or rss
            print(
                f"{label} ({copies} copies, {events:,} events): peak RSS {rss:,.0f} MB "
                f"({rss / first_rss - 1:+.0%} on 1 h), {events / wall:,.0f} events/s "
                f"(process included; {events / wall / cached_median:.2f}x the cached replay's "
                f"median)"
            )


if __name__ == "__main__":
    main()
