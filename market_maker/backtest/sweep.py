"""Parameter sweeps: many configs x scenarios x seeds x captures, ranked by a risk-adjusted
objective under hard constraints, with an out-of-sample check of the best.

A grid file (TOML) names config settings by dotted path and gives their values::

    [sweep]
    method = "grid"                 # or "random" (``samples`` draws)
    scenarios = ["calm", "volatile"]
    seeds = 2                       # tuning seeds 1..2
    held_back_seeds = 2             # reporting seeds 3..4, never seen while tuning
    duration_s = 600

    [params]
    "strategy.gamma" = [0.02, 0.05, 0.1]                            # a list
    "risk.risk_fraction" = { from = 0.01, to = 0.04, steps = 4 }    # a range (log = true)
    "strategy.spread_multiplier" = { uniform = [0.8, 1.5] }         # random search only

Every point is built into an ``AppConfig`` (on top of ``base``, or the defaults) before any
run starts: a bad path or value is one error naming it.

**Objective** (per point, over its runs; USD per hour):
``score = mean(pnl_h) - sd_weight * sd(pnl_h) - drawdown_weight * mean(max_drawdown_h)``, where
``pnl_h`` is a run's PnL per hour and ``max_drawdown_h`` its maximum drawdown per hour (defaults
1 and 0.5). A point is **feasible** only with no failed run, 0 limit breaches in every run and
no HALTED state in a calm scenario; infeasible points rank after every feasible one.

**Out of sample**: the ``top`` feasible points and the base config are run again on held-back
seeds (scenarios) and on the later part of each capture (walk-forward: tuning sees the first
``tune_fraction`` of it), and both scores are reported side by side.

Runs go to processes (``concurrent.futures``) or to a Dask cluster; each finished run is
appended to ``runs.jsonl`` at once, so an interrupted sweep resumes without redoing it.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import math
import random
import statistics
import tomllib
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from market_maker.backtest.parallel import Mapper, dask_mapper, local_mapper
from market_maker.backtest.scenarios import SCENARIOS
from market_maker.backtest.scenarios import scenario as scenario_params
from market_maker.config import AppConfig, build_config, parse_toml
from market_maker.errors import ConfigError, MarketMakerError

if TYPE_CHECKING:
    from market_maker.backtest.runner import BacktestResult

__all__ = [
    "GridError",
    "PointSummary",
    "RunResult",
    "RunTask",
    "SweepPlan",
    "SweepResult",
    "build_plan",
    "config_toml",
    "load_grid",
    "run_sweep",
    "run_task",
    "runs_per_point",
]

_NS = 1_000_000_000
BASE = "base"
"""The id of the point without overrides (the base config itself)."""


class GridError(ConfigError):
    """A grid file that cannot be swept; the message names the file and the setting."""


class SweepSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[sweep]`` in a grid file; command-line options override it."""

    method: Literal["grid", "random"] = "grid"
    samples: int = 20
    """Random search: how many points to draw."""
    seed: int = 0
    """Random search: the draw's seed."""
    scenarios: list[str] = msgspec.field(default_factory=lambda: ["calm"])
    data: list[str] = msgspec.field(default_factory=list)
    """Captures, relative to the grid file (or absolute)."""
    seeds: int = 2
    held_back_seeds: int = 2
    duration_s: float = 600.0
    """Each scenario run's length (captures run whole, split by ``tune_fraction``)."""
    tune_fraction: float = 0.5
    top: int = 3
    """How many of the best feasible points to check out of sample."""
    base: str | None = None
    """A config file the points override (relative to the grid file); default: the defaults."""
    store: str | None = None
    """A market-data store (a folder relative to the grid file, or an fsspec URL): one run per
    UTC day of ``symbol`` from ``from`` to ``to``, walk-forward: the last ``held_back_days``
    are held back, the days before them tuned on."""
    symbol: str | None = None
    store_venue: str | None = None
    start: datetime.date | None = msgspec.field(default=None, name="from")
    end: datetime.date | None = msgspec.field(default=None, name="to")
    held_back_days: int = 1
    warmup_s: float = 600.0
    """Each store day's warm-up (read, not traded; ``backtest/segments.py``)."""


class Objective(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    sd_weight: float = 1.0
    drawdown_weight: float = 0.5


class RunTask(msgspec.Struct, kw_only=True, frozen=True):
    """One backtest of one point: a scenario with a seed, or a capture's time window."""

    key: str
    point: str
    split: Literal["tune", "test"]
    overrides: dict[str, Any]
    scenario: str | None = None
    data: str | None = None
    seed: int = 1
    start_s: float = 0.0
    duration_s: float | None = None
    store: str | None = None
    symbol: str | None = None
    store_venue: str | None = None
    day: str | None = None
    """A store day (``YYYY-MM-DD``), run as a segment with ``warmup_s`` before it."""
    warmup_s: float = 0.0


class RunResult(msgspec.Struct, kw_only=True, frozen=True):
    """What a run gave; ``error`` is set (and the figures zero) when it failed."""

    key: str
    point: str
    split: str
    source: str
    seed: int
    pnl_usd: float = 0.0
    duration_s: float = 0.0
    max_drawdown_usd: float = 0.0
    fills: int = 0
    limit_breaches: int = 0
    halted: bool = False
    max_limit_utilisation: float = 0.0
    error: str = ""


class PointSummary(msgspec.Struct, kw_only=True, frozen=True):
    """A point's score on one split."""

    runs: int
    score: float
    pnl_per_hour: float
    pnl_sd_per_hour: float
    drawdown_per_hour: float
    fills: int
    feasible: bool
    why_not: str = ""


class SweepPlan(msgspec.Struct, kw_only=True, frozen=True):
    """A validated grid: every point's overrides and the runs to tune on."""

    grid: str
    settings: SweepSettings
    objective: Objective
    base_data: dict[str, Any]
    points: dict[str, dict[str, Any]]
    """Point id -> dotted path -> value; ``base`` has none."""
    captures: dict[str, float]
    """Capture path -> its length in seconds (for the walk-forward split)."""
    fingerprint: str
    store_days: list[str] = msgspec.field(default_factory=list)
    """The store's days with data, in order: the last ``held_back_days`` are held back."""


class SweepResult(msgspec.Struct, kw_only=True, frozen=True):
    plan: SweepPlan
    tune: dict[str, PointSummary]
    test: dict[str, PointSummary]
    ranking: list[str]
    """Point ids, best first (feasible before infeasible)."""
    failures: list[RunResult]
    runs: int
    reused: int
    """Runs found already done in the output directory (a resumed sweep)."""


# ----- the grid file ------------------------------------------------------------------------


def _setting_type(path: str, where: str) -> Any:
    """The type of ``path`` in ``AppConfig`` (raises ``GridError`` if there is none)."""
    kind: Any = AppConfig
    parts = path.split(".")
    for i, part in enumerate(parts):
        fields = getattr(kind, "__struct_fields__", None)
        if fields is None:
            raise GridError(f"{where}: {path!r}: {'.'.join(parts[:i])} is a value, not a section")
        if part not in fields:
            section = ".".join(parts[:i]) or "the config"
            raise GridError(f"{where}: {path!r}: no setting {part!r} in [{section}]")
        kind = typing.get_type_hints(kind)[part]
        origin = typing.get_origin(kind)
        if origin is typing.Annotated:
            kind = typing.get_args(kind)[0]
    if hasattr(kind, "__struct_fields__"):
        raise GridError(f"{where}: {path!r} is a section; name one of its settings")
    return kind


def _values(path: str, spec: Any, method: str, where: str) -> list[Any] | tuple[str, float, float]:
    """A list of values, or ("uniform" | "log_uniform", low, high) for random draws."""
    if isinstance(spec, list):
        if not spec:
            raise GridError(f"{where}: {path!r}: an empty list")
        return spec
    if not isinstance(spec, dict):
        return [spec]
    log = bool(spec.get("log", False))
    if "uniform" in spec:
        low_high = spec["uniform"]
        if method != "random":
            raise GridError(f'{where}: {path!r}: uniform draws need method = "random"')
        if not (isinstance(low_high, list) and len(low_high) == 2):
            raise GridError(f"{where}: {path!r}: uniform = [low, high]")
        low, high = float(low_high[0]), float(low_high[1])
        if not low < high or (log and low <= 0.0):
            raise GridError(f"{where}: {path!r}: uniform needs low < high (and > 0 with log)")
        return ("log_uniform" if log else "uniform", low, high)
    if "from" in spec and "to" in spec:
        start, stop = spec["from"], spec["to"]
        if "step" in spec and all(isinstance(v, int) for v in (start, stop, spec["step"])):
            step = spec["step"]
            if step <= 0 or stop < start:
                raise GridError(f"{where}: {path!r}: needs from <= to and step > 0")
            return list(range(start, stop + 1, step))
        steps = spec.get("steps")
        if not isinstance(steps, int) or steps < 2 or steps > 1000:
            raise GridError(f"{where}: {path!r}: a range needs steps = 2..1000 (or an int step)")
        a, b = float(start), float(stop)
        if log:
            if a <= 0.0 or b <= 0.0:
                raise GridError(f"{where}: {path!r}: a log range needs from and to > 0")
            vals = [a * (b / a) ** (i / (steps - 1)) for i in range(steps)]
        else:
            vals = [a + (b - a) * i / (steps - 1) for i in range(steps)]
        return [float(f"{v:.6g}") for v in vals]
    raise GridError(
        f"{where}: {path!r}: give a list, {{ from, to, steps }} or {{ uniform = [low, high] }}"
    )


def _nest(overrides: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(base))  # a deep copy of plain TOML data
    for path, value in overrides.items():
        node = data
        *sections, name = path.split(".")
        for part in sections:
            node = node.setdefault(part, {})
        node[name] = value
    return data


def _build(base: Mapping[str, Any], overrides: Mapping[str, Any], source: str) -> AppConfig:
    """The point's config, validated like a config file."""
    return build_config(_nest(overrides, base), source=source)


def load_grid(path: str | Path) -> tuple[SweepSettings, Objective, dict[str, Any], Path]:
    """Read a grid file: its ``[sweep]``, ``[objective]`` and ``[params]`` tables."""
    where = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise GridError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GridError(f"{where}: invalid TOML: {exc}") from None
    unknown = sorted(set(raw) - {"sweep", "objective", "params"})
    if unknown:
        raise GridError(f"{where}: unknown table [{unknown[0]}] (sweep, objective, params)")
    try:
        settings = msgspec.convert(raw.get("sweep", {}), SweepSettings)
        objective = msgspec.convert(raw.get("objective", {}), Objective)
    except msgspec.ValidationError as exc:
        raise GridError(f"{where}: {exc}") from None
    params = raw.get("params", {})
    if not isinstance(params, dict) or not params:
        raise GridError(f"{where}: [params] names no setting to sweep")
    return settings, objective, params, Path(path).parent


def build_plan(
    grid: str | Path,
    *,
    settings: SweepSettings | None = None,
    base_text: str | None = None,
) -> SweepPlan:
    """Validate every point of ``grid`` (``settings`` replace its ``[sweep]``) and measure the
    captures; nothing runs yet."""
    where = str(grid)
    file_settings, objective, params, home = load_grid(grid)
    s = settings or file_settings
    for name in s.scenarios:
        if name not in SCENARIOS or name == "as2008":
            choices = ", ".join(sorted(k for k in SCENARIOS if k != "as2008"))
            raise GridError(f"{where}: scenario {name!r}: one of {choices}")
    if not s.scenarios and not s.data and not s.store:
        raise GridError(f"{where}: no scenario, no capture and no store to run on")
    if s.seeds < 1 or s.held_back_seeds < 0 or not 0.0 < s.tune_fraction < 1.0:
        raise GridError(f"{where}: needs seeds >= 1, held_back_seeds >= 0, 0 < tune_fraction < 1")
    if base_text is None:
        base_text = ""
        if s.base is not None:
            base_path = home / s.base
            try:
                base_text = base_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise GridError(f"{where}: base {base_path}: {exc.strerror or exc}") from None
    base_data = parse_toml(base_text, source=s.base or "<defaults>")
    build_config(base_data, source=s.base or "<defaults>")  # the base itself must be valid

    axes: dict[str, list[Any] | tuple[str, float, float]] = {}
    for path, spec in params.items():
        _setting_type(path, where)
        axes[path] = _values(path, spec, s.method, where)
    points: dict[str, dict[str, Any]] = {BASE: {}}
    if s.method == "grid":
        lists = {p: v for p, v in axes.items() if isinstance(v, list)}
        for i, combo in enumerate(itertools.product(*lists.values())):
            points[f"p{i + 1:04d}"] = dict(zip(lists, combo, strict=True))
    else:
        rng = random.Random(s.seed)
        for i in range(s.samples):
            point: dict[str, Any] = {}
            for p, v in axes.items():
                if isinstance(v, list):
                    point[p] = rng.choice(v)
                elif v[0] == "log_uniform":
                    point[p] = float(f"{math.exp(rng.uniform(math.log(v[1]), math.log(v[2]))):.6g}")
                else:
                    point[p] = float(f"{rng.uniform(v[1], v[2]):.6g}")
            points[f"p{i + 1:04d}"] = point
    for pid, overrides in points.items():
        try:
            _build(base_data, overrides, f"{where}: point {pid} {_describe(overrides)}")
        except ConfigError as exc:
            raise GridError(str(exc)) from None

    captures: dict[str, float] = {}
    for name in s.data:
        capture = Path(name) if Path(name).is_absolute() else home / name
        if not capture.exists():
            capture = Path(name)  # a path given on the command line, from the working dir
        if not capture.is_file():
            raise GridError(f"{where}: capture {name}: no such file")
        captures[str(capture.resolve())] = _capture_seconds(capture)
    days: list[str] = []
    if s.store is not None:
        s, days = _store_plan(s, home, where)
    fingerprint = hashlib.sha256(
        msgspec.json.encode([s, objective, base_data, points, sorted(captures), days])
    ).hexdigest()[:16]
    return SweepPlan(
        grid=where,
        settings=s,
        objective=objective,
        base_data=base_data,
        points=points,
        captures=captures,
        fingerprint=fingerprint,
        store_days=days,
    )


def _store_plan(s: SweepSettings, home: Path, where: str) -> tuple[SweepSettings, list[str]]:
    """The settings with the store's path resolved, and the store's days in the range."""
    from market_maker.backtest.segments import store_days
    from market_maker.backtest.session import StoreRange

    assert s.store is not None
    if not s.symbol:
        raise GridError(f"{where}: store {s.store}: name the symbol (symbol = ...)")
    if s.held_back_days < 1 or not s.warmup_s >= 0.0:
        raise GridError(f"{where}: needs held_back_days >= 1 and warmup_s >= 0")
    if s.start and s.end and s.end < s.start:
        raise GridError(f"{where}: to = {s.end} is before from = {s.start}")
    store = s.store
    if "://" not in store and not Path(store).is_absolute():
        local = home / store
        store = str((local if local.exists() else Path(store)).resolve())
    try:
        days = store_days(
            StoreRange(store=store, symbol=s.symbol, start=s.start, end=s.end, venue=s.store_venue)
        )
    except MarketMakerError as exc:
        raise GridError(f"{where}: {exc}") from None
    if len(days) <= s.held_back_days:
        raise GridError(
            f"{where}: store {s.store}: {len(days)} days of {s.symbol} in the range, and "
            f"{s.held_back_days} held back leaves none to tune on"
        )
    return msgspec.structs.replace(s, store=store), days


def _capture_seconds(path: Path) -> float:
    from market_maker.venues.replay import ReplayStats, read_capture

    first = last = None
    for ns, _ in read_capture(path, ReplayStats()):
        if first is None:
            first = ns
        last = ns
    return 0.0 if first is None or last is None else (last - first) / _NS


def _describe(overrides: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "(base)"


# ----- runs ---------------------------------------------------------------------------------


def runs_per_point(plan: SweepPlan) -> int:
    """Tuning runs per point: scenarios x seeds, plus one per capture."""
    return (
        len(plan.settings.scenarios) * plan.settings.seeds
        + len(plan.captures)
        + len(_split_days(plan, "tune"))
    )


def _split_days(plan: SweepPlan, split: Literal["tune", "test"]) -> list[str]:
    """Walk-forward by day: the earlier days tune, the last ``held_back_days`` are held."""
    held = plan.settings.held_back_days if plan.store_days else 0
    cut = len(plan.store_days) - held
    return plan.store_days[:cut] if split == "tune" else plan.store_days[cut:]


def _tasks(plan: SweepPlan, points: Iterable[str], split: Literal["tune", "test"]) -> list[RunTask]:
    s = plan.settings
    seeds = (
        range(1, s.seeds + 1)
        if split == "tune"
        else range(s.seeds + 1, s.seeds + s.held_back_seeds + 1)
    )
    out = []
    for pid in points:
        overrides = plan.points[pid]
        for name in s.scenarios:
            for seed in seeds:
                out.append(
                    RunTask(
                        key=f"{pid}|{split}|scenario:{name}|{seed}",
                        point=pid,
                        split=split,
                        overrides=overrides,
                        scenario=name,
                        seed=seed,
                        duration_s=s.duration_s,
                    )
                )
        for capture, seconds in plan.captures.items():
            cut = seconds * s.tune_fraction
            start, length = (0.0, cut) if split == "tune" else (cut, seconds - cut)
            out.append(
                RunTask(
                    key=f"{pid}|{split}|data:{capture}|1",
                    point=pid,
                    split=split,
                    overrides=overrides,
                    data=capture,
                    seed=1,
                    start_s=start,
                    duration_s=length,
                )
            )
        for day in _split_days(plan, split):
            out.append(
                RunTask(
                    key=f"{pid}|{split}|store:{s.symbol}:{day}|1",
                    point=pid,
                    split=split,
                    overrides=overrides,
                    store=s.store,
                    symbol=s.symbol,
                    store_venue=s.store_venue,
                    day=day,
                    warmup_s=s.warmup_s,
                )
            )
    return out


def run_task(base_data: dict[str, Any], task: RunTask) -> RunResult:
    """Run one backtest (in a worker process); an exception becomes the result's ``error``."""
    from market_maker.backtest.session import run_session

    try:
        config = _build(base_data, task.overrides, task.point)
        if task.day is not None:
            return _store_day(config, task)
        result, _ = run_session(
            config,
            scenario=task.scenario,
            data=Path(task.data) if task.data else None,
            seed=task.seed,
            duration_s=task.duration_s,
            start_s=task.start_s,
        )
    except Exception as exc:  # a failing point is recorded and the sweep goes on
        return _failed(task, f"{type(exc).__name__}: {exc}")
    return _from_backtest(task, result)


def _from_backtest(task: RunTask, result: BacktestResult) -> RunResult:
    """The sweep's row for one finished backtest."""
    return _result(
        task,
        pnl_usd=result.pnl_usd,
        duration_s=result.duration_s,
        max_drawdown_usd=result.max_drawdown_usd,
        fills=result.fills,
        limit_breaches=result.limit_breaches,
        halted=any(state == "halted" for _, state, _ in result.state_changes),
        max_limit_utilisation=result.max_limit_utilisation,
    )


def _store_day(config: AppConfig, task: RunTask) -> RunResult:
    from market_maker.backtest.segments import SegmentJob, day_segment, run_segment

    assert task.store is not None and task.symbol is not None and task.day is not None
    job = SegmentJob(
        store=task.store,
        symbol=task.symbol,
        venue=task.store_venue,
        segment=day_segment(task.day, task.warmup_s),
        seed=task.seed,
    )
    outcome = run_segment(config, job)
    result = outcome.result
    if result is None:
        return _failed(task, outcome.error)
    return _from_backtest(task, result)


Executor = Callable[[dict[str, Any], Sequence[RunTask], Callable[[RunResult], None]], None]


def process_executor(workers: int) -> Executor:
    """Runs on ``workers`` local processes (``concurrent.futures``)."""
    return _executor(local_mapper(workers))


def dask_executor(address: str) -> Executor:
    """Runs on the Dask distributed cluster at ``address`` (``tcp://host:8786``)."""
    return _executor(dask_mapper(address))


def _executor(mapper: Mapper) -> Executor:
    def execute(
        base: dict[str, Any], tasks: Sequence[RunTask], done: Callable[[RunResult], None]
    ) -> None:
        mapper(
            run_task,
            [(base, t) for t in tasks],
            [t.key for t in tasks],
            lambda i, future: done(_outcome(future, tasks[i])),
        )

    return execute


def _outcome(future: Any, task: RunTask) -> RunResult:
    try:
        result: RunResult = future.result()
        return result
    except Exception as exc:  # the worker died: recorded like a failing run
        return _failed(task, f"worker: {type(exc).__name__}: {exc}")


def _result(task: RunTask, **figures: Any) -> RunResult:
    if task.scenario:
        source = f"scenario:{task.scenario}"
    elif task.day is not None:
        source = f"store:{task.symbol}:{task.day}"
    else:
        source = f"data:{Path(task.data or '').name}"
    return RunResult(
        key=task.key, point=task.point, split=task.split, source=source, seed=task.seed, **figures
    )


def _failed(task: RunTask, error: str) -> RunResult:
    return _result(task, error=error[:500])


# ----- scoring ------------------------------------------------------------------------------


def summarise(runs: Sequence[RunResult], objective: Objective) -> PointSummary:
    """A point's score over its runs on one split (see the module's docstring)."""
    failed = [r for r in runs if r.error]
    ok = [r for r in runs if not r.error and r.duration_s > 0.0]
    hourly = [r.pnl_usd / r.duration_s * 3600.0 for r in ok]
    drawdown = [r.max_drawdown_usd / r.duration_s * 3600.0 for r in ok]
    mean = statistics.fmean(hourly) if hourly else 0.0
    sd = statistics.stdev(hourly) if len(hourly) > 1 else 0.0
    dd = statistics.fmean(drawdown) if drawdown else 0.0
    why = ""
    if failed:
        why = f"{len(failed)} failed: {failed[0].error}"
    elif not ok:
        why = "no runs"
    elif any(r.limit_breaches for r in ok):
        why = f"{sum(r.limit_breaches for r in ok)} limit breaches"
    elif any(r.halted and r.source == "scenario:calm" for r in ok):
        why = "halted in a calm scenario"
    return PointSummary(
        runs=len(runs),
        score=mean - objective.sd_weight * sd - objective.drawdown_weight * dd,
        pnl_per_hour=mean,
        pnl_sd_per_hour=sd,
        drawdown_per_hour=dd,
        fills=sum(r.fills for r in ok),
        feasible=not why,
        why_not=why,
    )


def _rank(summaries: Mapping[str, PointSummary]) -> list[str]:
    return sorted(summaries, key=lambda p: (not summaries[p].feasible, -summaries[p].score, p))


# ----- the sweep ----------------------------------------------------------------------------


def run_sweep(
    plan: SweepPlan,
    out: str | Path,
    executor: Executor,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Tune, then check the best out of sample; resumable from ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "sweep.json"
    if manifest.exists():
        previous = json.loads(manifest.read_text(encoding="utf-8")).get("fingerprint")
        if previous != plan.fingerprint:
            raise GridError(
                f"{out}: holds a different sweep (grid, settings or data changed); "
                "use another --out"
            )
    else:
        manifest.write_bytes(
            msgspec.json.format(
                msgspec.json.encode({"fingerprint": plan.fingerprint, "plan": plan})
            )
        )
    log = out / "runs.jsonl"
    done: dict[str, RunResult] = {}
    if log.exists():
        decoder = msgspec.json.Decoder(RunResult)
        for line in log.read_bytes().splitlines():
            try:
                r = decoder.decode(line)
            except msgspec.DecodeError:
                continue  # the last line of a killed sweep may be cut short
            done[r.key] = r
    reused = len(done)

    with log.open("ab") as sink:

        def phase(tasks: list[RunTask]) -> None:
            todo = [t for t in tasks if t.key not in done]
            finished = len(tasks) - len(todo)
            if progress is not None:
                progress(finished, len(tasks))

            def record(r: RunResult) -> None:
                nonlocal finished
                sink.write(msgspec.json.encode(r) + b"\n")
                sink.flush()
                done[r.key] = r
                finished += 1
                if progress is not None:
                    progress(finished, len(tasks))

            executor(plan.base_data, todo, record)

        tune_tasks = _tasks(plan, plan.points, "tune")
        phase(tune_tasks)
        tune = {
            pid: summarise([done[t.key] for t in tune_tasks if t.point == pid], plan.objective)
            for pid in plan.points
        }
        ranking = _rank(tune)
        s = plan.settings
        test: dict[str, PointSummary] = {}
        if s.held_back_seeds or plan.captures or plan.store_days:
            chosen = [p for p in ranking if tune[p].feasible and p != BASE][: s.top]
            chosen.append(BASE)
            test_tasks = _tasks(plan, chosen, "test")
            phase(test_tasks)
            test = {
                pid: summarise([done[t.key] for t in test_tasks if t.point == pid], plan.objective)
                for pid in chosen
            }
    failures = [r for r in done.values() if r.error]
    return SweepResult(
        plan=plan,
        tune=tune,
        test=test,
        ranking=ranking,
        failures=sorted(failures, key=lambda r: r.key),
        runs=len(done),
        reused=reused,
    )


# ----- outputs ------------------------------------------------------------------------------


def write_outputs(result: SweepResult, out: str | Path) -> list[Path]:
    """``points.csv`` (ranked), ``pareto.png`` and ``best.toml``; return their paths."""
    import csv

    out = Path(out)
    plan = result.plan
    names = sorted({k for o in plan.points.values() for k in o})
    table = out / "points.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        cols = ["score", "pnl_per_hour", "pnl_sd_per_hour", "drawdown_per_hour", "fills"]
        w.writerow(
            ["rank", "point", *names, "feasible", "why_not"]
            + [f"tune_{c}" for c in cols]
            + [f"test_{c}" for c in cols]
        )
        for rank, pid in enumerate(result.ranking, 1):
            t = result.tune[pid]
            h = result.test.get(pid)
            w.writerow(
                [
                    rank,
                    pid,
                    *(plan.points[pid].get(n, "") for n in names),
                    int(t.feasible),
                    t.why_not,
                ]
                + [_num(getattr(t, c)) for c in cols]
                + [("" if h is None else _num(getattr(h, c))) for c in cols]
            )
    paths = [table, _pareto(result, out / "pareto.png")]
    best = best_point(result)
    if best is not None:
        target = out / "best.toml"
        target.write_text(best_config_text(result, best), encoding="utf-8")
        paths.append(target)
    return paths


def _num(v: float | int) -> str:
    return str(v) if isinstance(v, int) else f"{v:.6g}"


def best_point(result: SweepResult) -> str | None:
    """The best feasible point by the tuning score (None if no point is feasible)."""
    feasible = [p for p in result.ranking if result.tune[p].feasible]
    return feasible[0] if feasible else None


def best_config_text(result: SweepResult, point: str) -> str:
    """A ready-to-use config: the base config with the point's settings, and a header saying
    how it was found."""
    plan = result.plan
    s = plan.settings
    t = result.tune[point]
    h = result.test.get(point)
    base = result.test.get(BASE)
    config = _build(plan.base_data, plan.points[point], point)
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    data = ", ".join(Path(c).name for c in plan.captures) or "none"
    tuned, held_days = _split_days(plan, "tune"), _split_days(plan, "test")
    header = [
        f"# market-maker sweep, {today}: point {point} of {len(plan.points)} "
        f"({s.method} search over {plan.grid})",
        f"#   {_describe(plan.points[point])}",
        f"# scenarios: {', '.join(s.scenarios) or 'none'} ({s.duration_s:g} s); captures: {data}",
        f"# tuning seeds 1-{s.seeds}; held back: seeds {s.seeds + 1}-{s.seeds + s.held_back_seeds}"
        + (f", the last {1 - s.tune_fraction:.0%} of each capture" if plan.captures else ""),
        *(
            [
                f"# store {s.store} {s.symbol}: tuned on {tuned[0]}..{tuned[-1]}, held back "
                f"{held_days[0]}..{held_days[-1]} ({s.warmup_s:g} s warm-up a day)"
            ]
            if tuned and held_days
            else []
        ),
        "# objective: mean PnL/h - "
        f"{plan.objective.sd_weight:g} x sd(PnL/h) - {plan.objective.drawdown_weight:g} x "
        "mean max drawdown/h (USD/h); 0 breaches, no halt in calm",
        *_fee_lines(config, s.scenarios, plan.captures),
        f"# tuning score {t.score:.4g} USD/h (PnL {t.pnl_per_hour:.4g}/h)"
        + (f"; held back {h.score:.4g} USD/h (PnL {h.pnl_per_hour:.4g}/h)" if h else "")
        + (f"; base config held back {base.score:.4g} USD/h" if base and point != BASE else ""),
    ]
    held = [r.score for r in result.test.values() if r.runs]
    if held and max(held) < 0.0:
        header.append(
            "# WARNING: every held-back score is negative: this is the setting that lost least,"
        )
        header.append("# not one that makes money.")
    header.append("")
    return "\n".join(header) + config_toml(config)


def _fee_lines(config: AppConfig, scenarios: Sequence[str], captures: Iterable[str]) -> list[str]:
    """The fees every run was charged (the PnL the objective scores is net of them)."""
    from market_maker.fees import apply_fees
    from market_maker.instruments import resolve_instrument
    from market_maker.venues.replay import capture_info

    out = []
    for name in scenarios:
        params = scenario_params(name)
        maker = config.fees.maker_bps if config.fees.maker_bps is not None else None
        taker = config.fees.taker_bps if config.fees.taker_bps is not None else None
        out.append(
            f"# fees ({name}): maker {params.maker_fee_bps if maker is None else maker:g} bp, "
            f"taker {params.taker_fee_bps if taker is None else taker:g} bp"
        )
    for path in captures:
        try:
            info = capture_info(path, config.instrument.market)
            inst = resolve_instrument(
                info.venue, info.symbol, price=info.price, overrides=config.instrument
            )
            _, rates = apply_fees(inst, config.fees)
        except MarketMakerError:
            continue
        out.append(
            f"# fees ({Path(path).name}, {info.venue}): maker {rates.maker_bps:g} bp, "
            f"taker {rates.taker_bps:g} bp ({rates.source})"
        )
    return out


def config_toml(config: AppConfig) -> str:
    """Every setting of ``config`` as TOML that ``load_config`` reads back to an equal config
    (unset optional settings are left out)."""
    lines: list[str] = []

    def emit(table: str, data: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and v is not None}
        if scalars and table:
            lines.append(f"\n[{table}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {_toml_value(v)}")
        for k, v in data.items():
            if isinstance(v, dict):
                emit(f"{table}.{k}" if table else k, v)

    emit("", msgspec.to_builtins(config))
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def _pareto(result: SweepResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6))
    feasible = [p for p in result.ranking if result.tune[p].feasible]
    other = [p for p in result.ranking if not result.tune[p].feasible]
    ax.scatter(
        [result.tune[p].drawdown_per_hour for p in feasible],
        [result.tune[p].pnl_per_hour for p in feasible],
        s=18,
        color="tab:blue",
        label="feasible",
    )
    if other:
        ax.scatter(
            [result.tune[p].drawdown_per_hour for p in other],
            [result.tune[p].pnl_per_hour for p in other],
            s=18,
            marker="x",
            color="tab:gray",
            label="infeasible (breaches, halts, errors)",
        )
    front = []
    best_pnl = -math.inf
    for p in sorted(
        feasible, key=lambda q: (result.tune[q].drawdown_per_hour, -result.tune[q].pnl_per_hour)
    ):
        if result.tune[p].pnl_per_hour > best_pnl:
            best_pnl = result.tune[p].pnl_per_hour
            front.append(p)
    if front:
        ax.plot(
            [result.tune[p].drawdown_per_hour for p in front],
            [result.tune[p].pnl_per_hour for p in front],
            color="tab:blue",
            lw=0.8,
            label="Pareto front",
        )
    best = best_point(result)
    for pid, marker, colour, label in (
        (best, "*", "tab:red", "best score"),
        (BASE, "s", "black", "base config"),
    ):
        if pid is not None and pid in result.tune:
            t = result.tune[pid]
            ax.scatter(
                [t.drawdown_per_hour],
                [t.pnl_per_hour],
                s=120,
                marker=marker,
                color=colour,
                label=f"{label} ({pid})",
                zorder=3,
            )
    ax.set_xlabel("mean max drawdown (USD per hour)")
    ax.set_ylabel("mean PnL (USD per hour)")
    ax.set_title(f"{result.plan.grid}: {len(result.plan.points)} points, tuning runs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def format_sweep(result: SweepResult, top: int = 10) -> str:
    """The ranked table (best first) with held-back scores beside the tuning ones."""
    plan = result.plan
    lines = [
        f"Sweep  {plan.grid}  {len(plan.points)} points, {result.runs} runs "
        f"({result.reused} reused)",
        f"{'rank':>4} {'point':<6} {'tune':>9} {'held':>9} {'PnL/h':>8} {'DD/h':>7} "
        f"{'fills':>6}  settings",
    ]
    shown = result.ranking[:top]
    if BASE not in shown:
        shown.append(BASE)
    for pid in shown:
        t = result.tune[pid]
        h = result.test.get(pid)
        held = f"{h.score:>9.2f}" if h is not None else f"{'':>9}"
        mark = "" if t.feasible else f"  [infeasible: {t.why_not}]"
        lines.append(
            f"{result.ranking.index(pid) + 1:>4} {pid:<6} {t.score:>9.2f} {held} "
            f"{t.pnl_per_hour:>8.2f} {t.drawdown_per_hour:>7.2f} {t.fills:>6}  "
            f"{_describe(plan.points[pid])}{mark}"
        )
    lines.append("scores: risk-adjusted USD/h (tuning runs | held-back seeds and later data)")
    if result.failures:
        lines.append(
            f"{len(result.failures)} runs failed; first: {result.failures[0].key}: "
            f"{result.failures[0].error}"
        )
    return "\n".join(lines)
