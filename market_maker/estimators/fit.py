"""Offline maximum-likelihood fit of a Hawkes process to recorded event times.

Used by ``market-maker calibrate`` and from Python; kept out of the engine's imports because it
needs scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

_Array = npt.NDArray[np.float64]

__all__ = ["HawkesFit", "fit_hawkes"]

_isfinite = math.isfinite


class HawkesFit(msgspec.Struct, frozen=True, kw_only=True):
    """Maximum-likelihood Hawkes parameters and the log-likelihood they reach."""

    mu: float
    alpha: float
    beta: float
    log_likelihood: float
    events: int
    duration_s: float
    ci95: tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | None = None
    """95 % intervals for ``(mu, alpha, beta)`` from the observed information (log scale);
    None when the information matrix is not invertible."""

    @property
    def branching_ratio(self) -> float:
        return self.alpha / self.beta


def _neg_log_likelihood(
    log_params: _Array, times: _Array, marks: _Array, horizon: float
) -> tuple[float, _Array]:
    """Negative log-likelihood and its gradient in ``(ln mu, ln alpha, ln beta)``.

    Recursion (O(n)): ``R_i = exp(-beta dt_i) (R_{i-1} + m_{i-1})`` is the kernel sum at ``t_i``
    and ``D_i = dR_i/dbeta = exp(-beta dt_i) (D_{i-1} - dt_i (R_{i-1} + m_{i-1}))``.
    """
    mu, alpha, beta = (float(v) for v in np.exp(log_params))
    exp = math.exp
    log = math.log
    r = 0.0
    d = 0.0
    prev_t = float(times[0])
    prev_m = 0.0
    sum_log = 0.0
    g_mu = 0.0
    g_alpha = 0.0
    g_beta = 0.0
    for t, m in zip(times.tolist(), marks.tolist(), strict=True):
        dt = t - prev_t
        decay = exp(-beta * dt)
        carried = r + prev_m
        d = decay * (d - dt * carried)
        r = decay * carried
        lam = mu + alpha * r
        if lam <= 0.0:
            return math.inf, np.zeros(3)
        inv = 1.0 / lam
        sum_log += log(lam)
        g_mu += inv
        g_alpha += r * inv
        g_beta += alpha * d * inv
        prev_t = t
        prev_m = m
    tail = horizon - times
    tail_decay = np.exp(-beta * tail)
    compensator_sum = float(np.dot(marks, 1.0 - tail_decay))
    compensator_dbeta = float(np.dot(marks, tail * tail_decay))
    ll = sum_log - mu * horizon - alpha / beta * compensator_sum
    g_mu -= horizon
    g_alpha -= compensator_sum / beta
    g_beta += alpha / (beta * beta) * compensator_sum - alpha / beta * compensator_dbeta
    grad = np.array([g_mu * mu, g_alpha * alpha, g_beta * beta])
    return -ll, -grad


def fit_hawkes(
    times: Sequence[float] | _Array,
    marks: Sequence[float] | _Array | None = None,
    *,
    horizon_s: float | None = None,
) -> HawkesFit:
    """Fit ``(mu, alpha, beta)`` to event ``times`` (seconds, non-decreasing) by maximum likelihood.

    ``horizon_s`` is the end of the observation window (defaults to the last event). Several
    starting decay rates are tried and the best stationary optimum is returned.
    """
    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or t.size < 10:
        raise ValueError("fit_hawkes needs at least 10 event times")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0):
        raise ValueError("event times must be finite and non-decreasing")
    m = np.ones_like(t) if marks is None else np.asarray(marks, dtype=float)
    if m.shape != t.shape or not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise ValueError("marks must be positive, finite and one per event")
    t0 = float(t[0])
    rel = t - t0
    horizon = float(rel[-1]) if horizon_s is None else float(horizon_s) - t0
    if not horizon > 0:
        raise ValueError("the observation window must have positive length")
    rate = t.size / horizon
    mean_mark = float(m.mean())

    best: tuple[float, _Array] | None = None
    for beta0 in (0.3 * rate, 3.0 * rate, 30.0 * rate):
        x0 = np.log([0.5 * rate, 0.5 * beta0 / mean_mark, beta0])
        res = minimize(
            _neg_log_likelihood,
            x0,
            args=(rel, m, horizon),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-30.0, 30.0)] * 3,
        )
        if not np.isfinite(res.fun):
            continue
        mu, alpha, beta = np.exp(res.x)
        if alpha * mean_mark >= beta:
            continue  # non-stationary optimum: not a usable model
        if best is None or res.fun < best[0]:
            best = (float(res.fun), res.x)
    if best is None:
        raise ValueError("no stationary Hawkes fit found for these events")
    mu, alpha, beta = (float(v) for v in np.exp(best[1]))
    return HawkesFit(
        mu=mu,
        alpha=alpha,
        beta=beta,
        log_likelihood=-best[0],
        events=int(t.size),
        duration_s=horizon,
        ci95=_intervals(best[1], rel, m, horizon),
    )


def _intervals(
    x: _Array, rel: _Array, m: _Array, horizon: float
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | None:
    """Wald intervals in log-parameter space: the Hessian of the negative log-likelihood by
    central differences of its analytic gradient, inverted."""
    h = 1e-4
    hess: _Array = np.empty((3, 3))
    for i in range(3):
        step = np.zeros(3)
        step[i] = h
        g_plus = _neg_log_likelihood(x + step, rel, m, horizon)[1]
        g_minus = _neg_log_likelihood(x - step, rel, m, horizon)[1]
        hess[i] = (np.asarray(g_plus) - np.asarray(g_minus)) / (2 * h)
    hess = 0.5 * (hess + hess.T)
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return None
    var = np.diag(cov)
    if not np.all(np.isfinite(var)) or np.any(var <= 0):
        return None
    half = 1.96 * np.sqrt(var)
    with np.errstate(over="ignore"):  # a flat likelihood (few trades): no usable interval
        lo, hi = np.exp(x - half), np.exp(x + half)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        return None
    return (
        (float(lo[0]), float(hi[0])),
        (float(lo[1]), float(hi[1])),
        (float(lo[2]), float(hi[2])),
    )
