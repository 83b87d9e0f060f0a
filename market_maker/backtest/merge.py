"""One summary from the summaries of independent segments of a long backtest.

Sums are exact: PnL and its parts, fills, volume, fees, funding, cycles, events, seconds in each
state. Markouts merge as sums (``MarkoutSums``: the notional, the notional-weighted markout and
the centred squares a standard error needs), so the merged means and standard errors are those
of all the segments' fills pooled, to the rounding of the sums. The maximum drawdown is that of
the segments' PnL paths laid end to end (each segment's path, its low and high and its own
drawdown are enough), and the Sharpe ratio pools the segments' one-minute PnL changes. Shares
(time two-sided, the binding limit, held cycles) are weighted by the time or cycles they are
shares of; cycle-time percentiles cannot be merged exactly: p50 is the segments' median p50,
p99 the worst segment's.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence

import msgspec

from market_maker.backtest.analytics import MARKOUT_HORIZONS_S, FillRecord, PnlAttribution
from market_maker.backtest.runner import SHARPE_MIN_MINUTES, BacktestResult

__all__ = ["MarkoutSums", "PathStats", "merge_results"]

_MINUTES_PER_YEAR = 525_600


class MarkoutSums(msgspec.Struct, frozen=True, kw_only=True):
    """One horizon's markouts as mergeable sums: ``n`` fills that reached it, ``weight`` their
    notional ``sum w``, ``mean`` the notional-weighted mean markout (bps), and about that mean
    ``sq = sum w^2 (m - mean)^2``, ``lin = sum w^2 (m - mean)`` and ``w2 = sum w^2``."""

    n: int = 0
    weight: float = 0.0
    mean: float = 0.0
    sq: float = 0.0
    lin: float = 0.0
    w2: float = 0.0

    @classmethod
    def of(cls, fills: Iterable[FillRecord], horizon: int) -> MarkoutSums:
        """The sums over ``fills``' markouts at the ``horizon``-th horizon (two passes)."""
        pairs = [
            (f.price * f.size, f.markouts_bps[horizon])
            for f in fills
            if f.markouts_bps[horizon] is not None
        ]
        weight = sum(w for w, _ in pairs)
        if not pairs or weight <= 0.0:
            return cls()
        mean = sum(w * m for w, m in pairs if m is not None) / weight
        sq = lin = w2 = 0.0
        for w, m in pairs:
            assert m is not None
            d = m - mean
            sq += (w * d) ** 2
            lin += w * w * d
            w2 += w * w
        return cls(n=len(pairs), weight=weight, mean=mean, sq=sq, lin=lin, w2=w2)

    def centred(self, centre: float) -> tuple[float, float]:
        """``(sum w^2 (m - centre)^2, sum w^2 (m - centre))``."""
        shift = self.mean - centre
        sq = self.sq + 2.0 * shift * self.lin + shift * shift * self.w2
        return sq, self.lin + shift * self.w2

    def combine(self, other: MarkoutSums) -> MarkoutSums:
        """The sums over both sets of fills."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        weight = self.weight + other.weight
        mean = (self.weight * self.mean + other.weight * other.mean) / weight
        sq_a, lin_a = self.centred(mean)
        sq_b, lin_b = other.centred(mean)
        return MarkoutSums(
            n=self.n + other.n,
            weight=weight,
            mean=mean,
            sq=sq_a + sq_b,
            lin=lin_a + lin_b,
            w2=self.w2 + other.w2,
        )

    @property
    def se(self) -> float | None:
        """The mean's standard error as ``PnlAttribution`` defines it (None under two)."""
        if self.n < 2 or self.weight <= 0.0:
            return None
        return math.sqrt(max(0.0, self.sq) * self.n / (self.n - 1)) / self.weight


class PathStats(msgspec.Struct, frozen=True, kw_only=True):
    """A segment's PnL path (USD from its start, sampled once a second and at its end) as far
    as a merge needs it: its low, high and own maximum drawdown, and its one-minute changes
    as ``(count, sum, sum of squares)``."""

    low: float = 0.0
    high: float = 0.0
    max_drawdown: float = 0.0
    minutes: tuple[int, float, float] = (0, 0.0, 0.0)

    @classmethod
    def of(cls, path: Sequence[float]) -> PathStats:
        if not path:
            return cls()
        peak, dd = -math.inf, 0.0
        for v in path:
            peak = max(peak, v)
            dd = max(dd, peak - v)
        minutes = list(path[::60])
        changes = [b - a for a, b in itertools.pairwise(minutes)]
        return cls(
            low=min(path),
            high=max(path),
            max_drawdown=dd,
            minutes=(len(changes), sum(changes), sum(c * c for c in changes)),
        )


def _drawdown(paths: Sequence[tuple[float, PathStats]]) -> float:
    """Max drawdown of the paths end to end: ``(pnl, stats)`` per segment, in order. Within a
    segment the running peak is the earlier peak or its own, so its worst fall is its own
    drawdown or the earlier peak down to its low."""
    offset, peak, dd = 0.0, -math.inf, 0.0
    for pnl, s in paths:
        dd = max(dd, s.max_drawdown, peak - (offset + s.low))
        peak = max(peak, offset + s.high)
        offset += pnl
    return dd


def _sharpe(paths: Iterable[PathStats]) -> float | None:
    n = total = squares = 0.0
    for s in paths:
        n += s.minutes[0]
        total += s.minutes[1]
        squares += s.minutes[2]
    if n < SHARPE_MIN_MINUTES or n < 2:
        return None
    mean = total / n
    var = (squares - n * mean * mean) / (n - 1)
    if not var > 0.0:
        return None
    return mean / math.sqrt(var) * math.sqrt(_MINUTES_PER_YEAR)


def _weighted(values: Iterable[tuple[float | None, float]]) -> float | None:
    pairs = [(v, w) for v, w in values if v is not None and w > 0.0]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total > 0.0 else None


def _sum_dicts(dicts: Iterable[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0.0) + v
    return out


def merge_results(
    parts: Sequence[tuple[BacktestResult, list[FillRecord], PathStats]],
    *,
    source: str,
    capture: dict[str, int] | None = None,
    notes: Sequence[str] = (),
) -> BacktestResult:
    """One summary of ``parts`` (each segment's result, its fills and its PnL path), in time
    order; ``capture``: what the replay read over the whole range."""
    runs = [p for p in parts if p[0].events > 0]
    if not runs:
        raise ValueError("no segment has any event")
    results = [r for r, _, _ in runs]
    first = results[0]
    horizons = len(MARKOUT_HORIZONS_S)
    labels = [f"{h:g}s" for h in MARKOUT_HORIZONS_S]
    markouts = [MarkoutSums() for _ in range(horizons)]
    for _, fs, _ in runs:
        for i in range(horizons):
            markouts[i] = markouts[i].combine(MarkoutSums.of(fs, i))
    attributions = [r.attribution for r in results if r.attribution is not None]
    attribution = None
    if attributions:
        attribution = PnlAttribution(
            spread_capture_usd=sum(a.spread_capture_usd for a in attributions),
            inventory_usd=sum(a.inventory_usd for a in attributions),
            fees_usd=sum(a.fees_usd for a in attributions),
            markout_bps={
                k: (m.mean if m.n else None) for k, m in zip(labels, markouts, strict=True)
            },
            markout_fills={k: m.n for k, m in zip(labels, markouts, strict=True)},
            markout_se_bps={k: m.se for k, m in zip(labels, markouts, strict=True)},
            funding_usd=sum(a.funding_usd for a in attributions),
            funding_payments=sum(a.funding_payments for a in attributions),
        )
    total_fills = sum(r.fills for r in results)
    sent = sum(r.orders_sent for r in results)
    cycles = sum(r.quote_cycles for r in results)
    duration = sum(r.duration_s for r in results)
    wanting = sum(r.time_active_wanting_both_s for r in results)
    resting = sum(r.time_resting_both_s for r in results)
    wall = sum(r.wall_s for r in results)
    events = sum(r.events for r in results)
    two_sided = sum(r.time_two_sided_s for r in results)
    state_changes = [
        ((r.start_ns - first.start_ns) / 1e9 + t, state, why)
        for r in results
        for t, state, why in r.state_changes
    ]
    feeds = sorted({r.latency.feed_ms for r in results if r.latency is not None})
    latency = first.latency
    if latency is not None and len(feeds) > 1:
        latency = msgspec.structs.replace(
            latency,
            feed_detail=f"each segment's own: {feeds[0]:.1f}-{feeds[-1]:.1f} ms",
        )
    quoting_keys = sorted({k for r in results for k in r.quoting})
    counters: dict[str, int] = {}
    for r in results:
        for k, v in r.engine_counters.items():
            counters[k] = counters.get(k, 0) + v
    idle = [r.quoting_nothing for r in results if r.quoting_nothing]
    return BacktestResult(
        source=source,
        strategy=first.strategy,
        seed=first.seed,
        duration_s=duration,
        interrupted=any(r.interrupted for r in results),
        pnl_usd=sum(r.pnl_usd for r in results),
        sharpe=_sharpe(s for _, _, s in runs),
        max_drawdown_usd=_drawdown([(r.pnl_usd, s) for r, _, s in runs]),
        fills=total_fills,
        maker_volume_usd=sum(r.maker_volume_usd for r in results),
        fees_usd=sum(r.fees_usd for r in results),
        attribution=attribution,
        final_position=results[-1].final_position,
        max_abs_position=max(r.max_abs_position for r in results),
        max_limit_utilisation=max(r.max_limit_utilisation for r in results),
        limit_breaches=sum(r.limit_breaches for r in results),
        time_reduce_only_s=sum(r.time_reduce_only_s for r in results),
        kill_switch_events=sum(r.kill_switch_events for r in results),
        state_changes=state_changes,
        quote_cycles=cycles,
        events=events,
        market_events=sum(r.market_events for r in results),
        orders_sent=sent,
        rejections=sum(r.rejections for r in results),
        cycle_us_p50=statistics.median(r.cycle_us_p50 for r in results),
        cycle_us_p99=max(r.cycle_us_p99 for r in results),
        events_per_s=events / wall if wall > 0 else math.inf,
        wall_s=wall,
        binding_share={
            k: v / duration if duration > 0 else 0.0
            for k, v in sorted(
                _sum_dicts(
                    {k: s * r.duration_s for k, s in r.binding_share.items()} for r in results
                ).items()
            )
        },
        engine_counters=counters,
        capture=capture,
        quoting_nothing=idle[-1] if idle else "",
        time_quoting_nothing_s=sum(r.time_quoting_nothing_s for r in results),
        start_ns=first.start_ns,
        time_in_state_s=_sum_dicts(r.time_in_state_s for r in results),
        time_quoting_s=sum(r.time_quoting_s for r in results),
        time_two_sided_s=two_sided,
        time_bid_only_s=sum(r.time_bid_only_s for r in results),
        time_ask_only_s=sum(r.time_ask_only_s for r in results),
        mean_quoted_spread_bps=_weighted(
            (r.mean_quoted_spread_bps, r.time_two_sided_s) for r in results
        ),
        time_wanted_quoting_s=sum(r.time_wanted_quoting_s for r in results),
        time_wanted_two_sided_s=sum(r.time_wanted_two_sided_s for r in results),
        latency=latency,
        time_active_wanting_both_s=wanting,
        time_resting_both_s=resting,
        resting_two_sided_share=resting / wanting if wanting else None,
        requests_per_fill=sent / total_fills if total_fills else None,
        held_cycle_share=(
            sum(r.held_cycle_share * r.quote_cycles for r in results) / cycles if cycles else 0.0
        ),
        quoting={
            k: _weighted((r.quoting.get(k), float(r.quote_cycles)) for r in results) or 0.0
            for k in quoting_keys
        },
        market=first.market,
        settlement_currency=first.settlement_currency,
        pnl_settlement=sum(r.pnl_settlement for r in results),
        fees_settlement=sum(r.fees_settlement for r in results),
        maker_volume_settlement=sum(r.maker_volume_settlement for r in results),
        funding_usd=sum(r.funding_usd for r in results),
        funding_settlement=sum(r.funding_settlement for r in results),
        funding_payments=sum(r.funding_payments for r in results),
        notes=[*notes, *first.notes],
    )
