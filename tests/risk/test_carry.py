"""Funding in the sizing and in the reservation price (``risk/carry.py``, ``funding_book.py``),
against hand-computed numbers."""

import math

import pytest

from market_maker.config import AppConfig, DynamicRiskConfig, FundingConfig
from market_maker.engine import QuoteEngine
from market_maker.model import (
    AccountUpdate,
    BookUpdate,
    FundingPayment,
    FundingRate,
    Instrument,
    Place,
    Side,
    VenueSnapshot,
)
from market_maker.risk.carry import (
    carry_per_unit,
    funding_skew_fraction,
    funding_times_within,
    paying_side_limit_usd,
)
from market_maker.risk.limits import position_limits

S = 1_000_000_000
INST = Instrument(symbol="BTC", tick_size=0.1, lot_size=0.001, min_notional=10.0)
HOUR = 3_600 * S


def test_funding_times_within_the_horizon_by_hand():
    assert funding_times_within(HOUR - 100 * S, 120.0, 3_600.0) == 1  # 01:00 is 100 s away
    assert funding_times_within(HOUR - 200 * S, 120.0, 3_600.0) == 0
    assert funding_times_within(HOUR, 120.0, 3_600.0) == 0  # just paid: the next is an hour on
    assert funding_times_within(HOUR - 1, 1e-9, 3_600.0) == 1  # the very last nanosecond
    assert funding_times_within(0, 7_200.0, 3_600.0) == 2
    assert funding_times_within(HOUR - S, 120.0, float("nan")) == 0
    assert funding_times_within(HOUR - S, 0.0, 3_600.0) == 0
    assert carry_per_unit(0.0001, 1) == 0.0001
    assert carry_per_unit(-0.0004, 2) == -0.0008
    assert carry_per_unit(float("nan"), 1) == 0.0


def limits(**risk):
    # V = 1,000 USD, risk_fraction 0.5, 10 sigmas of 0.0002 over 0.25 s: r = 10 * 0.0002 *
    # 0.5 = 0.001, the volatility limit 500 / 0.001 = 500,000 USD; leverage 1000 x = 1e6.
    cfg = DynamicRiskConfig(**{"max_leverage": 1000.0, "num_sigmas": 10.0, **risk})
    return position_limits(
        account_value=1_000.0, sigma=0.0, horizon_s=0.25, confidence=0.0, config=cfg
    )


def test_the_paying_side_limit_counts_the_payment_as_per_unit_risk():
    lim = limits()
    assert lim.max_position_value == pytest.approx(500_000.0)
    # 0.1 % a payment against a 0.1 % adverse move: 500 / (0.001 + 0.001) = 250,000 USD.
    assert paying_side_limit_usd(lim, num_sigmas=10.0, carry=0.001) == pytest.approx(250_000.0)
    # 0.01 %: 500 / 0.0011 = 454,545.45 USD.
    assert paying_side_limit_usd(lim, num_sigmas=10.0, carry=0.0001) == pytest.approx(454_545.4545)
    # Receiving (or no payment in the horizon): unchanged.
    assert paying_side_limit_usd(lim, num_sigmas=10.0, carry=0.0) == lim.max_position_value
    assert paying_side_limit_usd(lim, num_sigmas=10.0, carry=math.nan) == lim.max_position_value


def test_the_leverage_limit_still_binds_when_it_is_lower():
    # Leverage 100 x = 100,000 USD binds; a 0.01 % payment leaves the volatility limit at
    # 454,545 USD, above it: nothing changes. Hyperliquid's 4 % cap: 500 / 0.041 = 12,195 USD.
    lim = limits(max_leverage=100.0)
    assert paying_side_limit_usd(lim, num_sigmas=10.0, carry=0.0001) == pytest.approx(100_000.0)
    assert paying_side_limit_usd(lim, num_sigmas=10.0, carry=0.04) == pytest.approx(12_195.122)


def test_skew_fraction_by_hand():
    # 0.01 % an hour held an hour: -1 bp; half an hour: -0.5 bp; a negative rate: +1 bp.
    assert funding_skew_fraction(0.0001, 3_600.0, 3_600.0, 2.0) == pytest.approx(-1e-4)
    assert funding_skew_fraction(0.0001, 3_600.0, 1_800.0, 2.0) == pytest.approx(-0.5e-4)
    assert funding_skew_fraction(-0.0001, 3_600.0, 3_600.0, 2.0) == pytest.approx(1e-4)
    # Capped at 2 bp either way; Binance's 8 h interval: 0.01 % over 1 h is -0.125 bp.
    assert funding_skew_fraction(0.001, 3_600.0, 3_600.0, 2.0) == pytest.approx(-2e-4)
    assert funding_skew_fraction(0.0001, 28_800.0, 3_600.0, 2.0) == pytest.approx(-0.125e-4)
    assert funding_skew_fraction(math.nan, 3_600.0, 3_600.0, 2.0) == 0.0


def engine(**funding) -> QuoteEngine:
    cfg = AppConfig(
        risk=DynamicRiskConfig(max_leverage=1000.0, num_sigmas=10.0, max_horizon_s=0.25),
        funding=FundingConfig(**funding),
    )
    return QuoteEngine(cfg, INST)


def book(ts, bid=100_000.0):
    return BookUpdate(ts_ns=ts, bids=((bid, 1.0),), asks=((bid + 0.1, 1.0),))


def long_of_three(e, ts, rate=None):
    """Account 1,000 USD (limit 500,000 USD: 4,999 lots at the mid 100,000.05), a long of 3
    BTC, and the venue's rate; the quotes of the cycle after it."""
    e.on_event(AccountUpdate(ts_ns=ts, account_value=1_000.0))
    (ask,) = e.start(ts)  # the venue holds a long of 3 BTC
    e.on_event(VenueSnapshot(ts_ns=ts, exchange_ts_ns=ts, position=3.0, request_id=ask.request_id))
    if rate is not None:
        e.on_event(FundingRate(ts_ns=ts, rate=rate, interval_s=3_600.0))
    return [a for a in e.on_event(book(ts)) if isinstance(a, Place)]


@pytest.mark.parametrize(
    ("rate", "ts", "bids"),
    [
        (None, HOUR - S // 10, True),  # no rate known: both sides
        (0.001, HOUR - S // 10, False),  # longs pay 0.1 % in 0.1 s: 2,499 lots, 3 BTC held
        (0.001, HOUR - 10 * S, True),  # the payment is beyond the 0.25 s horizon
        (-0.001, HOUR - S // 10, True),  # shorts pay: the long's bids keep their room
    ],
)
def test_the_side_that_pays_funding_within_the_horizon_loses_room(rate, ts, bids):
    e = engine()
    places = long_of_three(e, ts, rate)
    assert e._max_lots == 4_999  # the symmetric limit is unchanged
    assert any(p.side is Side.SELL for p in places)
    assert any(p.side is Side.BUY for p in places) is bids
    assert e.status().trading_state == "active"


def test_sizing_switched_off_leaves_the_room():
    e = engine(sizing=False)
    places = long_of_three(e, HOUR - S // 10, 0.001)
    assert any(p.side is Side.BUY for p in places)


def quotes(e, ts):
    places = [a for a in e.on_event(book(ts)) if isinstance(a, Place)]
    bid = max(p.price for p in places if p.side is Side.BUY)
    ask = min(p.price for p in places if p.side is Side.SELL)
    return bid, ask


def test_positive_funding_skews_the_quotes_towards_being_short():
    plain = engine(skew=True)
    plain.on_event(AccountUpdate(ts_ns=S, account_value=1_000.0))
    bid0, ask0 = quotes(plain, 2 * S)
    skewed = engine(skew=True)
    skewed.on_event(AccountUpdate(ts_ns=S, account_value=1_000.0))
    skewed.on_event(FundingRate(ts_ns=S, rate=0.0001, interval_s=3_600.0))
    bid, ask = quotes(skewed, 2 * S)
    # -1 bp of 100,000.05: the reservation price is 10.00 USD lower; the bid follows it (100
    # ticks, one more where the float shift lands a hair under the grid), the ask is held
    # at the touch by the post-only clamp.
    assert bid0 - bid == pytest.approx(10.0, abs=0.1 + 1e-9)
    assert ask < ask0 and ask == 100_000.1
    mid = 100_000.05
    assert ask - mid < mid - bid  # the ask is the closer: selling is favoured
    assert skewed.params is not None and skewed.params.funding_shift == pytest.approx(-10.000005)


def test_skew_off_by_default_and_bad_rates_are_refused():
    e = engine()
    e.on_event(FundingRate(ts_ns=S, rate=0.0001, interval_s=3_600.0))
    e.on_event(book(2 * S))
    assert e.params is not None and e.params.funding_shift == 0.0
    for bad in (math.nan, math.inf, 0.5):
        e.on_event(FundingRate(ts_ns=3 * S, rate=bad, interval_s=3_600.0))
    assert e.funding.rate == 0.0001 and e.status().counters.bad_funding == 3


def test_a_rate_beyond_the_venues_cap_is_taken_at_the_cap():
    hl = Instrument(symbol="BTC", tick_size=1.0, lot_size=0.001, venue="hyperliquid")
    e = QuoteEngine(AppConfig(), hl)
    e.on_event(FundingRate(ts_ns=S, rate=0.09, interval_s=3_600.0))
    assert e.funding.rate == 0.04


def test_funding_payments_are_in_the_pnl_once():
    e = engine()
    e.on_event(book(S))
    pay = FundingPayment(ts_ns=2 * S, amount=-0.3, payment_id="h1")
    e.on_event(pay)
    e.on_event(pay)  # the same payment again (a resubscribe's snapshot)
    e.on_event(FundingPayment(ts_ns=3 * S, amount=math.nan, payment_id="h2"))
    s = e.status()
    assert s.funding_usd == pytest.approx(-0.3) and s.funding_payments == 1
    assert s.pnl_usd == pytest.approx(-0.3)
    assert s.counters.bad_funding == 1 and e.funding.duplicates == 1
