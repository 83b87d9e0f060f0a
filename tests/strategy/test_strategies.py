import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_maker.config import AppConfig, LadderConfig, StrategyConfig
from market_maker.model import Instrument, Side
from market_maker.risk import PositionSizer
from market_maker.strategy import (
    AvellanedaStoikovStrategy,
    GlftStrategy,
    LadderStrategy,
    SymmetricStrategy,
    ladder_ticks,
    make_strategy,
)
from tests.stubs import market_params

CFG = StrategyConfig(order_size=0.01, gamma=0.05, min_half_spread_bps=0.0)


def test_glft_quotes_one_level_each_side_around_the_mid():
    alone = StrategyConfig(order_size=0.01, gamma=0.05, min_half_spread_bps=0.0, backup_levels=0)
    quotes = GlftStrategy(alone).quote(market_params())
    assert len(quotes.bids) == len(quotes.asks) == 1
    assert quotes.bids[0].price < 100_000.05 < quotes.asks[0].price
    assert quotes.bids[0].size == quotes.asks[0].size == 0.01


def test_glft_backups_rest_behind_the_quote_each_a_ratio_deeper():
    cfg = StrategyConfig(
        order_size=0.01, min_half_spread_bps=0.0, backup_levels=2, backup_ratio=1.5
    )
    s = GlftStrategy(cfg)
    params = market_params()
    d = s.depths(params)
    quotes = s.quote(params)
    mid, tick = params.mid, params.tick_size
    assert [q.price for q in quotes.bids] == pytest.approx(
        [mid - d.bid_depth * tick, mid - 1.5 * d.bid_depth * tick, mid - 2.25 * d.bid_depth * tick]
    )
    assert [q.price for q in quotes.asks] == pytest.approx(
        [mid + d.ask_depth * tick, mid + 1.5 * d.ask_depth * tick, mid + 2.25 * d.ask_depth * tick]
    )
    assert all(q.size == 0.01 for q in quotes.bids + quotes.asks)


def test_glft_backups_take_only_the_capacity_the_quote_leaves():
    s = GlftStrategy(StrategyConfig(order_size=0.01, min_half_spread_bps=0.0, backup_levels=3))
    # 0.025 of room to buy: the quote gets its 0.01, the backups 0.01 and the last 0.005.
    quotes = s.quote(market_params(position=0.0, dynamic_max_position=0.025))
    assert [q.size for q in quotes.bids] == pytest.approx([0.01, 0.01, 0.005])
    assert sum(q.size for q in quotes.bids) <= 0.025 + 1e-12


def test_glft_fee_floor_keeps_quotes_away_from_the_mid():
    floor = StrategyConfig(order_size=0.01, min_half_spread_bps=5.0)
    d = GlftStrategy(floor).depths(market_params())
    assert d.bid_depth == pytest.approx(5e-4 * 100_000.05 / 0.1)
    assert d.ask_depth == d.bid_depth


def test_glft_widens_in_a_cascade():
    s = GlftStrategy(CFG)
    calm = s.depths(market_params())
    cascade = s.depths(market_params(hawkes_ratio=3.0))
    assert cascade.half_spread == pytest.approx(calm.half_spread * (1 + 0.5 * 2.0))


def test_glft_skew_grows_with_inventory_utilisation():
    s = GlftStrategy(CFG)
    low = s.depths(market_params(position=0.1, dynamic_max_position=10.0))
    high = s.depths(market_params(position=0.1, dynamic_max_position=0.12))
    assert high.skew > low.skew
    assert high.bid_depth > high.ask_depth


def test_glft_sizes_are_capped_by_capacity_including_pending():
    quotes = GlftStrategy(CFG).quote(
        market_params(position=0.995, dynamic_max_position=1.0, pending_asks=1.99)
    )
    assert quotes.bids[0].size == pytest.approx(0.005)
    assert quotes.asks[0].size == pytest.approx(0.005)


def test_glft_at_the_limit_quotes_only_the_reducing_side():
    quotes = GlftStrategy(CFG).quote(market_params(position=-1.0, dynamic_max_position=1.0))
    assert quotes.asks == ()
    assert len(quotes.bids) == 3  # the quote and its two backups


def test_ladder_ticks_are_on_the_grid_and_strictly_outward():
    bids = ladder_ticks(mid_ticks=1000.5, depth0=2.0, levels=5, interval=3, ratio=1.5, bid=True)
    asks = ladder_ticks(mid_ticks=1000.5, depth0=2.0, levels=5, interval=3, ratio=1.5, bid=False)
    assert all(p % 3 == 0 for p in bids + asks)
    assert bids == sorted(bids, reverse=True) and len(set(bids)) == 5
    assert asks == sorted(asks) and len(set(asks)) == 5
    assert bids[0] <= 1000.5 - 2.0 and asks[0] >= 1000.5 + 2.0


def test_ladder_grid_keeps_most_levels_when_the_mid_moves_a_little():
    before = ladder_ticks(mid_ticks=1000.0, depth0=5.0, levels=5, interval=5, ratio=None, bid=True)
    after = ladder_ticks(mid_ticks=1001.0, depth0=5.0, levels=5, interval=5, ratio=None, bid=True)
    assert len(set(before) & set(after)) >= 4


LADDER = LadderConfig(levels=5, target_liquidity=0.05)


def test_ladder_total_size_is_the_target_liquidity():
    quotes = LadderStrategy(CFG, LADDER).quote(market_params(dynamic_max_position=10.0))
    assert len(quotes.bids) == len(quotes.asks) == 5
    assert sum(q.size for q in quotes.bids) == pytest.approx(0.05)
    assert sum(q.size for q in quotes.asks) == pytest.approx(0.05)


def test_ladder_inventory_cut_survives_capacity_capping():
    # Long 0.5 of a 1.0 limit: the bid side (growing) is cut to 50 % of 0.05 = 0.025, which is
    # below the bid capacity of 0.5; capacity must not restore it.
    quotes = LadderStrategy(CFG, LADDER).quote(
        market_params(position=0.5, dynamic_max_position=1.0)
    )
    assert sum(q.size for q in quotes.bids) == pytest.approx(0.025)
    assert sum(q.size for q in quotes.asks) == pytest.approx(0.05)


def test_ladder_capacity_caps_the_total_and_keeps_inner_levels():
    quotes = LadderStrategy(CFG, LADDER).quote(
        market_params(position=0.0, dynamic_max_position=0.003)
    )
    assert sum(q.size for q in quotes.bids) == pytest.approx(0.003)
    assert len(quotes.bids) == 3  # one lot each, the three innermost
    assert quotes.bids[0].price > quotes.bids[-1].price


def test_avellaneda_stoikov_reservation_price_moves_against_inventory():
    s = AvellanedaStoikovStrategy(StrategyConfig(order_size=0.01, min_half_spread_bps=0.0))
    flat = s.quote(market_params(sigma_ticks=2.0))
    long = s.quote(market_params(sigma_ticks=2.0, position=0.05))
    assert long.bids[0].price < flat.bids[0].price
    assert long.asks[0].price < flat.asks[0].price


def test_symmetric_ignores_inventory():
    s = SymmetricStrategy(StrategyConfig(symmetric_half_spread_bps=10.0))
    quotes = s.quote(market_params(position=0.3))
    assert quotes.bids[0].price == pytest.approx(100_000.05 * (1 - 1e-3))
    assert quotes.asks[0].price == pytest.approx(100_000.05 * (1 + 1e-3))


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("glft", GlftStrategy),
        ("ladder", LadderStrategy),
        ("avellaneda_stoikov", AvellanedaStoikovStrategy),
        ("symmetric", SymmetricStrategy),
    ],
)
def test_strategy_selected_by_config(kind, cls):
    assert isinstance(make_strategy(AppConfig(strategy=StrategyConfig(kind=kind))), cls)


@settings(max_examples=400)
@given(
    tick_exp=st.integers(-4, 1),
    mid_ticks=st.integers(50, 10**10),
    sig_figs=st.sampled_from([None, 5]),
    min_notional=st.sampled_from([0.0, 10.0, 1_000.0]),
    sigma_ticks=st.floats(0.01, 500.0),
    q_frac=st.floats(-1.2, 1.2),
    pending=st.floats(0.0, 2.0),
    target=st.floats(0.0, 3.0),
    levels=st.integers(1, 8),
    spacing=st.sampled_from(["geometric", "fixed"]),
    interval=st.sampled_from([None, 1, 7]),
    touch=st.integers(-40, 40),
)
def test_the_ladders_exact_levels_are_the_sizers_rounding_of_its_quotes(
    tick_exp,
    mid_ticks,
    sig_figs,
    min_notional,
    sigma_ticks,
    q_frac,
    pending,
    target,
    levels,
    spacing,
    interval,
    touch,
):
    """The engine takes the ladder's ticks and lots straight (no float price per level); they
    must be exactly what the one rounding path makes of its float quotes, clamp and minimum
    notional included, wherever the touch is."""
    tick = 10.0**tick_exp
    if sig_figs is not None and tick_exp > 0:
        tick = 1.0
    lot = 0.001
    inst = Instrument(
        symbol="X", tick_size=tick, lot_size=lot, min_notional=min_notional, max_sig_figs=sig_figs
    )
    sizer = PositionSizer(inst)
    mid = mid_ticks * tick
    limit = 1.0
    params = market_params(
        mid=mid,
        best_bid=mid - tick,
        best_ask=mid + tick,
        tick_size=tick,
        lot_size=lot,
        sigma=sigma_ticks * tick / mid,
        sigma_ticks=sigma_ticks,
        position=round(q_frac * limit, 3),
        pending_bids=pending,
        pending_asks=pending / 2,
        dynamic_max_position=limit,
        target_liquidity=target,
    )
    ladder = LadderStrategy(
        CFG,
        LadderConfig(
            levels=levels, target_liquidity=target, spacing=spacing, interval_ticks=interval
        ),
    )
    best_bid = mid_ticks - 1 + touch
    best_ask = mid_ticks + 1 + touch
    quotes = ladder.quote(params)
    expected = (
        sizer.exact_quotes(Side.BUY, quotes.bids, best_bid, best_ask),
        sizer.exact_quotes(Side.SELL, quotes.asks, best_bid, best_ask),
    )
    assert ladder.wanted(params, sizer, best_bid, best_ask) == expected


def test_glft_rests_no_backup_while_reducing():
    from market_maker.risk.kill_switch import TradingState

    s = GlftStrategy(StrategyConfig(order_size=0.01, min_half_spread_bps=0.0, backup_levels=2))
    params = market_params(
        position=0.03, dynamic_max_position=0.02, trading_state=TradingState.REDUCING
    )
    assert len(s.quote(params).asks) == 1  # the room behind it is the escalation's
