"""``[quoting]`` on the informed scenarios: the features that cut the loss on the BTC capture
(benches/ablation_quoting.py) cut it here too."""

import msgspec
import pytest

from market_maker.backtest.scenarios import scenario
from market_maker.backtest.session import run_session
from market_maker.config import AppConfig, QuotingConfig


def _on(name: str) -> AppConfig:
    params = scenario(name)
    return AppConfig(
        quoting=QuotingConfig(
            fair_value=True,
            imbalance_beta_bps=params.imbalance_beta_bps,  # what calibrate fits
            adverse_floor=True,
            maker_fee_bps=params.maker_fee_bps,
            toxic_guard=True,
        )
    )


@pytest.mark.parametrize("strategy", ["glft", "ladder"])
@pytest.mark.parametrize("name", ["calm", "volatile"])
def test_the_features_cut_the_loss_to_informed_flow(name, strategy):
    runs = {}
    for label, config in (("off", AppConfig()), ("on", _on(name))):
        r, _ = run_session(config, strategy=strategy, scenario=name, seed=1, duration_s=900)
        runs[label] = r
    off, on = runs["off"], runs["on"]
    assert off.pnl_usd < 0.0  # the premise: informed flow beats the plain engine
    assert on.pnl_usd > off.pnl_usd + 0.5 * abs(off.pnl_usd)  # at least half the loss saved
    # Before fees too: the fills it keeps lose less than the ones it gives up.
    assert on.pnl_usd + on.fees_usd > off.pnl_usd + off.fees_usd
    assert on.quoting["floor_bps"] > scenario(name).maker_fee_bps
    assert on.limit_breaches == 0 and msgspec.to_builtins(off.quoting) == {}
