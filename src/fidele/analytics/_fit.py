"""Shared fitting machinery: compression of summaries, L-BFGS-B in log parameters with BLAS
pinned to one thread, finite-difference Hessians of analytic gradients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

__all__ = ["FitResult", "compress", "hessian", "minimise_log"]

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


@dataclass(frozen=True)
class FitResult:
    params: np.ndarray
    neg_ll: float
    iterations: int
    converged: bool


def compress(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Unique rows of the given columns and how many times each occurs."""
    stacked = np.column_stack(columns)
    uniq, counts = np.unique(stacked, axis=0, return_counts=True)
    return [uniq[:, i] for i in range(uniq.shape[1])], counts.astype(np.float64)


def minimise_log(objective: Objective, start: np.ndarray) -> FitResult:
    """Minimise ``objective(theta) -> (value, gradient)`` over positive ``theta``, searching in
    ``log(theta)``. Multithreaded BLAS made scipy's optimiser tens of times slower on 2 cores,
    so BLAS is pinned to one thread."""

    def in_logs(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_theta)
        value, grad = objective(theta)
        return value, grad * theta

    with threadpool_limits(limits=1):
        res = minimize(
            in_logs,
            np.log(start),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9},
        )
    theta = np.exp(res.x)
    return FitResult(theta, float(res.fun), int(res.nit), bool(res.success))


def hessian(gradient: Callable[[np.ndarray], np.ndarray], theta: np.ndarray) -> np.ndarray:
    """Central finite differences of an analytic gradient, symmetrised (BLAS on one thread,
    as in :func:`minimise_log`)."""
    n = theta.size
    out = np.empty((n, n))
    with threadpool_limits(limits=1):
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
