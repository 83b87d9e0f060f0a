"""Long backtests on many workers: a store range cut into independent segments, run in
parallel and merged into one summary (``merge.py``) with a row per segment.

Segments are aligned to the UTC clock (``length_s`` divides a day: a day, an hour, ...), and
only those where the store has data are run. Each runs on its own from ``start - warmup_s``:
during the warm-up the engine reads the market (its volatility, trade rate and cascade
baseline learn it) but quotes nothing (``runner.warm_up``), and nothing before ``start`` is
counted. So **each segment starts flat**, with no orders, and its position at its end is
marked at the mid, as a single run's is at its end: inventory does not carry from one segment
into the next (a continuous run would carry it, and its PnL would differ by what that
inventory then earned or lost). The warm-up reads the store before ``start`` whatever range was
asked for, so a day's row does not depend on which days were run with it; each segment uses
the same seed, and its feed latency is read from its own stamps.

Segments run on local processes or a Dask cluster (``parallel.py``); a segment's figures do
not depend on where or in which order it ran, so any number of workers gives the same summary.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from market_maker.backtest.analytics import FillRecord
from market_maker.backtest.merge import PathStats, merge_results
from market_maker.backtest.parallel import Mapper
from market_maker.backtest.runner import BacktestResult, Recording
from market_maker.backtest.session import StoreRange, run_session
from market_maker.config import AppConfig
from market_maker.errors import MarketMakerError
from market_maker.model import Instrument

__all__ = [
    "DAY_S",
    "Segment",
    "SegmentJob",
    "SegmentOutcome",
    "SegmentedRun",
    "day_segment",
    "format_segments",
    "parse_length",
    "plan_segments",
    "run_segment",
    "run_segmented",
    "segment_rows",
    "store_days",
    "write_segment_report",
]

NS_PER_S = 1_000_000_000
DAY_S = 86_400
MIN_SEGMENT_S = 60


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    """The counted part ``[start_ns, end_ns)`` and where its warm-up begins (epoch ns)."""

    index: int
    label: str
    start_ns: int
    end_ns: int
    warmup_from_ns: int


class SegmentJob(msgspec.Struct, frozen=True, kw_only=True):
    """One segment to run, with everything a worker needs besides the config."""

    store: str
    symbol: str
    venue: str | None
    segment: Segment
    strategy: str | None = None
    seed: int = 1
    feed_latency_ms: float | None = None


class SegmentOutcome(msgspec.Struct, kw_only=True):
    """What a segment gave (``result`` None and ``error`` set when it failed)."""

    segment: Segment
    result: BacktestResult | None = None
    fills: list[FillRecord] = msgspec.field(default_factory=list)
    path: PathStats = msgspec.field(default_factory=PathStats)
    instrument: Instrument | None = None
    """The market's rules as the segment traded it (prices in reports are written from it)."""
    error: str = ""


class SegmentedRun(msgspec.Struct, kw_only=True):
    summary: BacktestResult
    segments: list[SegmentOutcome]
    length_s: float
    warmup_s: float
    elapsed_s: float
    """Wall-clock seconds from the first segment sent to the last merged."""


def parse_length(text: str) -> float:
    """``day``, ``hour``, or a count with a unit (``6h``, ``30m``, ``120s``): seconds."""
    word = text.strip().lower()
    named = {"day": DAY_S, "hour": 3_600}
    if word in named:
        return float(named[word])
    units = {"d": DAY_S, "h": 3_600, "m": 60, "s": 1}
    try:
        seconds = float(word[:-1]) * units[word[-1]] if word and word[-1] in units else None
    except ValueError:
        seconds = None
    if seconds is None:
        raise MarketMakerError(f"--segments {text!r}: day, hour, or e.g. 6h, 30m, 120s")
    if seconds < MIN_SEGMENT_S or seconds > DAY_S or DAY_S % seconds:
        raise MarketMakerError(
            f"--segments {text!r}: a length from 1 min to a day that divides a day"
        )
    return seconds


def _label(start_ns: int, length_s: float) -> str:
    t = dt.datetime.fromtimestamp(start_ns // NS_PER_S, tz=dt.UTC)
    if length_s == DAY_S:
        return t.date().isoformat()
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def plan_segments(
    spans: Sequence[tuple[int, int]], *, length_s: float, warmup_s: float
) -> list[Segment]:
    """The UTC-aligned segments of ``length_s`` that hold data (``spans``: each file's first
    and last receive time, epoch ns), each with its warm-up."""
    if not spans:
        return []
    length = int(length_s * NS_PER_S)
    warmup = int(warmup_s * NS_PER_S)
    starts: set[int] = set()
    for first, last in spans:
        starts.update(range(first // length * length, last // length * length + 1, length))
    return [
        Segment(
            index=i,
            label=_label(start, length_s),
            start_ns=start,
            end_ns=start + length,
            warmup_from_ns=start - warmup,
        )
        for i, start in enumerate(sorted(starts))
    ]


def _day(ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ns // NS_PER_S, tz=dt.UTC).date()


def run_segment(config: AppConfig, job: SegmentJob) -> SegmentOutcome:
    """Run one segment (in a worker); an exception becomes the outcome's ``error``."""
    seg = job.segment
    try:
        store = StoreRange(
            store=job.store,
            symbol=job.symbol,
            venue=job.venue,
            start=_day(seg.warmup_from_ns),
            end=_day(seg.end_ns - 1),
            from_ns=seg.warmup_from_ns,
            count_from_ns=seg.start_ns,
            until_ns=seg.end_ns,
        )
        result, rec = run_session(
            config,
            strategy=job.strategy,
            store=store,
            seed=job.seed,
            record=True,
            feed_latency_ms=job.feed_latency_ms,
        )
    except Exception as exc:  # a failing segment is reported by the caller, with its name
        return SegmentOutcome(segment=seg, error=f"{type(exc).__name__}: {exc}"[:500])
    assert rec is not None
    path = [*rec.pnl_usd, result.pnl_usd] if result.events else []
    return SegmentOutcome(
        segment=seg,
        result=result,
        fills=rec.fills,
        path=PathStats.of(path),
        instrument=rec.instrument,
    )


def run_segmented(
    config: AppConfig,
    store: StoreRange,
    mapper: Mapper,
    *,
    length_s: float = DAY_S,
    warmup_s: float = 600.0,
    strategy: str | None = None,
    seed: int = 1,
    feed_latency_ms: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SegmentedRun:
    """Cut ``store``'s range into segments, run them with ``mapper`` and merge them."""
    market = store.open(config)  # reads the files' metadata only: the range, the counts
    segments = plan_segments(
        [(p.meta.first_ns, p.meta.last_ns) for p in market.parts],
        length_s=length_s,
        warmup_s=warmup_s,
    )
    jobs = [
        SegmentJob(
            store=store.store,
            symbol=market.symbol,
            venue=market.venue,
            segment=seg,
            strategy=strategy,
            seed=seed,
            feed_latency_ms=feed_latency_ms,
        )
        for seg in segments
    ]
    outcomes: list[SegmentOutcome | None] = [None] * len(jobs)
    finished = 0
    if progress is not None:
        progress(0, len(jobs))

    def done(i: int, future: object) -> None:
        nonlocal finished
        try:
            outcomes[i] = future.result()  # type: ignore[attr-defined]
        except Exception as exc:  # the worker died
            outcomes[i] = SegmentOutcome(segment=segments[i], error=f"worker: {exc}"[:500])
        finished += 1
        if progress is not None:
            progress(finished, len(jobs))

    wall0 = time.perf_counter()
    mapper(run_segment, [(config, j) for j in jobs], [_key(store, j) for j in jobs], done)
    elapsed = time.perf_counter() - wall0
    got = [o for o in outcomes if o is not None]
    failed = [o for o in got if o.error or o.result is None]
    if len(got) < len(jobs) or failed:
        first = failed[0] if failed else None
        what = f"{first.segment.label}: {first.error}" if first else "a segment did not finish"
        raise MarketMakerError(f"{len(failed) or 1} of {len(jobs)} segments failed; {what}")
    parts = [(o.result, o.fills, o.path) for o in got if o.result is not None]
    if not any(r.events for r, _, _ in parts):
        raise MarketMakerError(f"{store.label()}: no events in any segment")
    what = "1 day" if length_s == DAY_S else f"{length_s:g} s"
    note = (
        f"segments: {len(jobs)} x {what} ({segments[0].label} to {segments[-1].label}), "
        f"each after a {warmup_s:g} s warm-up in which the engine reads the market and quotes "
        "nothing: each starts flat and its end position is marked at the mid (no inventory "
        "carried over)"
    )
    summary = merge_results(
        parts,
        source=store.label(),
        capture=msgspec.structs.asdict(market.stats),
        notes=[note],
    )
    return SegmentedRun(
        summary=summary, segments=got, length_s=length_s, warmup_s=warmup_s, elapsed_s=elapsed
    )


def store_days(store: StoreRange, config: AppConfig | None = None) -> list[str]:
    """The UTC days of ``store``'s range that hold data, in order (a sweep's walk-forward)."""
    market = store.open(config)
    spans = [(p.meta.first_ns, p.meta.last_ns) for p in market.parts]
    return [seg.label for seg in plan_segments(spans, length_s=DAY_S, warmup_s=0.0)]


def day_segment(day: str, warmup_s: float) -> Segment:
    """The segment of the UTC day ``day`` (``YYYY-MM-DD``) with its warm-up before it."""
    midnight = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), tzinfo=dt.UTC)
    start = int(midnight.timestamp()) * NS_PER_S
    return Segment(
        index=0,
        label=day,
        start_ns=start,
        end_ns=start + DAY_S * NS_PER_S,
        warmup_from_ns=start - int(warmup_s * NS_PER_S),
    )


def _key(store: StoreRange, job: SegmentJob) -> str:
    return f"segment|{store.store}|{job.symbol}|{job.segment.start_ns}|{job.seed}|{job.strategy}"


_COLUMNS = (
    "segment",
    "pnl_usd",
    "fills",
    "maker_volume_usd",
    "fees_usd",
    "markout_10s_bps",
    "max_drawdown_usd",
    "final_position",
    "events",
)


def _row(o: SegmentOutcome) -> list[object]:
    r = o.result
    assert r is not None
    mk = None if r.attribution is None else r.attribution.markout_bps.get("10s")
    return [
        o.segment.label,
        r.pnl_usd,
        r.fills,
        r.maker_volume_usd,
        r.fees_usd,
        mk,
        r.max_drawdown_usd,
        r.final_position,
        r.events,
    ]


def segment_rows(run: SegmentedRun) -> list[dict[str, object]]:
    """A dict per segment (``backtest --segments --json``), the columns of ``segments.csv``."""
    return [dict(zip(_COLUMNS, _row(o), strict=True)) for o in run.segments]


def format_segments(run: SegmentedRun) -> str:
    """A row per segment, then the merge's totals and how long it took."""
    lines = [
        f"{'segment':<19} {'PnL':>10} {'fills':>6} {'volume':>12} {'fees':>9} "
        f"{'mk10s':>6} {'max DD':>9} {'end q':>9} {'events':>11}"
    ]
    for o in run.segments:
        label, pnl, fills, volume, fees, mk, dd, q, events = _row(o)
        mark = "" if mk is None else f"{mk:+.2f}"
        lines.append(
            f"{label:<19} {pnl:>10,.2f} {fills:>6,} {volume:>12,.0f} {fees:>9,.2f} "
            f"{mark:>6} {dd:>9,.2f} {q:>9.4f} {events:>11,}"
        )
    s = run.summary
    lines.append(
        f"{'all':<19} {s.pnl_usd:>10,.2f} {s.fills:>6,} {s.maker_volume_usd:>12,.0f} "
        f"{s.fees_usd:>9,.2f}"
    )
    lines.append(
        f"{len(run.segments)} segments in {run.elapsed_s:,.1f} s ({s.wall_s:,.1f} s of "
        "segment run time)"
    )
    return "\n".join(lines)


def write_segment_report(directory: str | Path, run: SegmentedRun) -> list[Path]:
    """``summary.json`` (the merge), ``segments.csv`` (a row per segment) and ``fills.csv``
    (every segment's fills, in time order)."""
    from market_maker.backtest.report import write_fills_csv

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.json"
    summary.write_bytes(msgspec.json.format(msgspec.json.encode(run.summary)))
    table = out / "segments.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(_COLUMNS)
        for o in run.segments:
            w.writerow(["" if v is None else v for v in _row(o)])
    fills = out / "fills.csv"
    rec = Recording(
        start_ns=run.summary.start_ns,
        instrument=next((o.instrument for o in run.segments if o.instrument), None),
        fills=[f for o in run.segments for f in o.fills],
    )
    write_fills_csv(fills, rec)
    return [summary, table, fills]
