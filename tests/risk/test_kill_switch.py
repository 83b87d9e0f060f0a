import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from market_maker.config import AppConfig, DynamicRiskConfig, KillSwitchConfig
from market_maker.risk import BindingLimit, KillSwitch, TradingState, Trigger

S = 1_000_000_000  # ns per second
DAY = 86_400 * S
MID = 100.0


def make(**kill_switch) -> KillSwitch:
    return KillSwitch(AppConfig(kill_switch=KillSwitchConfig(**kill_switch)))


def check(ks: KillSwitch, ts_ns: int, *, position=0.0, mid=MID, ratio=1.0) -> TradingState:
    ks.on_market_data(ts_ns)
    return ks.check(ts_ns, position=position, mid=mid, hawkes_ratio=ratio)


def triggers(ks: KillSwitch) -> set[Trigger]:
    return {r.trigger for r in ks.reasons}


def with_account(ks: KillSwitch, value=10_000.0, *, sigma=0.0002, ts_ns=0) -> KillSwitch:
    ks.on_account(ts_ns, value)
    ks.update_limits(sigma=sigma, sigma_samples=1_000, trade_intensity=1.0)
    return ks


def test_active_when_nothing_is_wrong():
    ks = with_account(make())
    assert check(ks, 1 * S) is TradingState.ACTIVE
    assert ks.reasons == ()


def test_static_limit_until_account_value_is_known():
    ks = KillSwitch(AppConfig(risk=DynamicRiskConfig(max_position=0.5)))
    assert ks.max_position(MID) == 0.5
    assert ks.binding_limit is BindingLimit.STATIC
    assert ks.update_limits(sigma=0.001, sigma_samples=10, trade_intensity=1.0) is None
    with_account(ks, 1_000.0)
    assert ks.max_position(MID) == pytest.approx(1_000.0 * 20.0 / MID)
    assert ks.binding_limit is BindingLimit.LEVERAGE


def test_dynamic_limit_falls_back_to_static_without_a_mid():
    ks = with_account(KillSwitch(AppConfig(risk=DynamicRiskConfig(max_position=0.3))))
    assert ks.max_position(math.nan) == 0.3
    assert ks.max_position(0.0) == 0.3


def test_hard_cap_applies_to_the_derived_limit():
    ks = with_account(KillSwitch(AppConfig(risk=DynamicRiskConfig(max_position_cap=7.0))))
    assert ks.max_position(MID) == 7.0


def test_daily_loss_halts_and_latches_until_reset():
    ks = with_account(make(max_daily_loss_usd=500.0, max_drawdown_pct=50.0), 10_000.0)
    ks.on_account(1 * S, 9_600.0)
    assert check(ks, 1 * S) is TradingState.ACTIVE
    ks.on_account(2 * S, 9_450.0)
    assert check(ks, 2 * S) is TradingState.HALTED
    assert Trigger.DAILY_LOSS in triggers(ks)
    ks.on_account(3 * S, 9_900.0)  # recovering does not unlatch
    assert check(ks, 3 * S) is TradingState.HALTED
    ks.reset()
    assert check(ks, 4 * S) is TradingState.ACTIVE


def test_daily_loss_counts_from_the_start_of_each_utc_day():
    ks = with_account(make(max_daily_loss_usd=500.0, max_drawdown_pct=50.0), 10_000.0)
    ks.on_account(DAY - S, 9_600.0)
    assert check(ks, DAY - S) is TradingState.ACTIVE
    ks.on_account(DAY + S, 9_550.0)  # new day opens at 9,550
    ks.on_account(DAY + 2 * S, 9_200.0)
    assert check(ks, DAY + 2 * S) is TradingState.ACTIVE
    ks.on_account(DAY + 3 * S, 9_049.0)
    assert check(ks, DAY + 3 * S) is TradingState.HALTED


def test_drawdown_is_measured_from_the_running_peak():
    ks = with_account(make(max_drawdown_pct=5.0, max_daily_loss_usd=1e9), 10_000.0)
    ks.on_account(1 * S, 12_000.0)  # new peak
    ks.on_account(2 * S, 11_500.0)  # 4.2 % below the peak: fine
    assert check(ks, 2 * S) is TradingState.ACTIVE
    ks.on_account(3 * S, 11_390.0)  # 5.08 % below the peak, though above the start
    assert check(ks, 3 * S) is TradingState.HALTED
    assert triggers(ks) == {Trigger.DRAWDOWN}
    assert ks.peak_equity == 12_000.0


def test_reset_rebases_peak_so_an_old_drawdown_does_not_refire():
    ks = with_account(make(max_drawdown_pct=5.0, max_daily_loss_usd=1e9), 10_000.0)
    ks.on_account(1 * S, 9_000.0)
    assert check(ks, 1 * S) is TradingState.HALTED
    ks.reset()
    assert check(ks, 2 * S) is TradingState.ACTIVE


def test_position_value_between_1x_and_hard_multiple_is_reducing_and_beyond_is_halted():
    ks = with_account(make(hard_multiple=2.0), 1_000.0)  # limit 20,000 USD = 200 contracts
    assert check(ks, 1 * S, position=199.0) is TradingState.ACTIVE
    assert check(ks, 2 * S, position=-250.0) is TradingState.REDUCING
    assert triggers(ks) == {Trigger.POSITION_VALUE}
    assert check(ks, 3 * S, position=150.0) is TradingState.ACTIVE  # REDUCING clears
    assert check(ks, 4 * S, position=401.0) is TradingState.HALTED
    assert check(ks, 5 * S, position=0.0) is TradingState.HALTED  # latched


def test_position_value_limit_follows_volatility():
    ks = with_account(make(), 1_000.0, sigma=0.0002)
    assert check(ks, 1 * S, position=150.0) is TradingState.ACTIVE
    ks.update_limits(sigma=0.02, sigma_samples=1_000, trade_intensity=1.0 / 100.0)
    # V * 0.5 / (5 * ~0.02 * 10) ~ 500 USD: 150 contracts at 100 are far beyond twice that
    assert check(ks, 2 * S, position=150.0) is TradingState.HALTED


def test_position_contracts_cap():
    ks = with_account(make(max_position_contracts=2.0, hard_multiple=2.0), 1e9)
    assert check(ks, 1 * S, position=2.0) is TradingState.ACTIVE
    assert check(ks, 2 * S, position=3.0) is TradingState.REDUCING
    assert triggers(ks) == {Trigger.POSITION_CONTRACTS}
    assert check(ks, 3 * S, position=-4.5) is TradingState.HALTED


def test_no_equity_with_a_position_halts():
    ks = with_account(make(), 0.0)
    assert check(ks, 1 * S, position=0.0) is TradingState.ACTIVE
    assert check(ks, 2 * S, position=0.1) is TradingState.HALTED


def test_stale_data_pauses_then_halts():
    ks = with_account(make(stale_pause_after_s=5.0, stale_halt_after_s=30.0))
    assert check(ks, 0) is TradingState.ACTIVE
    assert ks.check(4 * S, position=0.0, mid=MID, hawkes_ratio=1.0) is TradingState.ACTIVE
    assert ks.check(6 * S, position=0.0, mid=MID, hawkes_ratio=1.0) is TradingState.PAUSED
    assert triggers(ks) == {Trigger.STALE_DATA}
    assert check(ks, 7 * S) is TradingState.ACTIVE  # data is back: PAUSED clears by itself
    assert ks.check(38 * S, position=0.0, mid=MID, hawkes_ratio=1.0) is TradingState.HALTED
    assert check(ks, 39 * S) is TradingState.HALTED  # latched


def test_silence_while_disconnected_pauses_and_never_halts():
    """A reconnect can take longer than stale_halt_after_s (backoff up to 30 s): the silence
    is explained by the disconnect, so it must not latch a halt."""
    ks = with_account(make(stale_pause_after_s=5.0, stale_halt_after_s=30.0))
    assert check(ks, 0) is TradingState.ACTIVE
    ks.set_connected(False)
    assert ks.check(90 * S, position=0.0, mid=MID, hawkes_ratio=1.0) is TradingState.PAUSED
    assert triggers(ks) == {Trigger.STALE_DATA, Trigger.DISCONNECTED}
    ks.set_connected(True)
    assert check(ks, 91 * S) is TradingState.ACTIVE  # data is back
    # Connected and silent for 30 s: that is what halts.
    assert ks.check(122 * S, position=0.0, mid=MID, hawkes_ratio=1.0) is TradingState.HALTED


def test_no_data_ever_counts_as_stale_from_the_first_check():
    ks = make(stale_pause_after_s=5.0, stale_halt_after_s=30.0)
    assert ks.check(100 * S, position=0.0, mid=MID, hawkes_ratio=1.0) is TradingState.ACTIVE
    assert ks.check(106 * S, position=0.0, mid=MID, hawkes_ratio=1.0) is TradingState.PAUSED


def test_cascade_pauses_and_resumes_only_after_a_calm_spell():
    ks = with_account(
        make(
            cascade_pause_ratio=3.0,
            cascade_resume_ratio=2.0,
            cascade_resume_after_s=10.0,
            cascade_halt_ratio=6.0,
        )
    )
    assert check(ks, 1 * S, ratio=2.9) is TradingState.ACTIVE
    assert check(ks, 2 * S, ratio=4.0) is TradingState.PAUSED
    assert triggers(ks) == {Trigger.CASCADE}
    assert check(ks, 3 * S, ratio=2.5) is TradingState.PAUSED  # under the pause line: not calm
    assert check(ks, 4 * S, ratio=1.2) is TradingState.PAUSED  # calm starts
    assert check(ks, 9 * S, ratio=1.5) is TradingState.PAUSED
    assert check(ks, 10 * S, ratio=2.5) is TradingState.PAUSED  # interrupted: start again
    assert check(ks, 11 * S, ratio=1.0) is TradingState.PAUSED
    assert check(ks, 20 * S, ratio=1.0) is TradingState.PAUSED
    assert check(ks, 21 * S, ratio=1.0) is TradingState.ACTIVE  # 10 s of calm


def test_a_cascade_pause_tells_the_ratio_each_phase_began_at():
    ks = with_account(make(cascade_pause_ratio=3.0, cascade_resume_ratio=2.0))

    def detail() -> str:
        (reason,) = ks.reasons
        return reason.detail

    check(ks, 1 * S, ratio=4.0)
    assert detail() == "trade arrivals 4.00x their long-run rate"
    check(ks, 2 * S, ratio=5.5)  # the same burst: the reason is the one it began with
    assert detail() == "trade arrivals 4.00x their long-run rate"
    check(ks, 3 * S, ratio=1.5)
    assert detail() == "trade arrivals 1.50x their long-run rate, waiting for calm"
    check(ks, 4 * S, ratio=1.2)
    assert detail() == "trade arrivals 1.50x their long-run rate, waiting for calm"
    check(ks, 5 * S, ratio=3.5)  # a new burst before calm: a new reason
    assert detail() == "trade arrivals 3.50x their long-run rate"
    check(ks, 6 * S, ratio=1.0)
    check(ks, 40 * S, ratio=1.0)
    assert ks.state is TradingState.ACTIVE and ks.reasons == ()
    check(ks, 41 * S, ratio=3.25)  # the next pause starts afresh
    assert detail() == "trade arrivals 3.25x their long-run rate"


def test_cascade_halts_only_on_a_sustained_extreme_and_stays_halted():
    ks = with_account(
        make(cascade_pause_ratio=3.0, cascade_halt_ratio=6.0, cascade_halt_after_s=2.0)
    )
    assert check(ks, 1 * S, ratio=7.0) is TradingState.PAUSED  # a spike
    assert check(ks, 2 * S, ratio=4.0) is TradingState.PAUSED
    assert check(ks, 3 * S, ratio=7.0) is TradingState.PAUSED  # the extreme starts again
    assert check(ks, 4 * S, ratio=8.0) is TradingState.PAUSED
    assert check(ks, 5 * S, ratio=7.0) is TradingState.HALTED  # 2 s above 6x
    assert check(ks, 6 * S, ratio=1.0) is TradingState.HALTED  # latched until reset


def test_a_calm_spell_clears_the_extreme_timer():
    ks = with_account(make(cascade_pause_ratio=3.0, cascade_halt_ratio=6.0))
    assert check(ks, 1 * S, ratio=7.0) is TradingState.PAUSED
    assert check(ks, 2 * S, ratio=1.0) is TradingState.PAUSED
    assert check(ks, 60 * S, ratio=7.0) is TradingState.PAUSED  # not 59 s of extreme


def test_cascade_fires_from_a_real_burst_and_not_from_the_market_being_busy():
    from market_maker.estimators import CascadeDetector

    ks = with_account(make(cascade_pause_ratio=3.0, cascade_halt_ratio=6.0))
    busy = CascadeDetector(prior_rate=1.0, window_s=5.0, warmup_s=60.0)
    t = 0.0
    while t < 300.0:  # a busy market, 50 trades a second: normal for it
        busy.update(t)
        t += 0.02
    assert check(ks, 300 * S, ratio=busy.ratio(300.0)) is TradingState.ACTIVE
    for i in range(1_000):  # then 1,000 trades in 2 seconds
        busy.update(300.0 + 0.002 * i)
    assert check(ks, 302 * S, ratio=busy.ratio(302.0)) is TradingState.PAUSED


def test_rejection_storm_pauses_until_rejections_age_out():
    ks = with_account(make(max_rejections=3, rejection_window_s=60.0))
    ks.on_rejection(1 * S)
    ks.on_rejection(10 * S)
    assert check(ks, 11 * S) is TradingState.ACTIVE
    ks.on_rejection(20 * S)
    assert check(ks, 21 * S) is TradingState.PAUSED
    assert triggers(ks) == {Trigger.REJECTIONS}
    assert check(ks, 62 * S) is TradingState.ACTIVE  # the first rejection left the window


def test_disconnect_pauses_until_reconnect():
    ks = with_account(make())
    ks.set_connected(False)
    assert check(ks, 1 * S) is TradingState.PAUSED
    assert triggers(ks) == {Trigger.DISCONNECTED}
    ks.set_connected(True)
    assert check(ks, 2 * S) is TradingState.ACTIVE


def test_manual_halt_latches_until_reset():
    ks = with_account(make())
    ks.halt("operator pressed the button")
    assert check(ks, 1 * S) is TradingState.HALTED
    assert ks.reasons[0].detail == "operator pressed the button"
    assert check(ks, 2 * S) is TradingState.HALTED
    ks.reset()
    assert check(ks, 3 * S) is TradingState.ACTIVE


def test_state_is_the_most_severe_and_carries_every_reason():
    ks = with_account(make(cascade_pause_ratio=3.0, cascade_halt_ratio=6.0), 1_000.0)
    ks.set_connected(False)
    state = check(ks, 1 * S, position=250.0, ratio=4.0)
    assert state is TradingState.PAUSED
    assert triggers(ks) == {Trigger.DISCONNECTED, Trigger.CASCADE, Trigger.POSITION_VALUE}


def test_bad_account_value_is_ignored():
    ks = with_account(make(), 1_000.0)
    assert ks.on_account(1 * S, math.nan) is False
    assert ks.account_value == 1_000.0


class _FullChecks(KillSwitch):
    """Every check run in full: no screen, hence no remembered all-clear either."""

    def _all_clear(self, ts_ns: int, position: float, mid: float, ratio: float) -> bool:
        return False


_check = st.tuples(
    st.just("check"),
    st.sampled_from([0, 1, 4, 6, 31]),  # seconds on
    st.booleans(),  # fresh market data with it
    # position and cascade ratio; None keeps the last check's (as a quiet book does)
    st.none()
    | st.sampled_from([0.0, 950.0, 1_001.0, 1_450.0, 1_600.0, -2_100.0, 3_100.0, math.nan]),
    st.none() | st.sampled_from([1.0, 2.5, 3.5, 7.0, math.nan]),
)
_ops = st.lists(
    st.one_of(
        _check,
        st.tuples(st.just("account"), st.sampled_from([10_000.0, 9_700.0, 9_000.0, 10_400.0])),
        st.tuples(st.just("limits"), st.sampled_from([0.0002, 0.01])),  # leverage / vol binds
        st.tuples(st.just("reject"), st.integers(1, 3)),
        st.tuples(st.just("connected"), st.booleans()),
        st.tuples(st.just("halt")),
        st.tuples(st.just("reset")),
    ),
    min_size=5,
    max_size=60,
)


@given(known_equity=st.booleans(), ops=_ops)
# A limit that tightens under a position it allowed; a ratio back to calm while PAUSED.
@example(
    known_equity=True, ops=[("limits", 0.0002), ("check", 1, True, 1_450.0, None), ("limits", 0.01)]
)
@example(
    known_equity=False,
    ops=[
        ("check", 1, True, None, None),
        ("check", 1, True, None, 7.0),
        ("check", 1, True, None, 1.0),
    ],
)
@settings(max_examples=1_000, deadline=None)
def test_the_screen_and_the_remembered_all_clear_never_hide_a_reason(known_equity, ops):
    """The same inputs through the switch and through one that always runs every check: the
    same state and reasons after every check. Each event is followed by a check with the
    inputs unchanged (what a quiet book sends): positions around the limit (1,000 or 2,000
    contracts as volatility or leverage binds), the 1,500 cap and twice it, cascade ratios
    around pause and halt, equity losses, rejections, disconnects, silence."""
    cfg = AppConfig(kill_switch=KillSwitchConfig(max_position_contracts=1_500.0))
    fast, full = KillSwitch(cfg), _FullChecks(cfg)
    if known_equity:
        for ks in (fast, full):
            with_account(ks, 10_000.0, sigma=0.01)
    ts = S
    position, ratio = 0.0, 1.0
    for op in ops:
        fresh = True
        if op[0] == "check":
            _, step, fresh, new_position, new_ratio = op
            position = position if new_position is None else new_position
            ratio = ratio if new_ratio is None else new_ratio
            ts += step * S
        for ks in (fast, full):
            if op[0] == "account":
                ks.on_account(ts, op[1])
            elif op[0] == "limits":
                ks.update_limits(sigma=op[1], sigma_samples=1_000, trade_intensity=1.0)
            elif op[0] == "reject":
                for _ in range(op[1]):
                    ks.on_rejection(ts)
            elif op[0] == "connected":
                ks.set_connected(op[1])
            elif op[0] == "halt":
                ks.halt()
            elif op[0] == "reset":
                ks.reset()
            if fresh:
                ks.on_market_data(ts)
            ks.check(ts, position=position, mid=MID, hawkes_ratio=ratio)
        assert (fast.state, fast.reasons) == (full.state, full.reasons)


def test_a_rejection_storms_reason_carries_the_venues_words():
    ks = with_account(make(max_rejections=3, rejection_window_s=60.0))
    for t in (1, 2, 3):
        ks.on_rejection(t * S, f"Too many cumulative requests sent ({10_000 + t} > 10000).")
    assert check(ks, 4 * S) is TradingState.PAUSED
    (reason,) = ks.reasons
    assert reason.detail == "3 in 60 s: Too many cumulative requests sent (10003 > 10000)."
    ks.on_rejection(5 * S, "Order has invalid size. asset=1")
    assert check(ks, 6 * S) is TradingState.PAUSED
    assert ks.reasons[0].detail.endswith("(and 1 other text)")  # the most frequent leads


def test_an_unknown_wallet_halts_at_the_first_refusal_with_its_text():
    ks = with_account(make(max_rejections=3))
    words = "User or API Wallet 0x" + "ab" * 20 + " does not exist."
    ks.on_rejection(1 * S, words)
    assert check(ks, 2 * S) is TradingState.HALTED
    assert ks.reasons[0].detail == f"1 in 60 s: {words} (no retry can fix this)"
    assert check(ks, 500 * S) is TradingState.HALTED  # latched, long after the window
    ks.reset()
    assert check(ks, 501 * S) is TradingState.ACTIVE


def test_margin_halts_only_when_every_refusal_of_the_storm_is_margin():
    ks = with_account(make(max_rejections=3))
    margin = "Insufficient margin to place order. asset=1"
    ks.on_rejection(1 * S, margin)
    ks.on_rejection(2 * S, "Post only order would have immediately matched, bbo was 1@2.")
    ks.on_rejection(3 * S, margin)
    assert check(ks, 4 * S) is TradingState.PAUSED  # one margin refusal among others: a pause
    ks.on_rejection(5 * S, margin)
    assert check(ks, 6 * S) is TradingState.PAUSED  # the post-only refusal is still in the storm
    ks.on_rejection(7 * S, margin)
    assert check(ks, 8 * S) is TradingState.HALTED
    assert ks.reasons[0].detail == f"3 in 60 s: {margin} on every order (no retry can fix this)"
