"""Binance COIN-M and spot captures made from the repository's BTCUSDT USD-M capture: the
replay recognises each market from its lines, decodes spot depth (no ``pu``), and reports an
inverse contract in its settlement coin. A capture without depth says so."""

import gzip
from pathlib import Path

import msgspec
import pytest

from market_maker.backtest.report import format_summary
from market_maker.backtest.session import run_session
from market_maker.config import AppConfig, InstrumentConfig
from market_maker.errors import ConfigError, VenueError
from market_maker.model import BookUpdate, InstrumentKind, Side
from market_maker.venues.replay import ReplayMarket, capture_info
from tests.stubs import rewrite_as_inverse, rewrite_as_spot

BTC = "data/binance-usdm/btcusdt_20240808.gz"
LINES = 6_000
S = 1_000_000_000


def _depth_lines(path) -> int:
    with gzip.open(path, "rb") as fh:
        return sum(1 for line in fh if b"@depth" in line)


def _drain(market: ReplayMarket) -> None:
    while market.peek_ns() is not None:
        market.pop()


@pytest.fixture(scope="module")
def spot(tmp_path_factory):
    path = tmp_path_factory.mktemp("spot") / "btcusdt_spot.gz"
    rewrite_as_spot(BTC, path, lines=LINES)
    return path


@pytest.fixture(scope="module")
def inverse(tmp_path_factory):
    path = tmp_path_factory.mktemp("coinm") / "btcusd_perp.gz"
    rewrite_as_inverse(BTC, path, lines=30_000)
    return path


def test_usdm_capture_is_recognised_from_pu_and_transaction_times():
    info = capture_info(BTC)
    assert info.venue == "binance-usdm" and "pu" in info.evidence


def test_spot_capture_is_recognised_and_every_depth_diff_decodes(spot, tmp_path):
    market = ReplayMarket(spot, cache=False)
    assert market.venue == "binance-spot"
    assert market.instrument.kind is InstrumentKind.SPOT and market.instrument.tick_size == 0.01
    _drain(market)
    st = market.stats
    assert st.bad_lines == 0
    assert st.depth_diffs == _depth_lines(spot) > 0
    assert st.depth_gaps == 0 and st.depth_snapshots == 1
    # The same book as the USD-M lines it came from, level for level.
    head = tmp_path / "usdm.gz"
    with gzip.open(BTC, "rb") as fin, gzip.open(head, "wb") as fout:
        for i, line in enumerate(fin):
            if i >= LINES:
                break
            fout.write(line)
    usdm = ReplayMarket(head, cache=False)
    _drain(usdm)
    assert len(market._bids) == len(usdm._bids) > 100
    assert sorted(market._bids.values()) == sorted(usdm._bids.values())
    assert sorted(market._asks.values()) == sorted(usdm._asks.values())


def test_spot_diff_lost_is_a_gap_and_resyncs_like_usdm(spot, tmp_path):
    holed = tmp_path / "holed.gz"
    with gzip.open(spot, "rb") as fin, gzip.open(holed, "wb") as fout:
        seen = 0
        for line in fin:
            if b"@depth" in line:
                seen += 1
                if seen == 40:
                    continue  # one diff lost: U no longer follows the last u + 1
            fout.write(line)
    market = ReplayMarket(holed, cache=False)
    _drain(market)
    assert market.stats.depth_gaps == 1 and market.stats.bad_lines == 0


def test_capture_without_depth_puts_the_displayed_touch_size_ahead_of_us(spot, tmp_path):
    bare = tmp_path / "bare.gz"
    with gzip.open(spot, "rb") as fin, gzip.open(bare, "wb") as fout:
        for line in fin:
            if b"@depth" not in line and b"lastUpdateId" not in line:
                fout.write(line)
    market = ReplayMarket(bare, cache=False)
    while market.peek_ns() is not None:
        ev = market.pop()
        if isinstance(ev, BookUpdate):
            break
    bid, bid_size = ev.bids[0]
    ticks = round(bid / 0.01)
    assert market.displayed_size(Side.BUY, ticks) == bid_size > 0.0
    assert market.displayed_size(Side.BUY, ticks - 5) == bid_size  # behind the touch
    assert market.displayed_size(Side.BUY, ticks + 1) == 0.0  # a better price: a new level
    result, _ = run_session(AppConfig(), data=bare, duration_s=5.0)
    assert any("no depth in the capture" in n for n in result.notes)
    assert "no depth in the capture" in format_summary(result)


def test_a_capture_that_cannot_tell_usdm_from_spot_is_one_error_naming_the_setting(tmp_path):
    trades = tmp_path / "trades.gz"
    with gzip.open(BTC, "rb") as fin, gzip.open(trades, "wb") as fout:
        for i, line in enumerate(fin):
            if i > 3_000:
                break
            if b"@trade" in line:
                head, _, body = line.partition(b" ")
                msg = msgspec.json.decode(body)
                msg["data"].pop("X")
                fout.write(head + b" " + msgspec.json.encode(msg) + b"\n")
    with pytest.raises(VenueError) as err:
        capture_info(trades)
    text = str(err.value)
    assert "\n" not in text and "--market binance-spot" in text and "[instrument] market" in text
    market = ReplayMarket(trades, overrides=InstrumentConfig(market="binance-spot"), cache=False)
    assert market.venue == "binance-spot"
    with pytest.raises(VenueError, match="binance-usdm"):
        capture_info(BTC, "binance-spot")  # the lines say otherwise: refused, not obeyed


def test_spot_backtest_reports_the_spot_market_and_decodes_every_depth_line(spot):
    result, _ = run_session(AppConfig(), data=spot)
    assert result.market.startswith("binance-spot BTCUSDT (spot")
    assert result.capture is not None
    assert result.capture["depth_diffs"] == _depth_lines(spot)
    assert result.capture["bad_lines"] == 0
    assert result.final_position >= 0.0  # never sold what it did not hold
    assert result.funding_payments == 0
    assert "binance-spot BTCUSDT (spot" in format_summary(result)


def test_a_spot_backtest_can_start_holding_base_and_sells_it(spot):
    cfg = AppConfig(instrument=InstrumentConfig(base_balance=0.05, quote_balance=5_000.0))
    result, rec = run_session(cfg, data=spot, record=True)
    assert "balances at the start: 0.05 base, 5,000.00 USDT" in result.notes
    assert rec is not None and rec.fills
    # It sold from the first fill on: what it held at the start, not a short.
    assert not rec.fills[0].buy
    sold = sum(f.size for f in rec.fills if not f.buy)
    bought = sum(f.size for f in rec.fills if f.buy)
    assert result.final_position == pytest.approx(0.05 - sold + bought)
    assert result.final_position >= 0.0 and result.max_abs_position <= 0.05 + 1e-12
    # 10 bp of each fill's value (Binance spot VIP 0).
    assert result.fees_usd == pytest.approx(sum(f.price * f.size * 1e-3 for f in rec.fills))
    # Without a base balance the first fill can only be a buy.
    _, plain_rec = run_session(AppConfig(), data=spot, record=True)
    assert plain_rec is not None and (not plain_rec.fills or plain_rec.fills[0].buy)


def test_starting_balances_on_a_perpetual_are_one_error_line():
    cfg = AppConfig(instrument=InstrumentConfig(base_balance=1.0))
    with pytest.raises(ConfigError, match=r"\[instrument\] base_balance: starting balances "):
        run_session(cfg, data=Path(BTC), duration_s=1.0)


def test_inverse_backtest_reports_volume_fees_and_pnl_in_coin_and_usd(inverse):
    market = ReplayMarket(inverse, cache=False)
    assert market.venue == "binance-coinm"
    inst = market.instrument
    assert inst.inverse and inst.contract_size == 100.0 and inst.settlement_currency == "BTC"
    default, _ = run_session(AppConfig(), data=inverse, duration_s=5.0)
    # 0.01 contracts (the default order size) is under one contract: said in USD.
    assert "1.00 USD order under the venue's minimum of 100.00 USD" in default.quoting_nothing
    cfg = AppConfig()
    cfg = msgspec.structs.replace(
        cfg, strategy=msgspec.structs.replace(cfg.strategy, order_size=2.0)
    )
    result, rec = run_session(cfg, data=inverse, record=True)
    assert rec is not None and result.fills > 0
    # Every fill is whole contracts of 100 USD: the USD volume is 100 USD a contract, the coin
    # volume 100 / price a contract, the fees 2 bp of each (the table's COIN-M maker rate).
    contracts = [f.size * f.price / 100.0 for f in rec.fills]  # ledger sizes are in coin
    assert all(abs(c - round(c)) < 1e-9 for c in contracts)
    assert result.maker_volume_usd == pytest.approx(100.0 * sum(round(c) for c in contracts))
    coin = sum(round(c) * 100.0 / f.price for c, f in zip(contracts, rec.fills, strict=True))
    assert result.maker_volume_settlement == pytest.approx(coin, rel=1e-12)
    assert result.fees_usd == pytest.approx(2e-4 * result.maker_volume_usd)
    assert result.fees_settlement == pytest.approx(2e-4 * coin, rel=1e-12)
    # The limit is in contracts of 100 USD: a 10,000 USD account can hold a few thousand.
    assert result.max_abs_position >= 1.0 and result.limit_breaches == 0
    text = format_summary(result)
    assert "BTC" in text and "inverse perpetual, 1 contract = 100 USD" in text


def _shifted(src, dst, *, shift_s: float, lines: int) -> None:
    """The capture's receive stamps moved by ``shift_s`` (the venue's own stamps too)."""
    shift = int(shift_s * S)
    with gzip.open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        for i, line in enumerate(fin):
            if i >= lines:
                break
            head, _, body = line.partition(b" ")
            fout.write(str(int(head) + shift).encode() + b" " + body)


@pytest.mark.parametrize("rate", [0.0001, -0.0001])
def test_a_backtest_across_a_funding_time_pays_it_with_the_right_sign(tmp_path, rate):
    # The capture starts at 23:54:15 UTC; 200 s later the 00:00 UTC funding time (Binance
    # every 8 h) falls 145 s into it.
    path = tmp_path / "across.gz"
    _shifted(BTC, path, shift_s=200.0, lines=50_000)
    cfg = msgspec.structs.replace(
        AppConfig(), funding=msgspec.structs.replace(AppConfig().funding, rate=rate)
    )
    result, rec = run_session(cfg, data=path, record=True)
    assert rec is not None and result.funding_payments == 1
    funding_ns = 1_723_161_600 * S
    q = sum((f.size if f.buy else -f.size) for f in rec.fills if f.t_ns < funding_ns)
    assert q != 0.0
    mid = rec.mid[int((funding_ns - rec.start_ns) / S)]
    # Longs pay a positive rate, shorts receive it: -rate * q * mid.
    assert result.funding_usd == pytest.approx(-rate * q * mid, rel=1e-3)
    assert result.attribution is not None
    assert result.attribution.funding_usd == pytest.approx(result.funding_usd)
    assert "funding" in format_summary(result)


def test_a_capture_with_funding_lines_pays_its_own_rate(tmp_path):
    """Binance USD-M ``@markPrice`` lines (``r`` the funding rate): the rate heard last before
    the funding time is the one paid, with no --funding-rate given."""
    path = tmp_path / "marked.gz"
    shift = 200 * S
    with gzip.open(BTC, "rb") as fin, gzip.open(path, "wb") as fout:
        last = 0
        for i, line in enumerate(fin):
            if i >= 50_000:
                break
            head, _, body = line.partition(b" ")
            ns = int(head) + shift
            if ns - last > S:  # a markPrice line every second
                last = ns
                rate = "0.00030000" if ns < 1_723_161_590 * S else "-0.00050000"
                mark = {
                    "stream": "btcusdt@markPrice@1s",
                    "data": {
                        "e": "markPriceUpdate",
                        "s": "BTCUSDT",
                        "p": "1",
                        "r": rate,
                        "T": 1_723_161_600_000,
                    },
                }
                fout.write(str(ns).encode() + b" " + msgspec.json.encode(mark) + b"\n")
            fout.write(str(ns).encode() + b" " + body)
    result, rec = run_session(AppConfig(), data=path, record=True)
    assert result.capture is not None and result.capture["bad_lines"] == 0
    assert result.capture["funding_lines"] > 100
    assert result.funding_payments == 1
    funding_ns = 1_723_161_600 * S
    q = sum((f.size if f.buy else -f.size) for f in rec.fills if f.t_ns < funding_ns)
    mid = rec.mid[int((funding_ns - rec.start_ns) / S)]
    # The last rate before 00:00 was -0.05 %: shorts pay it, longs receive it.
    assert result.funding_usd == pytest.approx(0.0005 * q * mid, rel=1e-3)
    assert any("the capture's rates" in n for n in result.notes)
