"""Shared fitting machinery: Newton's method in log parameters on analytic Hessians, started
from a fit on a subsample, and codes for times that sit on a day grid.

Why Newton: with the exact Hessian of a 3-4 parameter likelihood, a start from a subsample's
fit is 2-4 full-data iterations from the optimum (L-BFGS-B took ~30 evaluations, then 8 more
for a finite-difference Hessian), and the standard errors come from the last Hessian. Why no
scipy.optimize: its import cost ~0.25 s, more than the whole fit (see ``_special``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = [
    "FitResult",
    "Objective",
    "distinct_counts",
    "hessian_fd",
    "log_normal_penalty",
    "newton_log",
    "standard_errors",
    "subsample",
    "time_codes",
]

# objective(theta, order) -> (value, gradient if order >= 1, Hessian if order >= 2)
Objective = Callable[[np.ndarray, int], tuple[float, np.ndarray | None, np.ndarray | None]]


@dataclass(frozen=True)
class FitResult:
    params: np.ndarray
    neg_ll: float
    hessian: np.ndarray  # of the negative log-likelihood in the parameters, at ``params``
    iterations: int
    converged: bool


def newton_log(
    objective: Objective, start: np.ndarray, *, tol: float = 1e-6, max_iter: int = 200
) -> FitResult:
    """Minimise ``objective`` over positive parameters by Newton steps on their logarithms.

    Each step solves with the Hessian's eigenvalues made positive (a saddle-free Newton step,
    for starts far from the optimum), is capped at a factor e^2 per parameter and halved
    until the value decreases (Armijo). It stops when a step moves every log-parameter by
    less than ``tol``: that step is taken and only the value is computed there (Newton's
    error after it is of order ``tol**2``); the Hessian returned is the one of the last full
    evaluation, ``tol`` away.
    """
    phi = np.log(np.asarray(start, dtype=np.float64))
    f, g, H = objective(np.exp(phi), 2)
    for it in range(1, max_iter + 1):
        theta = np.exp(phi)
        gp = g * theta
        Hp = H * np.outer(theta, theta) + np.diag(gp)
        step = _step(Hp, gp)
        if np.max(np.abs(step)) < tol:
            value = objective(np.exp(phi + step), 0)[0]
            if value <= f:
                return FitResult(np.exp(phi + step), value, H, it, True)
            return FitResult(theta, f, H, it, True)
        found = _line_search(objective, phi, step, f, gp @ step)
        if found is None:
            return FitResult(theta, f, H, it, False)
        phi, (f, g, H) = found
    return FitResult(np.exp(phi), f, H, max_iter, False)


def log_normal_penalty(objective: Objective, centre: np.ndarray, sd: np.ndarray) -> Objective:
    """``objective`` plus ``sum(((log theta - log centre) / sd)**2) / 2``: a log-normal prior
    on each parameter (``sd = inf`` leaves one free), with its gradient and Hessian in
    theta. Used only where the plain maximum likelihood is not identified."""
    mu, w = np.log(centre), 1.0 / np.square(sd)

    def penalised(theta: np.ndarray, order: int):
        f, g, H = objective(theta, order)
        z = np.log(theta) - mu
        f = f + 0.5 * float(np.sum(w * z * z))
        if order >= 1:
            g = g + w * z / theta
        if order >= 2:
            H = H + np.diag(w * (1.0 - z) / np.square(theta))
        return f, g, H

    return penalised


def _step(Hp: np.ndarray, gp: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(Hp)
    floor = 1e-10 * max(float(np.abs(vals).max()), 1e-300)
    vals = np.maximum(np.abs(vals), floor)
    step = -(vecs @ ((vecs.T @ gp) / vals))
    longest = float(np.max(np.abs(step)))
    return step * (2.0 / longest) if longest > 2.0 else step


def _line_search(objective: Objective, phi: np.ndarray, step: np.ndarray, f: float, slope: float):
    t = 1.0
    while t > 1e-12:
        cand = phi + t * step
        fc, gc, Hc = objective(np.exp(cand), 2)
        if np.isfinite(fc) and fc <= f + 1e-4 * t * slope:
            return cand, (fc, gc, Hc)
        t *= 0.5
    return None


def hessian_fd(gradient: Callable[[np.ndarray], np.ndarray], theta: np.ndarray) -> np.ndarray:
    """Central finite differences of an analytic gradient, symmetrised (the tests' check of
    the analytic Hessians)."""
    n = theta.size
    out = np.empty((n, n))
    for j in range(n):
        h = 1e-5 * max(abs(theta[j]), 1e-3)
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        out[:, j] = (gradient(up) - gradient(down)) / (2 * h)
    return (out + out.T) / 2


def standard_errors(hess: np.ndarray) -> np.ndarray:
    """Square roots of the inverse observed information's diagonal (NaN if singular)."""
    try:
        cov = np.linalg.inv(hess)
    except np.linalg.LinAlgError:
        return np.full(hess.shape[0], np.nan)
    return np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))


# A fit on this many customers starts the full-data Newton steps (below twice this, none).
SUBSAMPLE = 60_000


def distinct_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of an integer array, sorted, and how often each occurs: what
    ``np.unique(keys, return_counts=True)`` returns, from polars' sort (on every core) and
    the runs of equal values: 0.013 s against 0.05 s for 1M keys."""
    ordered = pl.Series(keys).sort().to_numpy()
    if ordered.size == 0:
        return ordered, np.zeros(0, np.int64)
    new = np.empty(ordered.size, dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    return ordered[starts], np.diff(np.append(starts, ordered.size))


def subsample(n: int) -> slice | None:
    """Every k-th customer, about :data:`SUBSAMPLE` of them (None for small data)."""
    if n < 2 * SUBSAMPLE:
        return None
    return slice(0, None, n // SUBSAMPLE)


# Grids tried for times: whole units (days, or weeks of a weekly summary) and sevenths (weeks
# counted as days / 7, as the summary does); a code table larger than this is not a grid.
_GRIDS = (1, 7)
_MAX_GRID = 1 << 22


def time_codes(*times: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """A table of time values and each array's int32 codes into it (``table[code] == time``
    exactly). Times from a day-resolution summary sit on the grid ``k / per`` and their codes
    are ``k``, computed in a few passes; other times get the sorted distinct values."""
    for per in _GRIDS:
        found = _on_grid(times, per)
        if found is not None:
            return found
    values, inverse = np.unique(np.concatenate(times), return_inverse=True)
    codes, at = [], 0
    for t in times:
        codes.append(inverse[at : at + t.size].astype(np.int32))
        at += t.size
    return values, codes


def _on_grid(times: tuple[np.ndarray, ...], per: int):
    codes = []
    for t in times:
        if t.size and not (np.isfinite(t).all() and t.min() >= 0 and t.max() * per < _MAX_GRID):
            return None
        k = np.rint(t * per)
        # the same division as the summary's: exact equality, not a tolerance
        if not np.array_equal(k / per if per != 1 else k, t):
            return None
        codes.append(k.astype(np.int32))
    top = max((int(c.max()) for c in codes if c.size), default=0)
    table = np.arange(top + 1, dtype=np.float64)
    return (table / per if per != 1 else table), codes
