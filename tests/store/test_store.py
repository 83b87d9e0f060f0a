"""The market-data store: import from captures, streaming replay, ``store ls``, and backtests
that give the same fills and PnL as the capture's own replay."""

import datetime as dt
import gzip
import json
import os
from pathlib import Path

import msgspec
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("fsspec")

from market_maker.backtest.session import StoreRange, run_session
from market_maker.cli import main
from market_maker.config import AppConfig
from market_maker.errors import StoreError
from market_maker.instruments import resolve_instrument
from market_maker.store import StoreMarket, import_capture, store_summary
from market_maker.store.schema import Grid, grid_of
from market_maker.store.writer import _units
from market_maker.venues.replay import ReplayMarket

ROOT = Path(__file__).resolve().parents[2]
BINANCE = ROOT / "data" / "binance-usdm" / "btcusdt_20240808.gz"
HYPERLIQUID = ROOT / "data" / "hyperliquid" / "btc_20250126.gz"
NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S


@pytest.fixture(autouse=True)
def _decode_the_text(monkeypatch):
    """The replays compared with the store decode the capture's text: that path keeps the
    whole depth book as it goes (the cached replay looks levels up only where asked)."""
    monkeypatch.setenv("MM_CACHE_DIR", "off")


@pytest.fixture(scope="module")
def btc_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    parts = import_capture(BINANCE, str(store))
    return store, parts


def _shifted(src: Path, out: Path, shift_ns: int) -> Path:
    """The capture with every receive stamp moved by ``shift_ns`` (the venue's own stamps
    inside the JSON stay: the replay orders by receive time)."""
    with gzip.open(src, "rb") as fh, gzip.open(out, "wb") as dst:
        for line in fh:
            head, _, body = line.partition(b" ")
            dst.write(b"%d %s" % (int(head) + shift_ns, body))
    return out


def _assert_same_replay(a, b, *, final: bool = True) -> int:
    """Every event equal, and the depth book equal (its size after every event, every level
    after every 61st and at the end); returns the count."""
    n = 0
    while True:
        ta, tb = a.peek_ns(), b.peek_ns()
        assert ta == tb, f"event {n}: {ta} != {tb}"
        if ta is None:
            break
        ea, eb = a.pop(), b.pop()
        assert ea == eb, f"event {n}: {ea} != {eb}"
        assert (len(a._bids), len(a._asks)) == (len(b._bids), len(b._asks)), n
        if n % 61 == 0:
            assert a._bids == b._bids and a._asks == b._asks, f"depth book after event {n}"
        n += 1
    if final:
        assert a._bids == b._bids and a._asks == b._asks
    return n


def test_replay_from_store_when_binance_capture_imported_then_every_event_and_depth_book_match(
    btc_store,
):
    store, parts = btc_store
    n = _assert_same_replay(ReplayMarket(BINANCE), StoreMarket(str(store), "BTCUSDT"))
    # data/README.md: 66,089 bookTicker lines (one book each) and 21,313 trade lines.
    assert n == 66_089 + 21_313
    assert [(p.day, p.events) for p in parts] == [("2024-08-08", n)]


def test_replay_from_store_when_batches_split_books_then_events_are_unchanged(tmp_path):
    import_capture(HYPERLIQUID, str(tmp_path))
    # 7-row batches cut the 20-level snapshots' level rows across batch boundaries.
    small = StoreMarket(str(tmp_path), "BTC", batch_rows=7)
    n = _assert_same_replay(ReplayMarket(HYPERLIQUID), small)
    assert n == 110


def test_store_when_imported_then_prices_are_integer_ticks_of_the_wire_text(btc_store):
    import pyarrow.parquet as pq

    store, _ = btc_store
    with gzip.open(BINANCE, "rt") as fh:
        first_trade = next(json.loads(line.split(" ", 1)[1]) for line in fh if "@trade" in line)
    price_text, qty_text = first_trade["data"]["p"], first_trade["data"]["q"]
    (file,) = list(Path(store).rglob("*.parquet"))
    table = pq.read_table(file)
    kinds = table.column("kind").to_pylist()
    trade_rows = [i for i, k in enumerate(kinds) if k in (1, 2)]
    assert len(trade_rows) == 21_313
    i = trade_rows[0]
    # 0.1 ticks and 0.001 lots: "61800.1" is 618001 ticks, "0.002" is 2 lots.
    whole, _, frac = price_text.partition(".")
    assert table.column("price_ticks")[i].as_py() == int(whole) * 10 + int((frac + "0")[:1])
    assert table.column("size_lots")[i].as_py() == round(float(qty_text) * 1000)
    assert table.column("exchange_ts_ns")[i].as_py() == first_trade["data"]["T"] * 1_000_000


def test_grid_when_value_off_grid_then_refused_not_rounded():
    assert Grid.of(0.1) == Grid(1, 10)
    assert Grid.of(1e-05) == Grid(1, 100_000)
    assert _units(61800.1, Grid(1, 10), "price") == 618001
    with pytest.raises(StoreError, match="not on the grid"):
        _units(61800.15, Grid(1, 10), "price")


def test_grid_when_hyperliquid_then_prices_on_the_finer_decimal_grid():
    # BTC on Hyperliquid above 100k: tick 1 (5 significant figures), but 6 - szDecimals(5) = 1
    # decimal allowed: the price grid is 0.1 and a tick is 10 steps.
    inst = resolve_instrument("hyperliquid", "BTC", price=105_055.0)
    assert (inst.tick_size, inst.max_price_decimals) == (1.0, 1)
    assert grid_of(inst) == (Grid(1, 10), 10)


def test_store_when_capture_spans_midnight_then_two_days_that_replay_as_one(tmp_path):
    first = ReplayMarket(BINANCE, cache=False).peek_ns()
    assert first is not None
    midnight = (first // NS_PER_DAY + 1) * NS_PER_DAY
    # The capture ends at 23:59:59 UTC: shift it so that midnight falls 100 s into its 344 s.
    capture = _shifted(BINANCE, tmp_path / "btcusdt_shifted.gz", midnight - first - 100 * NS_PER_S)
    store = tmp_path / "store"
    parts = import_capture(capture, str(store))
    assert [p.day for p in parts] == ["2024-08-08", "2024-08-09"]
    assert all(p.events > 0 for p in parts)
    market = StoreMarket(str(store), "BTCUSDT")
    assert _assert_same_replay(ReplayMarket(capture), market) == sum(p.events for p in parts)
    assert market.stats.depth_gaps == ReplayMarket(capture).stats.depth_gaps  # no gap added
    second_day = StoreMarket(
        str(store), "BTCUSDT", start=dt.date(2024, 8, 9), end=dt.date(2024, 8, 9)
    )
    assert second_day.peek_ns() is not None and second_day.peek_ns() >= midnight


def test_store_when_days_from_two_sources_then_a_depth_gap_clears_the_book(tmp_path):
    store = tmp_path / "store"
    a = _shifted(BINANCE, tmp_path / "a.gz", 0)
    b = _shifted(BINANCE, tmp_path / "b.gz", NS_PER_DAY)
    import_capture(a, str(store))
    import_capture(b, str(store))
    market = StoreMarket(str(store), "BTCUSDT")
    first_day = _assert_same_replay(
        ReplayMarket(a), _Until(market, ReplayMarket(b).peek_ns()), final=False
    )
    assert first_day == 66_089 + 21_313
    # After the gap the depth book is the second source's alone (its own REST snapshot, once
    # it comes): nothing is left from the first day's 5,000 levels, from its first event on.
    assert _assert_same_replay(ReplayMarket(b), market) == first_day
    assert market.stats.depth_gaps == 2 * ReplayMarket(a).stats.depth_gaps + 1


class _Until:
    """A market's events before ``end_ns`` (the rest stay in it)."""

    def __init__(self, market, end_ns):
        self.market, self.end_ns = market, end_ns

    def peek_ns(self):
        t = self.market.peek_ns()
        return None if t is None or t >= self.end_ns else t

    def pop(self):
        return self.market.pop()

    def __getattr__(self, name):
        return getattr(self.market, name)


def test_store_when_fsspec_memory_url_then_same_events(tmp_path):
    url = "memory://mm-store-test"
    import_capture(HYPERLIQUID, url)
    assert _assert_same_replay(ReplayMarket(HYPERLIQUID), StoreMarket(url, "BTC")) == 110


def test_backtest_when_store_then_same_fills_and_pnl_as_the_capture(btc_store):
    store, _ = btc_store
    config = AppConfig()
    a, rec_a = run_session(config, data=BINANCE, record=True)
    b, rec_b = run_session(
        config,
        store=StoreRange(store=str(store), symbol="BTCUSDT", start=dt.date(2024, 8, 8)),
        record=True,
    )
    assert rec_a is not None and rec_b is not None
    assert a.fills > 0
    assert rec_b.fills == rec_a.fills
    assert (b.pnl_usd, b.fills, b.maker_volume_usd, b.fees_usd) == (
        a.pnl_usd,
        a.fills,
        a.maker_volume_usd,
        a.fees_usd,
    )
    timing = {"source", "cycle_us_p50", "cycle_us_p99", "events_per_s", "wall_s"}
    da, db = msgspec.to_builtins(a), msgspec.to_builtins(b)
    # The capture's lines say which market they are; the store's partition names it.
    da["notes"] = [n for n in da["notes"] if not n.startswith("recognised from the capture")]
    assert {k: v for k, v in da.items() if k not in timing} == {
        k: v for k, v in db.items() if k not in timing
    }


def test_store_ls_when_two_captures_imported_then_lists_symbols_days_rows_and_bytes(
    tmp_path, capsys
):
    store = tmp_path / "store"
    assert main(["import", str(HYPERLIQUID), str(BINANCE), "--store", str(store)]) == 0
    capsys.readouterr()
    assert main(["store", "ls", str(store), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["venue"], r["symbol"], r["day"]) for r in rows] == [
        ("binance-usdm", "BTCUSDT", "2024-08-08"),
        ("hyperliquid", "BTC", "2025-01-26"),
    ]
    sizes = {p.parent.parent.name: os.path.getsize(p) for p in store.rglob("*.parquet")}
    assert [r["bytes"] for r in rows] == [sizes["symbol=BTCUSDT"], sizes["symbol=BTC"]]
    # data/README.md: 46 l2Book snapshots and 9 trade batches; the events are the books and
    # each batch's trades.
    hl = rows[1]
    assert hl["events"] == 110 and hl["events"] > 46 + 9
    assert rows[0]["rows"] > rows[0]["events"]  # book levels and depth-book changes too
    assert main(["store", "ls", str(store)]) == 0
    out = capsys.readouterr().out
    assert "BTCUSDT" in out and f"{rows[0]['bytes']:,}" in out
    assert "2 symbols, 2 days" in out


def test_store_summary_when_importing_again_then_files_are_replaced_not_added(tmp_path):
    import_capture(HYPERLIQUID, str(tmp_path))
    before = store_summary(str(tmp_path))
    import_capture(HYPERLIQUID, str(tmp_path))
    assert store_summary(str(tmp_path)) == before
    assert before[0].files == 1


def test_backtest_cli_when_store_flags_wrong_then_one_line_errors(tmp_path, capsys):
    assert main(["backtest", "--symbol", "BTC"]) != 0
    assert "--symbol only applies with --store" in capsys.readouterr().err
    assert main(["backtest", "--store", str(tmp_path)]) != 0
    assert "--store needs --symbol" in capsys.readouterr().err
    args = ["backtest", "--store", str(tmp_path), "--symbol", "BTC"]
    assert main([*args, "--from", "2025-01-27", "--to", "2025-01-26"]) != 0
    assert "is before --from" in capsys.readouterr().err
    assert main(args) != 0
    assert "no data for BTC" in capsys.readouterr().err


def test_import_when_recording_from_the_recorder_then_same_events_and_its_notes_counted(
    tmp_path,
):
    from market_maker.venues.capture import CaptureWriter

    # What `market-maker record` writes: gzip members flushed as it goes, and its own notes
    # (a reconnect) among the frames.
    recording = tmp_path / "btc_recording.gz"
    writer = CaptureWriter(recording, flush_interval_s=0.0)
    with gzip.open(HYPERLIQUID, "rt") as fh:
        for i, line in enumerate(fh):
            ns, _, text = line.rstrip("\n").partition(" ")
            writer.write(int(ns), text)
            if i == 20:
                writer.write(int(ns) + 1, '{"channel":"recorder","data":{"event":"reconnect"}}')
    writer.close()
    store = tmp_path / "store"
    (part,) = import_capture(recording, str(store))
    market = StoreMarket(str(store), "BTC")
    assert _assert_same_replay(ReplayMarket(recording), market) == 110
    assert market.stats.notes == 1 and part.stats["notes"] == 1


def _iso_ns(ns: int) -> str:
    whole = dt.datetime.fromtimestamp(ns // NS_PER_S, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{ns % NS_PER_S:09d}"


def test_import_when_hyperliquid_archive_file_then_same_events_as_the_same_frames_captured(
    tmp_path, capsys
):
    import shutil
    import subprocess

    import pyarrow as pa

    # The archive's layout (Hyperliquid docs, "Historical data"): market_data/[date]/[hour]/
    # l2Book/[coin].lz4, an LZ4 frame of lines {"time": <UTC ISO, ns>, "ver_num": 1, "raw":
    # <the l2Book websocket message>}. Written here from our capture's l2Book frames.
    frames = []
    with gzip.open(HYPERLIQUID, "rb") as fh:
        for line in fh:
            ns, _, raw = line.rstrip(b"\n").partition(b" ")
            if b'"l2Book"' in raw:
                frames.append((int(ns), raw))
    assert len(frames) == 46  # data/README.md
    archive = tmp_path / "market_data" / "20250126" / "19" / "l2Book" / "BTC.lz4"
    archive.parent.mkdir(parents=True)
    text = b"".join(
        b'{"time": "%s", "ver_num": 1, "raw": %s}\n' % (_iso_ns(ns).encode(), raw)
        for ns, raw in frames
    )
    with pa.output_stream(str(archive), compression="lz4") as out:
        out.write(text)
    if shutil.which("unlz4"):  # the docs' own tool reads it back
        assert subprocess.run(["unlz4", "-c", str(archive)], capture_output=True).stdout == text
    captured = tmp_path / "btc_books.gz"
    with gzip.open(captured, "wb") as fh:
        fh.writelines(b"%d %s\n" % frame for frame in frames)

    store = tmp_path / "store"
    assert main(["import", str(archive), "--store", str(store)]) == 0
    assert "hyperliquid BTC 2025-01-26: 46 events" in capsys.readouterr().out
    market = StoreMarket(str(store), "BTC")
    assert market.parts[0].meta.source == "BTC.lz4"
    assert _assert_same_replay(ReplayMarket(captured), market) == 46


def test_import_when_archive_line_is_not_an_archive_line_then_refused_with_its_number(tmp_path):
    import pyarrow as pa

    from market_maker.store.hl_archive import import_hl_archive

    archive = tmp_path / "BTC.lz4"
    with pa.output_stream(str(archive), compression="lz4") as out:
        out.write(b'{"time": "2025-01-26T19:00:00.5", "ver_num": 1, "raw": {"channel": "x"}}\n')
        out.write(b'{"raw": {}}\n')
    with pytest.raises(StoreError, match="line 2: not a Hyperliquid archive line"):
        import_hl_archive(archive, str(tmp_path / "store"))


def _tardis_from_capture(tmp_path):
    """The BTC capture written as Tardis's binance-futures incremental_book_L2 and trades
    (docs.tardis.dev CSV columns; times in microseconds): the REST snapshot as snapshot rows,
    the diffs after it as update rows, each trade with the aggressor's side."""
    book, trades = [], []
    seen_snapshot = False
    with gzip.open(BINANCE, "rt") as fh:
        for line in fh:
            ns, _, body = line.partition(" ")
            us = int(ns) // 1000
            msg = json.loads(body)
            if "lastUpdateId" in msg:
                seen_snapshot = True
                for side, levels in (("bid", msg["bids"]), ("ask", msg["asks"])):
                    book += [(us, us, "true", side, p, q) for p, q in levels]
            elif "@depth" in msg.get("stream", "") and seen_snapshot:
                d = msg["data"]
                for side, levels in (("bid", d["b"]), ("ask", d["a"])):
                    book += [(d["E"] * 1000, us, "false", side, p, q) for p, q in levels]
            elif msg.get("stream", "").endswith("@trade"):
                d = msg["data"]
                side = "sell" if d["m"] else "buy"
                trades.append((d["T"] * 1000, us, d["t"], side, d["p"], d["q"]))
    book.sort(key=lambda r: r[1])  # Tardis files are in local_timestamp order
    trades.sort(key=lambda r: r[1])
    l2 = tmp_path / "binance-futures_incremental_book_L2_2024-08-08_BTCUSDT.csv.gz"
    with gzip.open(l2, "wt") as fh:
        fh.write("exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n")
        fh.writelines(
            f"binance-futures,BTCUSDT,{t},{u},{s},{d},{p},{q}\n" for t, u, s, d, p, q in book
        )
    tr = tmp_path / "binance-futures_trades_2024-08-08_BTCUSDT.csv.gz"
    with gzip.open(tr, "wt") as fh:
        fh.write("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n")
        fh.writelines(
            f"binance-futures,BTCUSDT,{t},{u},{i},{s},{p},{q}\n" for t, u, i, s, p, q in trades
        )
    return l2, tr, book, trades


def test_import_when_tardis_csv_then_trades_depth_and_touch_follow_the_rows(tmp_path, capsys):
    from market_maker.model import BookUpdate, Side, Trade

    l2, tr, book_rows, trade_rows = _tardis_from_capture(tmp_path)
    assert len(trade_rows) == 21_313  # data/README.md
    store = tmp_path / "store"
    assert main(["import", str(l2), str(tr), "--store", str(store)]) == 0
    assert "binance-usdm BTCUSDT 2024-08-08" in capsys.readouterr().out
    market = StoreMarket(str(store), "BTCUSDT")
    # The book the rows describe, kept here by their own rule (a snapshot run replaces it).
    bids: dict[int, float] = {}
    asks: dict[int, float] = {}
    at = 0
    trades = iter(trade_rows)
    books = 0
    while market.peek_ns() is not None:
        ev = market.pop()
        while at < len(book_rows) and book_rows[at][1] * 1000 <= ev.ts_ns:
            _, _, snap, side, p, q = book_rows[at]
            if snap == "true" and (at == 0 or book_rows[at - 1][2] == "false"):
                bids.clear()
                asks.clear()
            levels = bids if side == "bid" else asks
            ticks = round(float(p) * 10)
            if float(q) > 0:
                levels[ticks] = float(q)
            else:
                levels.pop(ticks, None)
            at += 1
        if isinstance(ev, Trade):
            t_us, local_us, _, side, p, q = next(trades)
            assert ev == Trade(
                ts_ns=local_us * 1000,
                price=float(p),
                size=float(q),
                aggressor=Side.SELL if side == "sell" else Side.BUY,
                exchange_ts_ns=t_us // 1000 * 1_000_000,
            )
            assert market._bids == bids and market._asks == asks
        else:
            assert isinstance(ev, BookUpdate)
            books += 1
            best_bid, best_ask = max(bids), min(asks)
            assert ev.bids == ((best_bid / 10, bids[best_bid]),)
            assert ev.asks == ((best_ask / 10, asks[best_ask]),)
    assert next(trades, None) is None
    assert books > 1_000  # a touch for every change of the best bid or ask


def test_import_when_tardis_book_snapshot_25_then_each_row_is_a_full_book(tmp_path):
    head = ["exchange", "symbol", "timestamp", "local_timestamp"]
    for i in range(25):
        head += [f"asks[{i}].price", f"asks[{i}].amount", f"bids[{i}].price", f"bids[{i}].amount"]
    path = tmp_path / "binance-futures_book_snapshot_25_2024-08-08_BTCUSDT.csv.gz"
    t0 = 1_723_161_255_000_000
    with gzip.open(path, "wt") as fh:
        fh.write(",".join(head) + "\n")
        for k in range(3):
            row = ["binance-futures", "BTCUSDT", str(t0 + k * 100_000), str(t0 + k * 100_000 + 7)]
            for i in range(25):
                row += [f"{61800.1 + k + i / 10:.1f}", "0.5", f"{61800.0 + k - i / 10:.1f}", "1.25"]
            fh.write(",".join(row) + "\n")
    store = tmp_path / "store"
    assert main(["import", str(path), "--store", str(store)]) == 0
    market = StoreMarket(str(store), "BTCUSDT")
    events = []
    while market.peek_ns() is not None:
        events.append(market.pop())
        assert len(market._bids) == len(market._asks) == 25
    assert [(e.ts_ns, e.bids, e.asks) for e in events] == [
        ((t0 + k * 100_000 + 7) * 1000, ((61800.0 + k, 1.25),), ((61800.1 + k, 0.5),))
        for k in range(3)
    ]
    assert market._bids[round((61802.0 - 2.4) * 10)] == 1.25  # the last row's 25th bid
