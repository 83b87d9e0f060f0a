"""PnL attribution and markouts, checked against the venue's own accounting and against a
brute-force reading of the market's mid path."""

import bisect
import csv
import math

import msgspec
import pytest

from market_maker.backtest.analytics import FillLedger
from market_maker.backtest.report import (
    format_compare,
    format_summary,
    write_fills_csv,
    write_report,
)
from market_maker.backtest.runner import run_backtest
from market_maker.backtest.scenarios import engine_config
from market_maker.backtest.scenarios import scenario as scenario_params
from market_maker.backtest.session import run_session
from market_maker.config import AppConfig, with_strategy
from market_maker.engine import QuoteEngine
from market_maker.model import BookUpdate
from market_maker.venues.sim import simulated_exchange
from tests.backtest.test_backtest import BINANCE

NS = 1_000_000_000


def test_a_hand_worked_ledger():
    """Buy 2 at 99 with the mid at 100 and a 0.1 fee; the mid is 101 from 0.5 s to 12 s, then
    103 until the end. Spread capture 2, inventory 2 * 3 = 6; markouts (101 - 99) / 99 at 1 s
    and 10 s, none at 60 s (the market ended first)."""
    ledger = FillLedger()
    ledger.on_fill(0, True, 99.0, 2.0, 0.1, 100.0, False)
    ledger.on_mid(NS // 2, 100.0)  # the touch changes at 0.5 s; 100 held until then
    ledger.on_mid(12 * NS, 101.0)  # ... and again at 12 s; 101 held from 0.5 s to 12 s
    ledger.on_mid(30 * NS, 103.0)
    a = ledger.attribution(final_mid=103.0)
    assert a.spread_capture_usd == pytest.approx(2.0)
    assert a.inventory_usd == pytest.approx(6.0)
    assert a.fees_usd == pytest.approx(0.1)
    assert a.markout_bps["1s"] == pytest.approx(2 / 99 * 1e4)
    assert a.markout_bps["10s"] == pytest.approx(2 / 99 * 1e4)
    assert a.markout_bps["60s"] is None
    assert a.markout_fills == {"1s": 1, "10s": 1, "60s": 0}


def test_a_sell_that_the_market_runs_over_has_a_negative_markout():
    ledger = FillLedger()
    ledger.on_fill(0, False, 100.0, 1.0, 0.0, 100.5, False)  # sold 0.5 under the mid
    ledger.on_mid(2 * NS, 102.0)  # 102 held until 2 s: the 1 s markout reads it
    a = ledger.attribution(final_mid=102.0)
    assert a.spread_capture_usd == pytest.approx(-0.5)
    assert a.markout_bps["1s"] == pytest.approx(-2 / 100 * 1e4)
    assert a.inventory_usd == pytest.approx(-1.5)


class _Tap:
    """A market source that notes every book the venue reads (the brute-force mid path)."""

    def __init__(self, market):
        self.market = market
        self.books: list[tuple[int, float, float]] = []

    def peek_ns(self):
        return self.market.peek_ns()

    def load(self):
        return self.market.load()

    def __getattr__(self, name):
        return getattr(self.market, name)

    def pop(self):
        ev = self.market.pop()
        if isinstance(ev, BookUpdate) and ev.bids and ev.asks:
            self.books.append((ev.ts_ns, ev.bids[0][0], ev.asks[0][0]))
        return ev


@pytest.mark.parametrize("name", ["volatile", "trend"])
def test_attribution_adds_up_to_the_venues_pnl_and_markouts_match_the_mid_path(name):
    params = scenario_params(name, duration_s=300)
    config = engine_config(params, with_strategy(AppConfig(), "glft"))
    exchange = simulated_exchange(params, seed=3)
    tap = exchange.market = _Tap(exchange.market)
    engine = QuoteEngine(config, params.instrument)
    result, _ = run_backtest(
        exchange, engine, source=name, seed=3, end_ns=int(params.duration_s * NS)
    )
    a = result.attribution
    assert result.fills > 20
    assert abs(a.inventory_usd) > 0.5, "a run with no inventory PnL would prove little"
    # The venue's own books: cash plus position at the mid, after fees.
    assert a.spread_capture_usd + a.inventory_usd - a.fees_usd == pytest.approx(
        result.pnl_usd, abs=1e-6
    )
    assert a.fees_usd == pytest.approx(result.fees_usd)

    # Brute force: the mid in force at t is that of the last book stamped at or before t; a
    # markout is known once the touch changes after its horizon.
    tick = params.instrument.tick_size
    times, mids, touch = [], [], None
    for ts, bid, ask in tap.books:
        bb, ba = math.floor(bid / tick + 0.5), math.floor(ask / tick + 0.5)
        if (bb, ba) != touch:
            touch = bb, ba
            times.append(ts)
            mids.append(0.5 * (bb + ba) * tick)
    fills = exchange.ledger.fills
    assert len(fills) == result.fills
    for h, label in ((1, "1s"), (10, "10s"), (60, "60s")):
        total = weight = 0.0
        for f in fills:
            due = f.t_ns + h * NS
            if bisect.bisect_right(times, due) == len(times):
                continue  # no change of the mid after it: the ledger cannot know it was final
            mid = mids[bisect.bisect_right(times, due) - 1]
            sign = 1.0 if f.buy else -1.0
            total += sign * (mid - f.price) / f.price * 1e4 * f.price * f.size
            weight += f.price * f.size
        assert a.markout_bps[label] == pytest.approx(total / weight, rel=1e-9, abs=1e-9)


def test_time_in_states_quoting_and_the_summary_fit_80_columns():
    result, _ = run_session(AppConfig(), scenario="cascade", seed=1, duration_s=600)
    assert sum(result.time_in_state_s.values()) == pytest.approx(result.duration_s, rel=1e-6)
    assert result.time_in_state_s["paused"] > 0.0  # the cascade pauses quoting
    assert result.time_two_sided_s <= result.time_quoting_s <= result.duration_s
    assert 0.0 < result.mean_quoted_spread_bps < 100.0
    text = format_summary(result)
    assert "spread" in text and "markouts" in text and "paused" in text
    assert max(len(line) for line in text.splitlines()[:12]) <= 80


def test_a_strategy_that_never_fills_says_why():
    config = with_strategy(AppConfig(), "avellaneda_stoikov")
    strategy = msgspec.structs.replace(config.strategy, as_horizon_s=600.0)
    config = msgspec.structs.replace(config, strategy=strategy)
    result, _ = run_session(config, scenario="calm", seed=1, duration_s=120)
    assert result.fills == 0
    text = format_summary(result)
    assert "no fills" in text and "as_horizon_s" in text
    assert "no fills: avellaneda_stoikov" in format_compare([result])


def test_avellaneda_stoikov_fills_with_default_settings():
    """The issue: 0 fills on ``--compare`` with the defaults (a 60 s horizon, 50 bps wide)."""
    result, _ = run_session(
        AppConfig(), strategy="avellaneda_stoikov", scenario="calm-uninformed", duration_s=300
    )
    assert result.fills > 50


def test_report_fills_table_and_utc_axis_on_a_capture(tmp_path):
    result, rec = run_session(AppConfig(), data=BINANCE, duration_s=120, record=True)
    paths = write_report(tmp_path, result, rec)
    assert [p.name for p in paths] == [
        "summary.json",
        "recording.json",
        "fills.csv",
        "backtest.png",
    ]
    rows = list(csv.DictReader((tmp_path / "fills.csv").open()))
    assert len(rows) == result.fills > 0
    assert rows[0]["time"].startswith("2024-08-08T") and rows[0]["time"].endswith("Z")
    assert {r["side"] for r in rows} <= {"buy", "sell"}
    assert sum(float(r["size"]) for r in rows) == pytest.approx(
        result.maker_volume_usd / rec.mid[-1], rel=0.02
    )
    assert rec.start_ns > 10**18 and rec.quote_changes
    assert (tmp_path / "backtest.png").read_bytes()[:4] == b"\x89PNG"


def test_fills_csv_of_a_scenario_has_its_times_and_exact_prices(tmp_path):
    """The issue: the time column was empty for scenarios, prices carried float noise."""
    import re

    result, rec = run_session(AppConfig(), scenario="calm", duration_s=300, record=True)
    write_fills_csv(tmp_path / "fills.csv", rec)
    rows = list(csv.DictReader((tmp_path / "fills.csv").open()))
    assert len(rows) == result.fills > 10
    tick = rec.instrument.tick_size
    for row in rows:
        h, m, s = re.fullmatch(r"(\d\d):(\d\d):(\d\d\.\d{6})", row["time"]).groups()
        assert int(h) * 3600 + int(m) * 60 + float(s) == pytest.approx(float(row["t_s"]), abs=1e-6)
        for key in ("price", "our_bid", "our_ask"):
            if row[key]:
                assert "e" not in row[key] and len(row[key].partition(".")[2]) <= 2, row
                assert float(row[key]) / tick == pytest.approx(round(float(row[key]) / tick))
        assert len(row["mid"].partition(".")[2]) <= 3
        assert len(row["size"].partition(".")[2]) <= 3


def test_thousands_of_fills_are_drawn_per_time_bin_at_their_vwap():
    """The issue: on hour-long charts about 3,000 fill markers hid our bid and ask."""
    from market_maker.backtest.analytics import FillRecord
    from market_maker.backtest.report import MAX_FILL_MARKERS, fill_markers

    def fill(t_s, price, size):
        return FillRecord(
            t_ns=int(t_s * 1e9), buy=True, price=price, size=size, fee=0.0, mid=price,
            taker=False, markouts_bps=[],
        )  # fmt: skip

    few = [fill(t, 100.0 + t, 0.01) for t in range(50)]
    assert fill_markers(few, 0, 3600.0) == (
        [float(t) for t in range(50)],
        [f.price for f in few],
        [0.01] * 50,
        None,
    )
    many = [fill(i * 1.2, 100.0 + (i % 2), 0.001 * (1 + i % 3)) for i in range(3_000)]
    t, price, size, bin_s = fill_markers(many, 0, 3600.0)
    assert bin_s == 20.0  # 3,600 s / 200 = 18 s, up to the 1-2-5 step
    assert len(t) == 180 <= MAX_FILL_MARKERS
    assert sum(size) == pytest.approx(sum(f.size for f in many))
    # The first bin holds the fills of its first 20 s: 0.0, 1.2, ... 19.2 s (17 fills).
    first = [f for f in many if f.t_ns < 20 * 10**9]
    assert len(first) == 17
    volume = sum(f.size for f in first)
    assert size[0] == pytest.approx(volume)
    assert price[0] == pytest.approx(sum(f.size * f.price for f in first) / volume)
    assert 0.0 < t[0] < 20.0 and t == sorted(t)
