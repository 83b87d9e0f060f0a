import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market_maker.config import AppConfig, DynamicRiskConfig
from market_maker.model import Instrument
from market_maker.risk import BindingLimit, TradingState
from market_maker.strategy import ParameterAggregator, side_capacity
from tests.stubs import market_params


def test_capacity_subtracts_position_and_pending_on_each_side():
    assert side_capacity(position=0.3, max_position=1.0, pending_bids=0.2, pending_asks=0.5) == (
        pytest.approx(0.5),
        pytest.approx(0.8),
    )


def test_capacity_at_the_limit_leaves_only_the_reducing_side():
    bid, ask = side_capacity(position=1.0, max_position=1.0, pending_bids=0.0, pending_asks=0.0)
    assert bid == 0.0 and ask == 2.0
    bid, ask = side_capacity(position=-1.5, max_position=1.0, pending_bids=0.0, pending_asks=0.0)
    assert bid == 2.5 and ask == 0.0


@given(
    st.floats(-10, 10),
    st.floats(0, 10),
    st.floats(0, 10),
    st.floats(0, 10),
    st.lists(st.tuples(st.booleans(), st.floats(0, 1)), max_size=30),
)
def test_no_sequence_of_fills_within_capacity_passes_the_limit(q, limit, pb, pa, fills):
    """Rest exactly the capacity; whatever fills, |q| ends within max(limit, |q| at start)."""
    bid_cap, ask_cap = side_capacity(
        position=q, max_position=limit, pending_bids=pb, pending_asks=pa
    )
    bids, asks = pb + bid_cap, pa + ask_cap
    for is_bid, share in fills:
        if is_bid:
            x = bids * share
            bids -= x
            q += x
        else:
            x = asks * share
            asks -= x
            q -= x
        hi, lo = q + bids, q - asks  # worst case from here
        assert hi <= max(limit, q) + 1e-9 or bid_cap == 0.0
        assert lo >= min(-limit, q) - 1e-9 or ask_cap == 0.0


def test_aggregator_uses_the_static_limit_until_the_account_is_known():
    cfg = AppConfig(risk=DynamicRiskConfig(max_position=0.25, max_position_cap=3.0))
    agg = ParameterAggregator(cfg, Instrument(symbol="X", tick_size=0.1, lot_size=0.001))
    common = dict(
        ts_ns=0,
        best_bid=99.9,
        best_ask=100.1,
        sigma=0.001,
        a=1.0,
        k=0.5,
        hawkes_ratio=1.0,
        buy_intensity=3.0,
        sell_intensity=1.0,
        position=0.0,
        pending_bids=0.0,
        pending_asks=0.0,
        binding_limit=BindingLimit.STATIC,
        trading_state=TradingState.ACTIVE,
    )
    unknown = agg.build(max_position_value=None, **common)
    assert unknown.dynamic_max_position == 0.25
    known = agg.build(max_position_value=200.0, **common)
    assert known.mid == pytest.approx(100.0)
    assert known.dynamic_max_position == pytest.approx(2.0)
    assert known.effective_max_position() == pytest.approx(2.0)
    assert agg.build(max_position_value=1_000.0, **common).effective_max_position() == 3.0
    assert known.flow_imbalance == pytest.approx(0.5)
    assert known.sigma_ticks == pytest.approx(0.001 * 100.0 / 0.1)


def test_utilisation():
    assert market_params(position=0.5, dynamic_max_position=2.0).utilisation() == 0.25
    assert market_params(position=0.5, dynamic_max_position=0.0).utilisation() == math.inf
    assert market_params(position=0.0, dynamic_max_position=0.0).utilisation() == 0.0


def test_market_params_are_built_by_keyword_only():
    """Twenty numbers in a row are too easy to swap: a positional build is refused."""
    import msgspec

    from market_maker.strategy import MarketParams

    fields = msgspec.structs.astuple(market_params())
    with pytest.raises(TypeError):
        MarketParams(*fields)
