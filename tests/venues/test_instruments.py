"""Rules from the data: a capture names its symbol and replays with that symbol's rules."""

import pytest

from market_maker.backtest.session import run_session
from market_maker.cli import main
from market_maker.config import AppConfig, InstrumentConfig, LadderConfig, StrategyConfig
from market_maker.errors import ConfigError
from market_maker.instruments import hyperliquid_tick, known_symbols, resolve_instrument
from market_maker.venues.replay import ReplayMarket, capture_info
from tests.backtest.test_backtest import BINANCE, HYPERLIQUID
from tests.stubs import relabel_binance_capture, relabel_hyperliquid_capture


@pytest.fixture(scope="module")
def ethusdt(tmp_path_factory):
    path = tmp_path_factory.mktemp("captures") / "ethusdt.gz"
    relabel_binance_capture(BINANCE, path, symbol="ETHUSDT", lines=30_000)
    return path


def test_the_table_covers_the_major_perpetuals_on_both_venues():
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT"} <= set(
        known_symbols("binance-usdm")
    )
    assert {"BTC", "ETH", "SOL", "HYPE", "DOGE"} <= set(known_symbols("hyperliquid"))


def test_a_capture_names_its_symbol_and_gets_its_rules(ethusdt):
    assert capture_info(ethusdt).symbol == "ETHUSDT"
    eth = ReplayMarket(ethusdt).instrument
    assert (eth.symbol, eth.tick_size, eth.lot_size, eth.min_notional) == (
        "ETHUSDT",
        0.01,
        0.001,
        20.0,
    )
    btc = ReplayMarket(BINANCE).instrument
    assert (btc.tick_size, btc.min_notional) == (0.1, 100.0)


def test_another_symbol_replays_with_its_own_rules_and_quotes_and_fills(ethusdt):
    result, _ = run_session(AppConfig(), data=ethusdt, seed=1)
    assert result.source == "data:ethusdt.gz"
    assert result.orders_sent > 0 and result.fills > 0
    assert result.limit_breaches == 0
    assert result.quoting_nothing == ""


def test_an_order_under_the_minimum_says_so_instead_of_quoting_nothing_silently(ethusdt):
    small = AppConfig(strategy=StrategyConfig(order_size=0.001))  # ~6 USD against 20
    result, _ = run_session(small, data=ethusdt, seed=1, duration_s=30)
    assert result.orders_sent == 0
    assert "under the venue's minimum of 20.00 USD" in result.quoting_nothing
    assert result.time_quoting_nothing_s > 25
    in_usd = AppConfig(strategy=StrategyConfig(order_size=0.001, order_size_usd=50.0))
    result, _ = run_session(in_usd, data=ethusdt, seed=1, duration_s=30)
    assert result.orders_sent > 0 and result.quoting_nothing == ""


def test_a_ladder_sized_in_usd_quotes_on_a_market_priced_in_thousands(ethusdt):
    config = AppConfig(
        strategy=StrategyConfig(kind="ladder"),
        ladder=LadderConfig(levels=3, target_liquidity=0.001, target_liquidity_usd=300.0),
    )
    result, _ = run_session(config, data=ethusdt, seed=1, duration_s=30)
    assert result.orders_sent > 0 and result.quoting_nothing == ""


def test_hyperliquid_rules_come_from_size_decimals_and_the_price(tmp_path):
    path = tmp_path / "eth.gz"
    relabel_hyperliquid_capture(HYPERLIQUID, path, coin="ETH")
    eth = ReplayMarket(path).instrument
    assert (eth.symbol, eth.lot_size, eth.max_price_decimals, eth.max_sig_figs) == (
        "ETH",
        0.0001,
        2,
        5,
    )
    assert eth.tick_size == 1.0  # 5 significant figures at 105,055: whole dollars
    assert hyperliquid_tick(3_123.4, 4) == pytest.approx(0.1)
    assert hyperliquid_tick(0.12345, 0) == pytest.approx(1e-5)
    assert hyperliquid_tick(1.2345, 4) == pytest.approx(0.01)  # 6 - 4 decimals at most


def test_an_unknown_symbol_is_one_error_naming_the_flags(tmp_path, capsys):
    path = tmp_path / "newcoin.gz"
    relabel_binance_capture(BINANCE, path, symbol="NEWCOINUSDT", lines=3_000)
    with pytest.raises(ConfigError, match="--tick-size, --lot-size and --min-notional"):
        ReplayMarket(path)
    assert main(["backtest", "--data", str(path), "--duration", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NEWCOINUSDT" in err[0] and "--tick-size" in err[0]
    overrides = InstrumentConfig(tick_size=0.01, lot_size=0.001, min_notional=5.0)
    assert ReplayMarket(path, overrides=overrides).instrument.min_notional == 5.0
    code = main(
        [
            "backtest",
            "--data",
            str(path),
            "--duration",
            "5",
            "--json",
            "--tick-size",
            "0.01",
            "--lot-size",
            "0.001",
            "--min-notional",
            "5",
        ]
    )
    assert code == 0


def test_instrument_overrides_replace_table_values():
    rules = resolve_instrument(
        "binance-usdm", "BTCUSDT", overrides=InstrumentConfig(min_notional=5.0)
    )
    assert (rules.tick_size, rules.min_notional) == (0.1, 5.0)
    with pytest.raises(ConfigError, match="--sz-decimals"):
        resolve_instrument("hyperliquid", "NEWCOIN")
