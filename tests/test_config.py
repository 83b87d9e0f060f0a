from pathlib import Path

import pytest

from market_maker.config import (
    AppConfig,
    DynamicRiskConfig,
    default_config_text,
    load_config,
    parse_config,
)
from market_maker.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_match_the_architecture():
    risk = DynamicRiskConfig()
    assert (risk.risk_fraction, risk.num_sigmas, risk.sigma_prior) == (0.5, 5.0, 0.0002)
    assert (risk.max_leverage, risk.max_horizon_s) == (20.0, 120.0)


def test_shipped_default_file_equals_built_in_defaults():
    assert load_config(ROOT / "config" / "default.toml", env={}) == AppConfig()
    assert parse_config(default_config_text()) == AppConfig()


@pytest.mark.parametrize("name", ["default.toml", "conservative.toml", "aggressive.toml"])
def test_every_shipped_config_loads(name):
    assert isinstance(load_config(ROOT / "config" / name, env={}), AppConfig)


def test_conservative_derives_a_smaller_limit_than_aggressive():
    from market_maker.risk import max_position_value

    def limit(name):
        cfg = load_config(ROOT / "config" / name, env={})
        return max_position_value(
            account_value=10_000.0, sigma=0.001, horizon_s=30.0, confidence=1.0, config=cfg.risk
        )

    assert limit("conservative.toml") < limit("default.toml") < limit("aggressive.toml")


@pytest.mark.parametrize(
    ("toml", "field", "reason"),
    [
        ("[risk]\nmax_leverage = -3\n", "risk.max_leverage", "> 0.0"),
        ("[risk]\nrisk_fraction = 1.5\n", "risk.risk_fraction", "<= 1.0"),
        ("[risk]\nnum_sigmas = 'five'\n", "risk.num_sigmas", "got `str`"),
        ("[risk]\nmax_levrage = 3\n", "risk", "unknown field `max_levrage`"),
        ("[risk]\nsigma_prior = inf\n", "risk.sigma_prior", "inf: must be finite"),
        ("[estimators.hawkes]\nalpha = 2\nbeta = 1\n", "estimators.hawkes", "alpha must be < beta"),
        (
            "[kill_switch]\nstale_pause_after_s = 60\nstale_halt_after_s = 30\n",
            "kill_switch",
            "stale_halt_after_s must be >= stale_pause_after_s",
        ),
        ("[nonsense]\nx = 1\n", "", "unknown field `nonsense`"),
        ("[simulator]\ninformed_share = 1.0\n", "simulator.informed_share", "< 1.0"),
        ("[simulator]\nsigma = -1e-4\n", "simulator.sigma", "> 0.0"),
        ("[simulator]\nvenue_model = 'cme'\n", "simulator.venue_model", "Invalid enum value 'cme'"),
        ("[simulator]\nflow_alpha = 2.0\nflow_beta = 1.0\n", "simulator", "flow_alpha must be"),
        ("[simulator]\ninformed_jmp_bps = 2.0\n", "simulator", "unknown field"),
    ],
)
def test_invalid_values_name_the_file_field_and_reason(tmp_path, toml, field, reason):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert f": {field}: " in message if field else True
    assert reason in message
    assert "\n" not in message


def test_toml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[risk\nmax_leverage = 3\n")
    with pytest.raises(ConfigError, match=r"broken.toml: invalid TOML"):
        load_config(path, env={})


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_environment_overrides_file_values(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[risk]\nmax_leverage = 3.0\n")
    env = {
        "MM_RISK__MAX_LEVERAGE": "10",
        "MM_ESTIMATORS__HAWKES__MU": "2.5",
        "MM_SIZING__ENABLED": "true",
        "MM_UNRELATED": "ignored",
        "OTHER__RISK__X": "ignored",
    }
    cfg = load_config(path, env=env)
    assert cfg.risk.max_leverage == 10.0
    assert cfg.estimators.hawkes.mu == 2.5
    assert cfg.sizing.enabled is True


def test_bad_environment_override_is_reported_with_its_path(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("")
    with pytest.raises(ConfigError, match=r"risk.max_leverage: Expected `float`"):
        load_config(path, env={"MM_RISK__MAX_LEVERAGE": "lots"})


def test_configs_are_frozen():
    cfg = AppConfig()
    with pytest.raises(AttributeError):
        cfg.risk.max_leverage = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[strategy]\nspread_multiplier = 1e308", "strategy.spread_multiplier"),
        ("[strategy]\nmin_half_spread_bps = inf", "strategy.min_half_spread_bps"),
        ("[strategy]\ncascade_widening = 1e308", "strategy.cascade_widening"),
        ("[strategy]\nskew_multiplier = inf", "strategy.skew_multiplier"),
        ("[strategy]\nspread_multiplier = 1000.0", "strategy.spread_multiplier"),
        ("[ladder]\nratio = 1e9", "ladder.ratio"),
        ("[risk]\nmax_leverage = nan", "risk.max_leverage"),
    ],
)
def test_values_that_cannot_work_are_refused_naming_the_field(toml, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_config(toml, source="x.toml")


def test_any_toml_however_deep_or_badly_encoded_is_one_line(tmp_path, capsys):
    from market_maker.cli import main

    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "{a = " * 600 + "1" + "}" * 600 + "\n")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"# caf\xe9\n[risk]\n")
    for path in (deep, binary):
        assert main(["check-config", str(path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(path) in err[0], err


def test_the_simulator_section_sets_the_scenario_market_and_keeps_the_rest(tmp_path):
    from market_maker.backtest.scenarios import scenario, with_simulator

    path = tmp_path / "sim.toml"
    path.write_text(
        "[simulator]\nmid0 = 61800.0\ntick_size = 0.1\nsigma = 0.00014\n"
        "informed_share = 0.3\ninformed_jump_bps = 0.8\ninformed_jump_rate_per_s = 0.9\n"
        "sell_flow_mu = 2.5\nvenue_model = 'fifo'\n"
    )
    config = load_config(path, env={})
    params = with_simulator(scenario("calm-uninformed"), config.simulator)
    assert (params.mid0, params.tick_size, params.sigma) == (61800.0, 0.1, 0.00014)
    assert params.informed_share == 0.3 and params.venue_model == "fifo"
    assert params.sell_flow == (2.5, 0.5, 1.0) and params.buy_flow == (1.0, 0.5, 1.0)
    assert params.lot_size == scenario("calm-uninformed").lot_size  # unset: the scenario's
    assert with_simulator(params, AppConfig().simulator) is params


def test_a_simulator_section_the_market_cannot_carry_is_one_config_line(tmp_path, capsys):
    from market_maker.cli import main

    path = tmp_path / "loud.toml"
    path.write_text(
        "[simulator]\nsigma = 0.0001\ninformed_share = 0.5\ninformed_jump_bps = 5.0\n"
        "informed_jump_rate_per_s = 2.0\n"
    )
    code = main(["backtest", "--scenario", "calm", "--config", str(path), "--duration", "5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("market-maker: config error: simulator: informed moves")
