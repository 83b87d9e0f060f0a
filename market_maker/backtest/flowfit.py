"""Fit the simulator's informed flow and book imbalance from a market's path (``calibrate``).

The model is the simulator's (``venues/sim_flow.py``): the mid makes discrete moves (mean size
``J``, rate ``r``) each announced by a one-sided burst of informed orders, plus a diffusion;
a share ``f`` of the aggressive orders is informed; the top-of-book imbalance is an AR(1) that
drifts the mid. Each parameter is identified by one statistic of the path:

- ``J`` and ``r``: the mid's 0.1 s log returns beyond a threshold ``u`` (four diffusive standard
  deviations, from bipower variation, and at least three ticks) are the moves; with
  exponential sizes the mean excess over ``u`` is ``J`` (memorylessness) and ``r`` is their
  rate times ``exp(u / J)`` (the moves under ``u`` too). ``r * 2 J**2`` is capped at 90 % of
  ``sigma**2`` so the diffusion keeps a share.
- ``f`` and the lead ``L``: an informed burst walks the price to its move (``sim_flow``), so
  the trade-signed mid move ``a(h) = E[s * (mid(t + h) - mid(t-)) / mid]`` over aggressive
  orders is ``f * J * walk_share(h)``: the share of its burst's walk an informed order sees
  within ``h`` (its own step and the later orders' within ``h``), which depends on the orders
  per move ``m = f * R / r`` (``R`` the aggressive-order rate) and on ``L``. Uninformed orders
  and other bursts' moves average out. ``a(1 s)`` and ``a(0.1 s)`` fix ``f`` and ``L`` (solved
  together by fixed point); the 95 % interval of ``f`` comes from ``a(1 s)``'s, from 10 s
  blocks (orders of a burst share a move).
- the imbalance: the regression coefficient of the next 1 s mid change (bps) on the imbalance,
  on a 0.1 s grid, with a Newey-West interval (10 lags: the 1 s windows overlap); its mean and
  standard deviation (before the simulator's clip at +/-0.95, solved for); its half-life from
  the 0.1 s autocorrelation.

An aggressive order is the prints of one taker order: same exchange time and side.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import numpy.typing as npt

from market_maker.venues.sim_flow import walk_share

__all__ = ["FlowFit", "QuoteHits", "fit_flow", "quote_hits", "trade_signed_move_bps"]

_Array = npt.NDArray[np.float64]
Interval = tuple[float, float] | None
_GRID_S = 0.1
_CLIP = 0.95


class FlowFit(msgspec.Struct, frozen=True, kw_only=True):
    """Informed-flow and imbalance parameters of a market, with the statistics behind them."""

    trade_signed_bps: dict[str, float]
    """``a(h)`` per horizon ("0.1s", "1s", "10s", "60s"), basis points."""
    trade_signed_1s_ci: Interval
    informed_share: float
    informed_share_ci: Interval
    informed_jump_bps: float
    informed_jump_rate_per_s: float
    informed_lead_s: float
    jump_threshold_bps: float
    jump_variance_share: float
    """Share of sigma**2 the moves carry."""
    imbalance_beta_bps: float
    imbalance_beta_ci: Interval
    imbalance_corr: float
    imbalance_mean: float
    imbalance_sd: float
    """Before the simulator's clip (the measured one is ``imbalance_measured_sd``)."""
    imbalance_measured_sd: float
    imbalance_acf_0_1s: float
    imbalance_halflife_s: float


def _mid_at(bt: _Array, mid: _Array, t: _Array) -> _Array:
    i = np.clip(np.searchsorted(bt, t, side="right") - 1, 0, len(mid) - 1)
    out: _Array = mid[i]
    return out


def trade_signed_move_bps(
    bt: _Array, mid: _Array, order_t: _Array, order_sign: _Array, horizon_s: float
) -> tuple[float, Interval]:
    """``E[s * (mid(t + h) - mid(t-)) / mid(t-)]`` over the orders, bps, with a 95 % interval
    from 10 s blocks (a ratio estimator: orders of a block share their moves)."""
    ok = order_t + horizon_s < bt[-1]
    t = order_t[ok]
    if t.size < 10:
        return math.nan, None
    before = _mid_at(bt, mid, t - 1e-9)
    x = order_sign[ok] * (_mid_at(bt, mid, t + horizon_s) - before) / before * 1e4
    a = float(x.mean())
    block = ((t - t[0]) // 10.0).astype(np.int64)
    sums = np.bincount(block, weights=x)
    counts = np.bincount(block).astype(float)
    se = float(np.sqrt(np.sum((sums - a * counts) ** 2)) / counts.sum())
    return a, (a - 1.96 * se, a + 1.96 * se)


def _clipped_sd(mean: float, sd: float) -> float:
    z = np.linspace(-6.0, 6.0, 2001)
    w = np.exp(-0.5 * z * z)
    w /= w.sum()
    x = np.clip(mean + sd * z, -_CLIP, _CLIP)
    m = float(np.sum(w * x))
    return math.sqrt(float(np.sum(w * (x - m) ** 2)))


def _unclipped_sd(mean: float, measured: float) -> float:
    """The AR(1)'s sd whose clip at +/-0.95 shows ``measured`` (bisection)."""
    lo, hi = 0.0, 2.0
    if _clipped_sd(mean, hi) <= measured:
        return hi
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _clipped_sd(mean, mid) < measured else (lo, mid)
    return 0.5 * (lo + hi)


def _jumps(
    m_grid: _Array, width: int, span: float, tick_bps: float, sigma_bps2: float
) -> tuple[float, float, float]:
    """``(u, J, r)``: the threshold, mean size and rate of the mid's moves, from its log
    returns over ``width`` grid steps beyond four diffusive standard deviations (bipower
    variation ignores the moves) and three ticks; exponential sizes make the mean excess over
    ``u`` the mean size and ``r`` the rate beyond ``u`` times ``exp(u / J)``; ``r * 2 J**2`` is
    held under 90 % of sigma**2."""
    r = np.diff(np.log(m_grid[::width])) * 1e4
    bv_step = math.pi / 2.0 * float(np.mean(np.abs(r[1:]) * np.abs(r[:-1])))
    u = max(4.0 * math.sqrt(bv_step), 3.0 * tick_bps)
    excess = np.abs(r[np.abs(r) > u]) - u
    if excess.size < 5:
        return u, 1.0, 0.0
    jump = float(excess.mean())
    rate = excess.size / span * math.exp(u / jump)
    return u, jump, min(rate, 0.9 * sigma_bps2 / (2.0 * jump * jump))


def _lead_for(ratio: float, *, orders_per_move: float) -> float:
    """The lead ``L`` at which ``walk_share(0.1 s) / walk_share(1 s)`` is ``ratio`` (it falls
    as ``L`` grows past 0.1 s; bisection on a log scale, within [0.02 s, 1 s])."""
    lo, hi = math.log(0.02), math.log(1.0)

    def r(lead: float) -> float:
        m = orders_per_move
        return walk_share(_GRID_S, orders_per_move=m, lead_s=lead) / walk_share(
            1.0, orders_per_move=m, lead_s=lead
        )

    if ratio >= r(math.exp(lo)):
        return math.exp(lo)
    if ratio <= r(math.exp(hi)):
        return math.exp(hi)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if r(math.exp(mid)) > ratio else (lo, mid)
    return math.exp(0.5 * (lo + hi))


def _share_and_lead(
    a1: float, a01: float, jump: float, move_rate: float, order_rate: float
) -> tuple[float, float, float]:
    """``(f, L, walk_share(1 s))`` with ``a(1 s) = f J walk_share(1 s)`` and ``a(0.1 s) /
    a(1 s)`` the walk's ratio, for orders per move ``m = f R / r``: a fixed point (``f`` rises
    with ``m`` only through the walk's share, which moves between 1/2 and 1)."""
    share, lead, seen = min(0.9, a1 / jump), 1.0, 1.0
    ratio = a01 / a1 if math.isfinite(a01) and a01 > 0.0 else 1.0
    for _ in range(100):
        m = share * order_rate / move_rate
        lead = _lead_for(ratio, orders_per_move=m)
        seen = walk_share(1.0, orders_per_move=m, lead_s=lead)
        new = min(0.9, max(0.0, a1 / (jump * seen)))
        if abs(new - share) < 1e-9:
            break
        share = new
    return share, lead, seen


def fit_flow(
    *,
    book_t: _Array,
    mid: _Array,
    imbalance: _Array,
    order_t: _Array,
    order_sign: _Array,
    sigma: float,
    tick_size: float,
) -> FlowFit:
    """Fit ``FlowFit`` from a path: book times (s), mids and top-of-book imbalances, and the
    aggressive orders' times and signs (+1 buy); ``sigma`` per sqrt second on a 1 s grid."""
    bt = np.asarray(book_t, dtype=float)
    mids = np.asarray(mid, dtype=float)
    imb = np.asarray(imbalance, dtype=float)
    ot = np.asarray(order_t, dtype=float)
    os_ = np.asarray(order_sign, dtype=float)
    grid = np.arange(bt[0], bt[-1] - _GRID_S, _GRID_S)
    span = float(grid[-1] - grid[0]) if grid.size > 1 else 0.0
    if grid.size < 100 or ot.size < 10:
        raise ValueError("the informed-flow fit needs at least 10 s of books and 10 orders")
    m_grid = _mid_at(bt, mids, grid)
    tick_bps = tick_size / float(np.mean(mids)) * 1e4
    sigma_bps2 = (sigma * 1e4) ** 2
    u, jump, rate = _jumps(m_grid, 1, span, tick_bps, sigma_bps2)
    moves: dict[str, float] = {}
    ci_1s: Interval = None
    for h, name in ((0.1, "0.1s"), (1.0, "1s"), (10.0, "10s"), (60.0, "60s")):
        a, ci = trade_signed_move_bps(bt, mids, ot, os_, h)
        moves[name] = a
        if name == "1s":
            ci_1s = ci
    a1 = moves["1s"]
    a01 = moves["0.1s"]
    order_rate = ot.size / span if span > 0.0 else 0.0
    share, lead, seen = 0.0, 1.0, 1.0
    if rate > 0 and math.isfinite(a1) and a1 > 0.0:
        share, lead, seen = _share_and_lead(a1, a01, jump, rate, order_rate)
    jump_share = rate * 2.0 * jump * jump / sigma_bps2 if sigma_bps2 > 0 else 0.0
    share_ci = (
        (max(0.0, ci_1s[0] / (jump * seen)), min(1.0, ci_1s[1] / (jump * seen)))
        if ci_1s and rate > 0
        else None
    )
    # Imbalance: the book in force at each grid point against the next second's mid change.
    g1 = grid[grid < bt[-1] - 1.0]
    i_now = imb[np.clip(np.searchsorted(bt, g1, side="right") - 1, 0, None)]
    i_next = imb[np.clip(np.searchsorted(bt, g1 + _GRID_S, side="right") - 1, 0, None)]
    m_now = _mid_at(bt, mids, g1)
    d1 = (_mid_at(bt, mids, g1 + 1.0) - m_now) / m_now * 1e4
    x = i_now - i_now.mean()
    sxx = float(np.sum(x * x))
    if sxx > 0.0:
        beta = float(np.sum(x * (d1 - d1.mean())) / sxx)
        e = (d1 - d1.mean()) - beta * x
        xe = x * e
        s = float(np.sum(xe * xe))
        lags = 10
        for lag in range(1, lags + 1):
            s += 2.0 * (1.0 - lag / (lags + 1)) * float(np.sum(xe[lag:] * xe[:-lag]))
        se = math.sqrt(max(s, 0.0)) / sxx
        beta_ci: Interval = (beta - 1.96 * se, beta + 1.96 * se)
        corr = float(np.corrcoef(i_now, d1)[0, 1])
        acf = float(np.corrcoef(i_now, i_next)[0, 1])
    else:
        beta, beta_ci, corr, acf = 0.0, None, 0.0, 0.0
    phi = min(0.999, max(0.01, acf))
    halflife = _GRID_S * math.log(2.0) / -math.log(phi)
    i_mean = float(np.clip(i_now.mean(), -0.85, 0.85))
    i_sd = float(i_now.std())
    return FlowFit(
        trade_signed_bps=moves,
        trade_signed_1s_ci=ci_1s,
        informed_share=share,
        informed_share_ci=share_ci,
        informed_jump_bps=jump,
        informed_jump_rate_per_s=rate,
        informed_lead_s=lead,
        jump_threshold_bps=u,
        jump_variance_share=jump_share,
        imbalance_beta_bps=beta,
        imbalance_beta_ci=beta_ci,
        imbalance_corr=corr,
        imbalance_mean=i_mean,
        imbalance_sd=_unclipped_sd(i_mean, i_sd),
        imbalance_measured_sd=i_sd,
        imbalance_acf_0_1s=acf,
        imbalance_halflife_s=halflife,
    )


class QuoteHits(msgspec.Struct, frozen=True, kw_only=True):
    """How a resting quote ``depth_bps`` from the mid fares in a market, whatever the engine:
    hits per second (both sides) and the hits' mean markouts with their standard errors."""

    depth_bps: float
    hits_per_s: float
    hits: int
    markout_bps: dict[str, float]
    markout_se_bps: dict[str, float]


def quote_hits(
    *,
    book_t: _Array,
    bid: _Array,
    ask: _Array,
    trade_t: _Array,
    trade_price: _Array,
    trade_sign: _Array,
    depth_bps: float,
    latency_s: float = 0.045,
    step_s: float = 0.1,
    horizons_s: tuple[float, ...] = (1.0, 10.0),
) -> QuoteHits:
    """A bid and an ask ``depth_bps`` from the mid the quoter saw ``latency_s`` ago, set anew
    every ``step_s``; a step's quote is hit when a print goes through it or the book reaches
    it. The markout of a hit is ``s * (mid(t + h) - price) / price`` from the step's start.
    Engine-free, so a capture and a simulated market compare on hundreds of hits where an
    engine's fills number a few dozen."""
    bt = np.asarray(book_t, dtype=float)
    mid = 0.5 * (np.asarray(bid, dtype=float) + np.asarray(ask, dtype=float))
    tt = np.asarray(trade_t, dtype=float)
    tp = np.asarray(trade_price, dtype=float)
    ts = np.asarray(trade_sign, dtype=float)
    grid = np.arange(bt[0] + 1.0, bt[-1] - max(horizons_s), step_s)
    seen = _mid_at(bt, mid, grid - latency_s)
    lo, hi = seen * (1.0 - depth_bps * 1e-4), seen * (1.0 + depth_bps * 1e-4)
    n = grid.size

    def per_step(t: _Array, x: _Array, fill: float, reduce: np.ufunc) -> _Array:
        out = np.full(n, fill)
        k = np.searchsorted(grid, t, side="right") - 1
        ok = (k >= 0) & (k < n)
        reduce.at(out, k[ok], x[ok])
        return out

    low_sell = per_step(tt[ts < 0], tp[ts < 0], np.inf, np.minimum)
    high_buy = per_step(tt[ts > 0], tp[ts > 0], -np.inf, np.maximum)
    low_ask = per_step(bt, np.asarray(ask, dtype=float), np.inf, np.minimum)
    high_bid = per_step(bt, np.asarray(bid, dtype=float), -np.inf, np.maximum)
    bid_hit = (low_sell < lo) | (low_ask <= lo)
    ask_hit = (high_buy > hi) | (high_bid >= hi)
    hits = int(bid_hit.sum() + ask_hit.sum())
    marks: dict[str, float] = {}
    errors: dict[str, float] = {}
    for h in horizons_s:
        later = _mid_at(bt, mid, grid + h)
        x = np.concatenate(
            [
                (later[bid_hit] - lo[bid_hit]) / lo[bid_hit],
                (hi[ask_hit] - later[ask_hit]) / hi[ask_hit],
            ]
        )
        x *= 1e4
        marks[f"{h:g}s"] = float(x.mean()) if x.size else math.nan
        errors[f"{h:g}s"] = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    span = float(grid[-1] - grid[0]) if n > 1 else math.nan
    return QuoteHits(
        depth_bps=depth_bps,
        hits_per_s=hits / span,
        hits=hits,
        markout_bps=marks,
        markout_se_bps=errors,
    )
