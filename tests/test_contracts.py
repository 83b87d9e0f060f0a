"""Contract arithmetic against hand-computed figures: inverse value, PnL in coin, the limit in
contracts, spot balances, funding and fee schedules."""

import math

import msgspec
import pytest

from market_maker.backtest.analytics import FillLedger
from market_maker.config import AppConfig, FeesConfig
from market_maker.engine import QuoteEngine
from market_maker.errors import ConfigError
from market_maker.fees import apply_fees, rates_from_user_fees
from market_maker.funding import (
    FundingModel,
    FundingSeries,
    funding_model,
    funding_payment,
    next_funding_ns,
)
from market_maker.instruments import resolve_instrument
from market_maker.model import (
    AccountUpdate,
    BookUpdate,
    Fill,
    FundingPayment,
    FundingRate,
    Instrument,
    InstrumentKind,
    Place,
    Side,
    Trade,
)
from market_maker.venues import ExchangeCore, FeeModel, LatencyModel
from tests.venues.test_exchange import ScriptedMarket

S = 1_000_000_000
BTC_INVERSE = Instrument(
    symbol="BTCUSD_PERP",
    tick_size=0.1,
    lot_size=1.0,
    kind=InstrumentKind.INVERSE,
    contract_size=100.0,
    settlement_currency="BTC",
    venue="binance-coinm",
)


def test_inverse_contract_is_worth_its_face_value_in_usd_and_face_over_price_in_coin():
    # 5 contracts of 100 USD: 500 USD whatever the price; 500 / 50,000 = 0.01 BTC.
    assert BTC_INVERSE.value_usd(5.0, 50_000.0) == 500.0
    assert BTC_INVERSE.value_usd(5.0, 25_000.0) == 500.0
    assert BTC_INVERSE.to_settlement(500.0, 50_000.0) == pytest.approx(0.01)


def test_inverse_pnl_in_coin_when_long_and_short():
    one_usd = msgspec.structs.replace(BTC_INVERSE, contract_size=1.0)
    # Binance's COIN-M formula: 500,000 contracts of 1 USD long from 5,000 to 6,000:
    # 500,000 * (1/5,000 - 1/6,000) = 100 - 83.333... = 16.667 BTC; to 4,000: -25 BTC.
    assert one_usd.pnl_settlement(500_000.0, 5_000.0, 6_000.0) == pytest.approx(16.666667)
    assert one_usd.pnl_settlement(500_000.0, 5_000.0, 4_000.0) == pytest.approx(-25.0)
    assert one_usd.pnl_settlement(-500_000.0, 5_000.0, 4_000.0) == pytest.approx(25.0)


def test_shipped_table_knows_coin_m_and_spot_markets_in_their_own_terms():
    eth = resolve_instrument("binance-coinm", "ETHUSD_PERP")
    assert eth.kind is InstrumentKind.INVERSE and eth.contract_size == 10.0
    assert eth.settlement_currency == "ETH" and eth.lot_size == 1.0 and eth.min_notional == 0.0
    spot = resolve_instrument("binance-spot", "BTCUSDT")
    assert spot.kind is InstrumentKind.SPOT and spot.tick_size == 0.01
    assert spot.lot_size == 0.00001 and spot.settlement_currency == "USDT"
    perp = resolve_instrument("binance-usdm", "BTCUSDT")
    assert perp.kind is InstrumentKind.LINEAR and perp.tick_size == 0.1
    assert (perp.maker_fee_bps, perp.taker_fee_bps) == (2.0, 5.0)


def test_unknown_inverse_symbol_names_the_flags_including_contract_size():
    with pytest.raises(ConfigError, match="--contract-size"):
        resolve_instrument("binance-coinm", "XYZUSD_PERP")


def _engine_limit(instrument: Instrument, mid: float) -> tuple[float, float | None]:
    engine = QuoteEngine(AppConfig(), instrument)
    engine.on_event(AccountUpdate(ts_ns=0, account_value=10_000.0, balance=10_000.0))
    half = instrument.tick_size
    engine.on_event(BookUpdate(ts_ns=S, bids=((mid - half, 5.0),), asks=((mid + half, 5.0),)))
    status = engine.status()
    return status.limits.effective_max_position, status.limits.max_position_value


def test_the_limit_in_contracts_of_an_inverse_contract_is_the_usd_limit_over_its_face_value():
    contracts, value = _engine_limit(BTC_INVERSE, 50_000.0)
    assert value is not None and value > 0.0
    assert contracts == pytest.approx(value / 100.0)
    # The same USD limit at half the price is the same number of contracts (a linear
    # contract's limit doubles instead).
    again, value2 = _engine_limit(BTC_INVERSE, 25_000.0)
    assert value2 == pytest.approx(value)
    assert again == pytest.approx(contracts)
    linear = Instrument(symbol="BTCUSDT", tick_size=0.1, lot_size=0.001)
    lin1, v1 = _engine_limit(linear, 50_000.0)
    lin2, _ = _engine_limit(linear, 25_000.0)
    assert lin1 == pytest.approx(v1 / 50_000.0) and lin2 == pytest.approx(2 * lin1)


def _book(ts, bid, ask):
    return BookUpdate(ts_ns=ts, bids=((bid, 10.0),), asks=((ask, 10.0),))


def _drain(ex):
    out = []
    while (ev := ex.pop_next()) is not None:
        out.append(ev)
    return out


def test_inverse_round_trip_volume_fees_and_pnl_in_coin_and_usd_by_hand():
    # Buy 3 contracts (300 USD) at 50,000.0, sell them at 50,010.0; maker fee 2 bp.
    events = [
        _book(0, 49_999.0, 50_001.0),
        _book(1 * S, 49_999.0, 50_001.0),
        Trade(ts_ns=2 * S, price=49_990.0, size=50.0, aggressor=Side.SELL),
        _book(3 * S, 50_009.0, 50_011.0),
        Trade(ts_ns=5 * S, price=50_020.0, size=50.0, aggressor=Side.BUY),
        _book(6 * S, 50_009.0, 50_011.0),
    ]
    ex = ExchangeCore(
        BTC_INVERSE,
        ScriptedMarket(events),
        fees=FeeModel(maker_bps=2.0),
        order_latency=LatencyModel(base_ms=1.0),
        account_interval_s=1e6,
        timer_interval_s=1e6,
    )
    first = ex.pop_next()
    ex.submit([Place(cloid="b", side=Side.BUY, price=50_000.0, size=3.0)], first.ts_ns)
    while (ev := ex.pop_next()) is not None and not isinstance(ev, Fill):
        pass
    ex.submit([Place(cloid="s", side=Side.SELL, price=50_010.0, size=3.0)], 3 * S + 1)
    _drain(ex)
    assert ex.position == 0.0
    st = ex.stats
    assert st.maker_volume_usd == pytest.approx(600.0)
    # 300/50,000 + 300/50,010 = 0.006 + 0.00599880024 BTC
    assert st.maker_volume_settlement == pytest.approx(0.011998800240, rel=1e-10)
    assert st.fees_usd == pytest.approx(0.12)  # 2 bp of 600 USD
    # 0.06/50,000 + 0.06/50,010 = 1.2e-6 + 1.19976005e-6 BTC
    assert st.fees_settlement == pytest.approx(2.39976005e-6, rel=1e-8)
    # 300 * (1/50,000 - 1/50,010) = 1.19976005e-6 BTC gross, less the fees: -1.2e-6 BTC.
    assert ex.pnl_settlement() == pytest.approx(1.19976005e-6 - 2.39976005e-6, rel=1e-8)
    # In USD at the last mid (50,010): -1.2e-6 * 50,010 = -0.060012 USD.
    assert ex.pnl_usd() == pytest.approx(-1.2e-6 * 50_010.0, rel=1e-6)


def test_spot_refuses_a_sell_without_the_base_asset_and_a_buy_beyond_the_cash():
    spot = resolve_instrument("binance-spot", "BTCUSDT")
    events = [_book(0, 99.0, 101.0), _book(10 * S, 99.0, 101.0)]
    ex = ExchangeCore(
        spot,
        ScriptedMarket(events),
        initial_equity=1_000.0,
        order_latency=LatencyModel(base_ms=1.0),
        account_interval_s=1e6,
        timer_interval_s=1e6,
    )
    first = ex.pop_next()
    ex.submit(
        [
            Place(cloid="s", side=Side.SELL, price=101.0, size=0.1),  # holds no BTC
            Place(cloid="b1", side=Side.BUY, price=99.0, size=9.0),  # 891 of 1,000 USDT
            Place(cloid="b2", side=Side.BUY, price=99.0, size=2.0),  # 198 more: too much
        ],
        first.ts_ns,
    )
    acks = {a.cloid: a for a in _drain(ex) if hasattr(a, "status")}
    assert acks["s"].reason == acks["b2"].reason == "insufficient balance"
    assert acks["b1"].status == "accepted"
    assert ex.stats.rejected_balance == 2


def test_spot_engine_has_no_leverage_and_sells_only_what_it_holds():
    spot = resolve_instrument("binance-spot", "BTCUSDT")
    engine = QuoteEngine(AppConfig(), spot)
    assert engine.config.risk.max_leverage == 1.0
    engine.on_event(AccountUpdate(ts_ns=0, account_value=10_000.0, balance=10_000.0))
    engine.on_event(_book(S, 60_000.0, 60_000.5))
    bids, asks = engine.wanted
    assert bids and not asks  # nothing held: nothing to sell


def test_funding_payment_sign_for_long_and_short_by_hand():
    inst = Instrument(symbol="BTC", tick_size=1.0, lot_size=0.001, venue="hyperliquid")
    # 0.5 BTC long at 60,000, rate +0.01 %: pays 0.5 * 60,000 * 0.0001 = 3 USD.
    assert funding_payment(inst, 0.5, 0.0001, 60_000.0) == pytest.approx(-3.0)
    assert funding_payment(inst, -0.5, 0.0001, 60_000.0) == pytest.approx(3.0)
    # Hyperliquid caps the hourly rate at 4 %.
    model = funding_model(inst)
    assert model is not None and model.interval_s == 3_600.0 and model.cap == 0.04
    assert funding_payment(inst, 1.0, 0.10, 100.0, cap=model.cap) == pytest.approx(-4.0)
    # Inverse: 10 contracts of 100 USD at 50,000 and +0.01 %: 1,000/50,000 * 1e-4 BTC.
    assert funding_payment(BTC_INVERSE, 10.0, 0.0001, 50_000.0) == pytest.approx(-2e-6)
    assert funding_model(resolve_instrument("binance-spot", "BTCUSDT")) is None
    binance = funding_model(resolve_instrument("binance-usdm", "BTCUSDT"))
    assert binance is not None and binance.interval_s == 28_800.0
    # 2024-08-08 23:54:15 UTC: the next Binance funding time is 2024-08-09 00:00:00 UTC.
    assert next_funding_ns(binance, 1_723_161_255 * S) == 1_723_161_600 * S


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_funding_is_in_the_attribution_and_the_equity_the_kill_switch_reads(side):
    inst = Instrument(symbol="T", tick_size=1.0, lot_size=0.001)
    aggressor = Side.SELL if side is Side.BUY else Side.BUY
    price = 99.0 if side is Side.BUY else 101.0
    events = [
        _book(0, 99.0, 101.0),
        Trade(ts_ns=1 * S, price=price, size=5.0, aggressor=aggressor),
        _book(2 * S, 99.0, 101.0),
        _book(13 * S, 99.0, 101.0),
    ]
    ex = ExchangeCore(
        inst,
        ScriptedMarket(events),
        fees=FeeModel(maker_bps=0.0),
        order_latency=LatencyModel(base_ms=1.0),
        account_interval_s=1e6,
        timer_interval_s=1e6,
        funding=FundingModel(venue="test", interval_s=10.0),
        funding_rates=FundingSeries.constant(0.001),
    )
    ledger = ex.ledger = FillLedger()
    first = ex.pop_next()
    ex.submit([Place(cloid="o", side=side, price=price, size=2.0)], first.ts_ns)
    delivered = [first, *_drain(ex)]
    sign = 1.0 if side is Side.BUY else -1.0
    # The venue tells the engine its rate, and each payment on the account's stream.
    rates = [e for e in delivered if isinstance(e, FundingRate)]
    assert [(e.ts_ns, e.rate, e.interval_s) for e in rates] == [(0, 0.001, 10.0)]
    (paid,) = [e for e in delivered if isinstance(e, FundingPayment)]
    assert (paid.ts_ns, paid.position) == (10 * S, 2.0 * sign)
    assert paid.amount == pytest.approx(-0.2 * sign)
    fed = QuoteEngine(AppConfig(), inst)
    for ev in delivered:
        fed.on_event(ev)
    assert fed.status().funding_usd == pytest.approx(-0.2 * sign)
    assert ex.position == 2.0 * sign
    # One funding time (t = 10 s): 2 contracts * mid 100 * 0.1 % = 0.2 USD, paid when long.
    assert ex.stats.funding_payments == 1
    assert ex.stats.funding_usd == pytest.approx(-0.2 * sign)
    attribution = ledger.attribution(100.0)
    assert attribution.funding_usd == pytest.approx(-0.2 * sign)
    # Spread (1 USD a contract either way, 2 contracts) plus funding is the equity change.
    account = ex.account_update(14 * S)
    assert account.account_value == pytest.approx(10_000.0 + 2.0 - 0.2 * sign)
    engine = QuoteEngine(AppConfig(), inst)
    engine.on_event(account)
    assert engine.kill_switch.account_value == pytest.approx(10_000.0 + 2.0 - 0.2 * sign)


def test_fee_schedule_tiers_rebates_and_user_fees():
    hl = resolve_instrument("hyperliquid", "BTC", price=100_000.0)
    base, rates = apply_fees(hl, FeesConfig())
    assert (base.maker_fee_bps, base.taker_fee_bps, rates.source) == (1.5, 4.5, "table")
    tier, _ = apply_fees(hl, FeesConfig(volume_14d_usd=30e6))  # above 25M: 0.008 / 0.035 %
    assert (tier.maker_fee_bps, tier.taker_fee_bps) == (0.8, 3.5)
    rebate, _ = apply_fees(hl, FeesConfig(volume_14d_usd=30e6, maker_share_pct=2.0))
    assert rebate.maker_fee_bps == -0.2  # above 1.5 % of maker volume: -0.002 %
    live = rates_from_user_fees("0.00012", "0.0004")
    got, r = apply_fees(hl, FeesConfig(maker_bps=9.0), live=live)
    assert (got.maker_fee_bps, got.taker_fee_bps, r.source) == (
        pytest.approx(1.2),
        pytest.approx(4.0),
        "userFees",
    )
    with pytest.raises(ConfigError, match=r"\[fees\]"):
        apply_fees(resolve_instrument("binance-usdm", "BTCUSDT"), FeesConfig(volume_14d_usd=1.0))


def test_fee_floor_reads_the_markets_maker_fee_only_when_configured():
    inst = Instrument(symbol="T", tick_size=1.0, lot_size=0.001, maker_fee_bps=2.5)
    assert QuoteEngine(AppConfig(), inst).config.strategy.min_half_spread_bps == 1.0
    cfg = AppConfig()
    cfg = msgspec.structs.replace(
        cfg, strategy=msgspec.structs.replace(cfg.strategy, fee_floor_from_fees=True)
    )
    assert QuoteEngine(cfg, inst).config.strategy.min_half_spread_bps == 2.5
    rebate = msgspec.structs.replace(inst, maker_fee_bps=-0.3)
    assert QuoteEngine(cfg, rebate).config.strategy.min_half_spread_bps == 0.0
    assert math.isfinite(QuoteEngine(cfg, rebate).unit_value) is False  # no mid yet


def test_the_engines_own_pnl_of_an_inverse_contract_is_in_coin_at_the_mid():
    engine = QuoteEngine(AppConfig(), BTC_INVERSE)
    engine.on_event(_book(0, 49_999.9, 50_000.1))
    # Bought 3 contracts at 50,000 (the fill's fee 1.2e-6 BTC), sold 3 at 50,010.
    for i, (side, px) in enumerate(((Side.BUY, 50_000.0), (Side.SELL, 50_010.0))):
        engine.on_event(
            Fill(
                ts_ns=(i + 1) * S,
                cloid=f"x{i}",
                price=px,
                size=3.0,
                side=side,
                fill_id=f"f{i}",
                fee=1.2e-6,
            )
        )
    engine.on_event(_book(3 * S, 50_009.9, 50_010.1))
    # 300 * (1/50,000 - 1/50,010) - 2.4e-6 BTC, at the mid 50,010.
    expected = (300.0 * (1 / 50_000.0 - 1 / 50_010.0) - 2.4e-6) * 50_010.0
    assert engine.pnl_usd() == pytest.approx(expected, rel=1e-9)
