"""Config ranges that protect the run: whatever ``check-config`` accepts, a backtest runs.

Every numeric setting is found by walking the config's Structs (a new one is covered without
editing this file) and set to the extremes a typo or a unit mix-up gives: 0, the smallest
floats, tiny, negative and huge. A value the loader refuses must say which field and, for a
range, in which unit; a value it accepts must run a short backtest without raising.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from market_maker.backtest.session import run_session
from market_maker.config import AppConfig, build_config, field_unit
from market_maker.errors import ConfigError
from tests.stubs import rewrite_as_spot
from tests.test_config import ROOT

HYPERLIQUID = ROOT / "data" / "hyperliquid" / "btc_20250126.gz"
FLOATS = (0.0, 5e-324, 1e-308, 1e-9, -1.0, 1e9, 1e15)
INTS = (0, -1, 1, 10**9, 10**15)


def _numeric_settings(
    cls: type[msgspec.Struct], path: str = ""
) -> Iterator[tuple[str, msgspec.inspect.Type]]:
    for f in msgspec.inspect.type_info(cls).fields:  # type: ignore[union-attr]
        t = f.type
        if isinstance(t, msgspec.inspect.UnionType):
            (t,) = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
        name = f"{path}.{f.name}" if path else f.name
        if isinstance(t, msgspec.inspect.StructType):
            yield from _numeric_settings(t.cls, name)
        elif isinstance(t, msgspec.inspect.FloatType | msgspec.inspect.IntType):
            yield name, t


SETTINGS = dict(_numeric_settings(AppConfig))


def _nested(path: str, value: float) -> dict[str, object]:
    out: dict[str, object] = {}
    node = out
    *sections, name = path.split(".")
    for section in sections:
        node = node.setdefault(section, {})  # type: ignore[assignment]
    node[name] = value
    return out


def test_the_walk_finds_every_section_s_settings():
    assert len(SETTINGS) > 100
    assert {"estimators.intensity.step_s", "strategy.order_size", "simulator.k"} <= set(SETTINGS)


@pytest.mark.parametrize("path", sorted(SETTINGS))
def test_every_numeric_setting_has_a_unit_and_a_lower_bound(path):
    t = SETTINGS[path]
    assert field_unit(path), f"{path}: no unit for its errors"
    assert t.ge is not None or t.gt is not None, f"{path}: no lower bound"
    # Above, every number in a file is within +/-1e15 (the next test runs that too).


def _strategy(path: str) -> str:
    """The strategy that reads the setting (GLFT for the rest)."""
    if path.startswith("ladder."):
        return "ladder"
    if path.startswith("strategy.as_"):
        return "avellaneda_stoikov"
    if path.startswith("strategy.symmetric_"):
        return "symmetric"
    return "glft"


@functools.cache
def _spot_capture() -> Path:
    """A spot capture (the BTC capture's first lines rewritten as Binance spot)."""
    path = Path(tempfile.mkdtemp()) / "spot.gz"
    rewrite_as_spot(ROOT / "data" / "binance-usdm" / "btcusdt_20240808.gz", path, lines=3_000)
    return path


def _backtest(path: str, config: AppConfig) -> None:
    """Ten simulated seconds: volatility samples, intensity refits, quotes, fills."""
    strategy = _strategy(path)
    if path in ("instrument.base_balance", "instrument.quote_balance"):  # a spot account's
        run_session(config, strategy=strategy, data=_spot_capture(), seed=1, duration_s=10.0)
    elif path.startswith("instrument."):  # the exchange rules of a capture, not of a scenario
        run_session(config, strategy=strategy, data=HYPERLIQUID, seed=1, duration_s=10.0)
    else:
        run_session(config, strategy=strategy, scenario="calm", seed=1, duration_s=10.0)


@pytest.mark.parametrize("path", sorted(SETTINGS))
def test_extreme_values_are_refused_with_the_unit_or_run_a_backtest(path):
    is_int = isinstance(SETTINGS[path], msgspec.inspect.IntType)
    for value in INTS if is_int else FLOATS:
        try:
            config = build_config(_nested(path, value), source="x.toml")
        except ConfigError as exc:
            message = str(exc)
            assert message.startswith("x.toml: ") and "\n" not in message
            assert path.rpartition(".")[0] in message
            if "Expected `" in message and ("<" in message or ">" in message):
                assert f"({field_unit(path)})" in message, message
            continue
        try:
            _backtest(path, config)
        except ConfigError as exc:
            # An overlay for the simulator is checked against the scenario it overlays when a
            # backtest starts (its informed flow, its other side's flow): a refusal before the
            # first event, naming the section, never a crash.
            assert path.startswith("simulator.") and "simulator" in str(exc), (value, exc)
