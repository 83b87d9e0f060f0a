import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market_maker.config import ConvictionConfig
from market_maker.model import Instrument, Quote, Side
from market_maker.risk import DynamicSizer, PositionSizer

BTC = Instrument(symbol="BTC", tick_size=0.1, lot_size=0.001, min_notional=10.0)
# Hyperliquid BTC: szDecimals 5 -> at most 6 - 5 = 1 price decimal and 5 significant figures.
HL_BTC = Instrument(
    symbol="BTC",
    tick_size=0.1,
    lot_size=0.00001,
    min_notional=10.0,
    max_sig_figs=5,
    max_price_decimals=1,
)


def test_bids_round_down_and_asks_round_up():
    sizer = PositionSizer(BTC)
    assert sizer.price_ticks(100.37, Side.BUY) == 1003
    assert sizer.price_ticks(100.37, Side.SELL) == 1004


def test_on_grid_prices_survive_float_noise():
    sizer = PositionSizer(BTC)
    # 100.3 / 0.1 = 1002.9999999999999 in floating point
    assert sizer.price_ticks(100.3, Side.BUY) == 1003
    assert sizer.price_ticks(100.3, Side.SELL) == 1003
    assert sizer.size_lots(0.003) == 3


def test_sizes_round_down():
    sizer = PositionSizer(BTC)
    assert sizer.size_lots(0.0019999) == 1
    assert sizer.size_lots(-1.0) == 0
    assert sizer.size_lots(math.nan) == 0


def test_wire_strings_come_from_integers():
    sizer = PositionSizer(BTC)
    assert sizer.format_price(10_029) == "1002.9"
    assert sizer.format_price(10_020) == "1002"
    assert sizer.format_price(1_000_001) == "100000.1"
    assert sizer.format_size(1234) == "1.234"
    assert sizer.format_size(1000) == "1"
    assert sizer.ticks_to_price(999_774) == 99977.4


def test_hyperliquid_five_significant_figures():
    sizer = PositionSizer(HL_BTC)
    assert sizer.price_ticks(97123.45, Side.BUY) == 971230  # 97123
    assert sizer.price_ticks(97123.45, Side.SELL) == 971240  # 97124
    assert sizer.price_ticks(1234.567, Side.BUY) == 12345  # 1234.5: 5 figures, 1 decimal
    assert sizer.price_ticks(123456.7, Side.SELL) == 1234570  # integer prices are always valid
    assert sizer.format_price(971240) == "97124"


@given(st.floats(1.0, 1e6), st.sampled_from([Side.BUY, Side.SELL]))
def test_hyperliquid_prices_obey_the_rules_and_never_cross_the_wanted_side(price, side):
    sizer = PositionSizer(HL_BTC)
    ticks = sizer.price_ticks(price, side)
    text = sizer.format_price(ticks)
    digits = text.replace(".", "").lstrip("0")
    is_integer = "." not in text
    assert is_integer or len(digits.rstrip("0")) <= 5
    assert len(text.partition(".")[2]) <= 1
    exact = ticks / 10
    if side is Side.BUY:
        assert exact <= price * (1 + 1e-12)
    else:
        assert exact >= price * (1 - 1e-12)


@given(
    st.floats(0.5, 1e6),
    st.floats(0.0, 1e3),
    st.integers(1, 10_000_000),
    st.integers(1, 1000),
    st.sampled_from([Side.BUY, Side.SELL]),
)
def test_post_only_quotes_never_cross_the_touch(price, size, best_bid, spread, side):
    sizer = PositionSizer(BTC)
    best_ask = best_bid + spread
    exact = sizer.quote(side, price, size, best_bid, best_ask)
    if exact is None:
        return
    ticks, lots = exact
    if side is Side.BUY:
        assert ticks <= best_bid < best_ask
    else:
        assert ticks >= best_ask > best_bid
    assert lots * 0.001 <= size * (1 + 1e-9)
    assert ticks * 0.1 * lots * 0.001 >= 10.0 * (1 - 1e-9)


@given(st.floats(1.0, 1e6), st.sampled_from([Side.BUY, Side.SELL]), st.sampled_from([BTC, HL_BTC]))
def test_the_hot_path_rounds_exactly_like_price_ticks(price, side, instrument):
    sizer = PositionSizer(instrument)
    expected = sizer.price_ticks(price, side)
    # best bid far above and best ask far below: a touch that clamps nothing
    exact = sizer.exact_quotes(side, (Quote(price, 1e6),), 10**12, 1)
    assert exact and exact[0][0] == expected


def test_orders_under_min_notional_are_dropped():
    sizer = PositionSizer(BTC)
    assert sizer.quote(Side.BUY, 100_000.0, 0.00009, 10**6, 10**6 + 1) is None
    assert sizer.min_lots(1_000_000) == 1  # 0.001 BTC at 100,000 = 100 USD
    assert sizer.min_lots(10_000) == 10  # at 1,000 USD one lot is 1 USD: need 10


def test_max_sig_figs_needs_a_power_of_ten_tick():
    with pytest.raises(ValueError):
        PositionSizer(Instrument(symbol="X", tick_size=0.5, lot_size=1.0, max_sig_figs=5))


# The original conviction-sizer cases: max 1000 USD, fractions 0.3..1.0, portfolio cap 5000.
CONVICTION = ConvictionConfig(
    enabled=True,
    min_fraction=0.3,
    max_fraction=1.0,
    max_position_usd=1000.0,
    max_portfolio_exposure_usd=5000.0,
)


@pytest.mark.parametrize(
    ("score", "budget"), [(0.9, 930.0), (0.3, 510.0), (0.0, 300.0), (0.5, 650.0)]
)
def test_conviction_budget_cases(score, budget):
    sizer = DynamicSizer(CONVICTION, PositionSizer(BTC))
    assert sizer.budget_usd(score, 0.0) == pytest.approx(budget)


def test_conviction_budget_capped_by_remaining_portfolio_room():
    sizer = DynamicSizer(CONVICTION, PositionSizer(BTC))
    assert sizer.budget_usd(1.0, 4500.0) == pytest.approx(500.0)
    assert sizer.budget_usd(1.0, 5000.0) is None
    assert sizer.budget_usd(1.0, 6000.0) is None


def test_conviction_sizes_delegate_exchange_checks():
    sizer = DynamicSizer(CONVICTION, PositionSizer(BTC))
    # 650 USD at 100,000 -> 0.0065 BTC -> 6 lots (rounded down by PositionSizer)
    assert sizer.size_lots(0.5, 1_000_000, 0.0) == 6
    # 5 USD of room left: under the 10 USD minimum notional
    assert sizer.size_lots(0.5, 1_000_000, 4995.0) == 0
    assert sizer.size_lots(math.nan, 1_000_000, 0.0) == 3  # NaN score counts as none


def test_prices_sizes_and_mids_for_logs_and_reports_carry_no_float_noise():
    """The issue: ``2682.4500000000003`` in JSON logs and fills.csv."""
    sizer = PositionSizer(BTC)
    noisy = 26824 * 0.1 + 0.05  # 2682.4500000000003 from float arithmetic
    assert repr(noisy) != "2682.45"
    assert repr(sizer.exact_price(26824.5 * 0.1 - 0.05)) == "2682.4"
    assert repr(sizer.exact_mid(noisy)) == "2682.45"  # half way between two ticks
    assert sizer.format_mid(noisy) == "2682.45" and sizer.format_mid(2682.4) == "2682.4"
    assert repr(sizer.exact_size(0.1 + 0.2)) == "0.3"
    assert repr(sizer.exact_size(-(0.1 + 0.2))) == "-0.3"
