"""Funding and fee tiers live on Hyperliquid, through the loopback fake on 127.0.0.1: the rate
from ``activeAssetCtx``, each payment from ``userFundings`` once (a resubscribe's snapshot is
not counted again) and in the PnL, and ``userFees`` read again with the account sync so a new
tier reaches the fee floor and the summary."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from market_maker.config import AppConfig, StrategyConfig
from market_maker.engine import QuoteEngine
from market_maker.funding import FundingModel
from market_maker.model import (
    BookUpdate,
    FeeUpdate,
    FundingPayment,
    FundingRate,
    Instrument,
    Place,
    Side,
    Trade,
)
from market_maker.venues import ExchangeCore, LatencyModel
from market_maker.venues.hyperliquid.client import ClientConfig
from market_maker.venues.hyperliquid.fake_exchange import FakeHyperliquidExchange
from market_maker.venues.hyperliquid.feed import HyperliquidFeed
from market_maker.venues.hyperliquid.messages import FrameDecoder, WsActiveAssetCtx
from tests.fakes.hyperliquid import until
from tests.venues.test_exchange import ScriptedMarket
from tests.venues.test_hyperliquid_live import SIGNER, USER, Live, binding, ends_flat, trade

S = 1_000_000_000


def test_active_asset_ctx_reads_the_rate_as_text_or_number():
    decoder = FrameDecoder()
    for funding in ('"0.0000125"', "0.0000125"):
        frame = '{"channel":"activeAssetCtx","data":{"coin":"BTC","ctx":{"funding":%s}}}'
        decoded = decoder.decode(frame % funding)
        assert decoded is not None and isinstance(decoded[1], WsActiveAssetCtx)
        assert float(str(decoded[1].ctx.funding)) == 0.0000125


def test_paper_funding_follows_the_live_rate_and_is_paid_at_the_funding_time():
    inst = Instrument(symbol="T", tick_size=1.0, lot_size=0.001)

    def book(t):
        return BookUpdate(ts_ns=t, bids=((99.0, 1.0),), asks=((101.0, 1.0),))

    events = [book(0), Trade(ts_ns=S, price=99.0, size=5.0, aggressor=Side.SELL)]
    events += [book(2 * S), book(13 * S)]
    ex = ExchangeCore(
        inst,
        ScriptedMarket(events),
        order_latency=LatencyModel(base_ms=1.0),
        account_interval_s=1e6,
        timer_interval_s=1e6,
        funding=FundingModel(venue="test", interval_s=10.0),  # no rate known yet
    )
    assert ex.funding is None

    first = ex.pop_next()
    ex.set_funding_rate(0.002)
    ex.submit([Place(cloid="o", side=Side.BUY, price=99.0, size=2.0)], first.ts_ns)
    out = []
    while (ev := ex.pop_next()) is not None:
        out.append(ev)
    assert next(e.rate for e in out if isinstance(e, FundingRate)) == 0.002
    (paid,) = [e for e in out if isinstance(e, FundingPayment)]
    # A long of 2 at the mid 100, 0.2 % at t = 10 s: pays 0.4.
    assert paid.ts_ns == 10 * S and paid.amount == pytest.approx(-0.4)


@pytest.mark.slow
def test_paper_feed_hands_the_engine_the_rate_from_active_asset_ctx():
    async def main() -> None:
        async with FakeHyperliquidExchange(funding_rate=0.0003) as fake:
            feed = HyperliquidFeed("BTC", ClientConfig(url=fake.url))
            got = []
            await feed.start(got.append)
            await until(lambda: feed.stats.funding_rates >= 1, 5.0)
            await fake.set_funding_rate(-0.0002)
            await until(lambda: feed.stats.funding_rates >= 2, 5.0)
            await feed.close()

        rates = [(e.rate, e.interval_s) for e in got if isinstance(e, FundingRate)]
        assert rates[:2] == [(0.0003, 3_600.0), (-0.0002, 3_600.0)]

    asyncio.run(main())


@pytest.mark.slow
def test_live_funding_payments_are_booked_once_and_a_new_fee_tier_reaches_the_floor():
    paid: list[dict] = []

    async def during(live: Live) -> None:
        fake = during.fake  # type: ignore[attr-defined]
        engine, venue = live.engine, live.venue
        await until(lambda: engine.funding.rate == 0.0004, 5.0)  # activeAssetCtx reached it
        await until(lambda: fake.position_lots != 0, 15.0)
        for _ in range(2):  # two funding times (a payment is named by its time and coin)
            payment = fake.pay_funding()
            if payment is not None:
                paid.append(payment)
            await asyncio.sleep(0.01)
        await until(lambda: venue.stats.fundings == len(paid), 5.0)
        # A reconnect resubscribes: the snapshot repeats both payments, counted once.
        await fake.drop(clean=True)
        await until(lambda: venue.client.connected and venue.stats.history_fundings == 0, 10.0)
        await asyncio.sleep(1.0)
        # The venue moves the account to the 25M tier (0.008 % maker, 0.035 % taker).
        fake.maker_fee_rate, fake.taker_fee_rate = 0.00008, 0.00035
        await until(lambda: engine.instrument.maker_fee_bps == 0.8, 5.0)

    async def main() -> None:
        async with FakeHyperliquidExchange(
            agent=SIGNER.address,
            user=USER,
            sweep_ticks=12.0,
            buy_share=0.15,  # sellers dominate: our bids fill, a long builds
            funding_rate=0.0004,
        ) as fake:
            during.fake = fake  # type: ignore[attr-defined]
            base = binding()
            config = msgspec.structs.replace(
                base,
                strategy=StrategyConfig(fee_floor_from_fees=True),
            )
            live = await trade(fake, 14.0, during, config=config, account_interval_s=0.5)
            ends_flat(live, fake)
            engine, venue, summary = live.engine, live.venue, live.summary
            assert paid and venue.stats.fundings == len(paid)
            assert venue.stats.duplicate_fundings >= len(paid)  # the resubscribe's snapshot
            # Each payment in the engine's PnL once, as the venue booked it (usdc received).
            booked = sum(float(p["usdc"]) for p in paid)
            assert engine.status().funding_usd == pytest.approx(booked, abs=1e-9)
            assert summary.funding_usd == pytest.approx(booked, abs=1e-9)
            assert summary.funding_payments == len(paid)
            # At a positive rate a long pays and a short receives: 0.04 % of about 1 to 3 kUSD.
            for p in paid:
                szi, usdc = float(p["szi"]), float(p["usdc"])
                assert usdc * szi < 0 and abs(usdc) == pytest.approx(
                    0.0004 * abs(szi) * 100_000.0, rel=0.01
                )
            # The engine's PnL is the venue's account change at the engine's mid: fills,
            # fees and funding all in it.
            venue_pnl = fake.cash + fake.position * engine.mid
            assert engine.pnl_usd() == pytest.approx(venue_pnl, abs=1e-6)
            # The new tier: read with the account sync, in the fee floor and the summary.
            assert venue.stats.fee_changes == 1 and venue.stats.fee_reads >= 3
            assert summary.maker_fee_bps == 0.8 and summary.taker_fee_bps == 3.5
            assert engine.config.strategy.min_half_spread_bps == 0.8
            assert engine.status().counters.fee_updates == 1

    asyncio.run(main())


def test_a_fee_update_moves_the_floor_and_bad_rates_are_refused():

    inst = Instrument(symbol="BTC", tick_size=1.0, lot_size=0.001, maker_fee_bps=1.5)
    e = QuoteEngine(AppConfig(strategy=StrategyConfig(fee_floor_from_fees=True)), inst)
    assert e.config.strategy.min_half_spread_bps == 1.5
    e.on_event(FeeUpdate(ts_ns=S, maker_bps=-0.1, taker_bps=4.0, source="userFees"))
    # A rebate floors at 0; the instrument carries the new rates.
    assert e.config.strategy.min_half_spread_bps == 0.0
    assert (e.instrument.maker_fee_bps, e.instrument.taker_fee_bps) == (-0.1, 4.0)
    e.on_event(FeeUpdate(ts_ns=2 * S, maker_bps=float("nan"), taker_bps=4.0))
    e.on_event(FeeUpdate(ts_ns=3 * S, maker_bps=500.0, taker_bps=4.0))
    assert e.instrument.maker_fee_bps == -0.1
    assert e.status().counters.bad_fees == 2 and e.status().counters.fee_updates == 1
