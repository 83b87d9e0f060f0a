"""HIP-3 builder-deployed perps against the loopback fake: ``--asset dex:COIN`` resolves
through ``perpDexs`` and the dex's ``meta`` to asset id ``100000 + dex x 10000 + index``,
isolated margin, the dex's fee multiplier and its oracle."""

from __future__ import annotations

import asyncio
import json

import pytest

from market_maker.cli import main
from market_maker.errors import VenueError
from market_maker.venues.hyperliquid.client import ClientConfig
from market_maker.venues.hyperliquid.fake import FakeHyperliquid
from market_maker.venues.hyperliquid.feed import HyperliquidFeed
from market_maker.venues.hyperliquid.hip3 import asset_id, fee_multiplier, split_coin
from tests.fakes.hyperliquid import FakeInThread

USER = "0x" + "ab" * 20


def test_asset_id_name_and_fee_rules():
    assert split_coin("xyz:TSLA") == ("xyz", "TSLA") and split_coin("BTC") is None
    assert asset_id(1, 0) == 110_000 and asset_id(2, 1) == 120_001
    assert fee_multiplier(1.0) == 2.0 and fee_multiplier(0.5) == 1.5 and fee_multiplier(2.0) == 4.0
    with pytest.raises(ValueError):
        split_coin(":TSLA")
    with pytest.raises(ValueError):
        asset_id(0, 3)  # index 0 is Hyperliquid's own dex


def test_discover_a_builder_dex_market_through_perp_dexs_and_the_dex_meta():
    async def run() -> None:
        async with FakeHyperliquid(coin="xyz:TSLA", mid=250.0, tick=0.01, sz_decimals=2) as fake:
            feed = HyperliquidFeed("xyz:TSLA", ClientConfig(url=fake.url))
            try:
                info = await feed.discover(address=USER)
            finally:
                await feed.close()
        # xyz is third in perpDexs (index 2), TSLA second in its meta (index 1).
        assert info.asset_index == 120_001 == fake.asset_id
        assert info.dex == "xyz" and info.isolated and info.oracle == "0x" + "0a" * 20
        assert info.max_leverage == 10 and info.sz_decimals == 2
        # userFees' base rates (0.015 % / 0.045 %) times the dex's multiplier (scale 1: 2x).
        assert info.instrument.maker_fee_bps == pytest.approx(3.0)
        assert info.instrument.taker_fee_bps == pytest.approx(9.0)
        assert info.fee_multiplier == 2.0 and "fee scale" in info.fee_source
        assert info.instrument.tick_size == pytest.approx(0.01)

    asyncio.run(run())


def test_an_unknown_dex_is_one_error_naming_the_dexes_there_are():
    async def run() -> None:
        async with FakeHyperliquid(coin="xyz:TSLA", mid=250.0, tick=0.01, sz_decimals=2) as fake:
            feed = HyperliquidFeed("nope:TSLA", ClientConfig(url=fake.url))
            try:
                with pytest.raises(VenueError, match=r"no perp dex 'nope' .*abc, xyz"):
                    await feed.discover()
            finally:
                await feed.close()

    asyncio.run(run())


def test_paper_run_on_a_builder_dex_market(capsys):
    with FakeInThread(coin="xyz:TSLA", mid=250.0, tick=0.01, sz_decimals=2) as fake:
        code = main(
            [
                "run",
                "--venue",
                "hyperliquid",
                "--asset",
                "xyz:TSLA",
                "--ws-url",
                fake.url,
                "--duration",
                "2",
            ]
        )
    assert code == 0
    events = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    start = next(e for e in events if e["event"] == "paper_trading")
    assert start["asset_index"] == 120_001 and start["asset"] == "xyz:TSLA"
    assert start["maker_fee_bps"] == pytest.approx(3.0)  # table base 1.5 bp x 2
    assert start["dex"] == "xyz" and start["isolated"] is True
