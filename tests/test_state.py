"""The state file: what the kill switch must not forget across a restart."""

from __future__ import annotations

import msgspec
import pytest

from market_maker.config import AppConfig
from market_maker.errors import MarketMakerError
from market_maker.risk import KillSwitch, TradingState, Trigger
from market_maker.state import StateError, StateFile

S = 1_000_000_000
DAY = 86_400 * S
USER = "0x" + "c" * 40


def switch() -> KillSwitch:
    config = AppConfig()
    ks = msgspec.structs.replace(config.kill_switch, max_daily_loss_usd=500.0)
    return KillSwitch(msgspec.structs.replace(config, kill_switch=ks))


def check(ks: KillSwitch, ts_ns: int) -> TradingState:
    ks.on_market_data(ts_ns)
    return ks.check(ts_ns, position=0.0, mid=100_000.0, hawkes_ratio=1.0)


def test_a_latched_halt_and_the_days_baseline_survive_a_save_and_load(tmp_path):
    t0 = 20_000 * DAY + 3_600 * S  # 01:00 UTC
    ks = switch()
    ks.on_account(t0, 20_000.0)
    ks.on_account(t0 + S, 19_400.0)  # 3 % down: the daily loss fires, the drawdown does not
    assert check(ks, t0 + 2 * S) is TradingState.HALTED
    ks.halt("shutdown: interrupted", persist=False)  # the runtime's own halt at the end
    state = StateFile(tmp_path, network="mainnet", account=USER.upper(), asset="btc")
    state.save(ks.memory())
    assert [p.name for p in tmp_path.iterdir()] == [f"mainnet-{USER}-BTC.json"]  # no temp left
    restarted = switch()
    saved = state.load()
    assert saved is not None
    restarted.restore(saved.kill_switch)
    assert check(restarted, t0 + 60 * S) is TradingState.HALTED
    (reason,) = restarted.reasons
    assert reason.trigger is Trigger.DAILY_LOSS  # the shutdown's halt was not kept
    assert reason.detail == "lost 600.00 USD today (limit 500.00)"
    assert saved.kill_switch.halts[0].ts_ns == t0 + 2 * S


def test_a_restart_within_the_utc_day_keeps_its_opening_equity_and_a_new_day_rebases():
    t0 = 20_000 * DAY + 3_600 * S
    ks = switch()
    ks.on_account(t0, 20_000.0)
    ks.on_account(t0 + S, 19_700.0)  # 300 lost, under the limit
    memory = ks.memory()
    same_day = switch()
    same_day.restore(memory)
    same_day.on_account(t0 + 600 * S, 19_450.0)  # 250 more after the restart
    assert check(same_day, t0 + 601 * S) is TradingState.HALTED
    assert same_day.reasons[0].detail == "lost 550.00 USD today (limit 500.00)"
    next_day = switch()
    next_day.restore(memory)
    next_day.on_account(t0 + DAY, 19_450.0)  # a new UTC day opens at this equity
    assert check(next_day, t0 + DAY + S) is TradingState.ACTIVE
    assert next_day.day_start_equity == 19_450.0


def test_reset_clears_the_halts_and_the_baseline(tmp_path):
    ks = switch()
    ks.halt("operator: fat finger")
    check(ks, S)
    state = StateFile(tmp_path, network="testnet", account=USER, asset="ETH")
    state.save(ks.memory())
    (halt,) = state.reset()
    assert (halt.trigger, halt.detail) == ("manual", "operator: fat finger")
    saved = state.load()
    assert saved is not None and saved.kill_switch.halts == ()
    assert "operator: fat finger" in saved.last_reset
    assert state.reset() == ()


def test_a_file_that_cannot_be_trusted_is_one_clear_error(tmp_path):
    state = StateFile(tmp_path, network="mainnet", account=USER, asset="BTC")
    state.path.write_text("{not json")
    with pytest.raises(StateError, match=r"is not valid .*delete it to start afresh") as err:
        state.load()
    assert str(state.path) in str(err.value) and isinstance(err.value, MarketMakerError)
    other = StateFile(tmp_path, network="testnet", account=USER, asset="BTC")
    other.save(switch().memory())
    other.path.rename(state.path)  # another network's file under this name
    with pytest.raises(StateError, match="belongs to testnet"):
        state.load()
