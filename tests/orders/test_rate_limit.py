"""The request budget is a function of what was spent and when, not of how often it is read."""

from hypothesis import given
from hypothesis import strategies as st

from market_maker.orders.rate_limit import TokenBucket

S = 1_000_000_000


def test_a_full_bucket_gives_its_burst_then_refills_at_its_rate():
    b = TokenBucket(per_s=4.0, burst=8.0)
    assert b.available(10 * S) == 8
    b.spend(8)
    assert b.available(10 * S) == 0
    assert b.available(10 * S + S // 4) == 1
    assert b.available(10 * S + 2 * S) == 8
    assert b.available(100 * S) == 8  # never banks beyond the burst


def test_cancels_beyond_the_budget_are_paid_back_before_anything_else_goes():
    b = TokenBucket(per_s=2.0, burst=2.0)
    b.available(0)
    b.spend(5)  # cancels go whatever the budget
    assert b.available(S) == 0  # 3 owed, 2 back
    assert b.available(2 * S) == 1


@given(
    per_s=st.sampled_from([0.3, 1.0, 3.0, 4.0, 7.0, 10.0]),
    burst=st.sampled_from([1.0, 2.5, 8.0, 20.0]),
    steps=st.lists(
        st.tuples(st.integers(1, 3 * S), st.integers(0, 3), st.integers(0, 6)),
        min_size=1,
        max_size=60,
    ),
)
def test_reading_the_budget_more_often_never_changes_it(per_s, burst, steps):
    """One bucket is read only when it spends, the other also at points in between (an engine
    that skips quiet cycles and one that runs them all): every spend sees the same budget.
    Adding refills as floats read by read made them differ by a token at a boundary."""
    sparse, dense = TokenBucket(per_s, burst), TokenBucket(per_s, burst)
    t = 0
    for dt, reads, spend in steps:
        for i in range(reads):
            dense.available(t + dt * (i + 1) // (reads + 1))
        t += dt
        a, b = sparse.available(t), dense.available(t)
        assert a == b
        n = min(a, spend)
        sparse.spend(n)
        dense.spend(n)
