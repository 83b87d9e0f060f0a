"""The venue's clock of our resting orders: time with a bid and an ask both resting."""

from market_maker.model import Side
from market_maker.venues.resting_time import RestingClock

S = 1_000_000_000


def test_both_sides_count_only_while_each_side_has_an_order():
    clock = RestingClock()
    clock.joined(Side.BUY, 0)
    clock.joined(Side.SELL, 2 * S)  # two-sided from 2 s
    clock.joined(Side.SELL, 3 * S)
    clock.left(Side.SELL, 4 * S)  # one ask still rests
    assert clock.both_ns(5 * S) == 3 * S
    clock.left(Side.SELL, 6 * S)  # no ask: one-sided from 6 s
    assert not clock.two_sided
    assert clock.both_ns(9 * S) == 4 * S
    clock.joined(Side.SELL, 10 * S)
    assert clock.both_ns(10 * S + 500_000_000) == 4 * S + 500_000_000


def test_a_clock_with_one_side_never_counts():
    clock = RestingClock()
    clock.joined(Side.SELL, 0)
    clock.joined(Side.SELL, 1)
    assert clock.both_ns(10 * S) == 0
