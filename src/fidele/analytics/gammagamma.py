"""Gamma-Gamma spend model (Fader & Hardie's 2013 note, lifetimes' ``GammaGammaFitter``):
fitted on repeat customers' mean repeat-purchase value, analytic gradient, log parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from fidele.analytics._fit import newton_log, standard_errors, subsample
from fidele.analytics._special import digamma, dot, lgamma, trigamma

__all__ = [
    "GammaGammaFit",
    "GammaGammaParams",
    "conditional_expected_spend",
    "fit_gamma_gamma",
    "gamma_gamma_log_likelihood",
]


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float

    def as_array(self) -> np.ndarray:
        return np.array([self.p, self.q, self.v])


@dataclass(frozen=True)
class GammaGammaFit:
    params: GammaGammaParams
    log_likelihood: float
    se: dict[str, float] = field(default_factory=dict)
    n_customers: int = 0
    iterations: int = 0
    converged: bool = True

    @property
    def identified(self) -> bool:
        """Converged, with a finite mean spend (q > 1) and no parameter run off."""
        values = self.params.as_array()
        return bool(
            self.converged
            and np.isfinite(values).all()
            and self.params.q > 1
            and (values < 1e8).all()
        )

    def as_dict(self) -> dict[str, object]:
        p = self.params
        return {
            "p": p.p,
            "q": p.q,
            "v": p.v,
            "log_likelihood": self.log_likelihood,
            "se": dict(self.se),
            "n_customers": self.n_customers,
            "iterations": self.iterations,
            "converged": self.converged,
            "identified": self.identified,
            "mean_spend": p.p * p.v / (p.q - 1) if p.q > 1 else float("inf"),
        }


class _Likelihood:
    """The Gamma-Gamma log-likelihood, gradient and Hessian in (p, q, v).

    Terms in x alone are summed per distinct x (log-gamma, digamma and trigamma of ``p x`` and
    ``p x + q`` for a few hundred values, from ``_special``); per customer only
    ``log(x m + v)`` and ``1 / (x m + v)`` are computed, and the sums that weight them by
    ``p x + q`` are split into ``p * sum x (.) + q * sum (.)``.
    """

    def __init__(self, x: np.ndarray, m: np.ndarray) -> None:
        self.n = float(x.size)
        counts = np.bincount(x.astype(np.int64))
        self.kx = np.flatnonzero(counts).astype(np.float64)  # distinct x (all >= 1)
        self.cx = counts[counts > 0].astype(np.float64)
        self.spend = x * m
        log_m = np.log(m)
        self.sum_x_log_xm = dot(x, log_m + np.log(x))
        self.sum_log_m = float(log_m.sum())
        self.x = x
        self._buf = np.empty((2, x.size))  # reused: fresh temporaries cost page faults

    def __call__(self, theta: np.ndarray, order: int = 1):
        """Negative log-likelihood and, to ``order``, its gradient and Hessian."""
        p, q, v = (float(t) for t in theta)
        c, k, n, x = self.cx, self.kx, self.n, self.x
        pk = p * k
        sv, log_sv = self._buf
        np.add(self.spend, v, out=sv)
        np.log(sv, out=log_sv)
        x_l, sum_l = dot(x, log_sv), float(log_sv.sum())
        ll = (
            dot(c, lgamma(pk + q) - lgamma(pk))
            - n * math.lgamma(q)
            + n * q * math.log(v)
            + p * self.sum_x_log_xm
            - self.sum_log_m
            - p * x_l
            - q * sum_l
        )
        if order == 0:
            return -ll, None, None
        psi_pq = digamma(pk + q)
        inv = np.reciprocal(sv, out=sv)
        x_i, sum_i = dot(x, inv), float(inv.sum())
        grad = np.array(
            [
                dot(c, k * (psi_pq - digamma(pk))) + self.sum_x_log_xm - x_l,
                dot(c, psi_pq) - n * float(digamma(q)) + n * math.log(v) - sum_l,
                n * q / v - p * x_i - q * sum_i,
            ]
        )
        if order == 1:
            return -ll, -grad, None
        tri_pq = trigamma(pk + q)
        inv *= inv
        x_i2, sum_i2 = dot(x, inv), float(inv.sum())
        h = np.empty((3, 3))
        h[0, 0] = dot(c, k * k * (tri_pq - trigamma(pk)))
        h[0, 1] = h[1, 0] = dot(c, k * tri_pq)
        h[0, 2] = h[2, 0] = -x_i
        h[1, 1] = dot(c, tri_pq) - n * float(trigamma(q))
        h[1, 2] = h[2, 1] = n / v - sum_i
        h[2, 2] = -n * q / v**2 + p * x_i2 + q * sum_i2
        return -ll, -grad, -h


def _start(lik: _Likelihood, m: np.ndarray) -> np.ndarray:
    """A start for Newton: if every customer's mean were exactly ``p / nu``, ``p / m`` would
    follow the spending rates' Gamma(q, v), so ``1 / m`` has mean ``q p / v`` and variance
    ``q p^2 / v^2``; for a few ``p`` take q and v from those two moments and keep the best.
    (From (1, 1, 1) Newton ran off to p -> inf, v -> 0 when spend is in cents.)"""
    y = 1.0 / m
    mean, var = float(y.mean()), float(y.var())
    q = mean * mean / var if var > 0 else 1.0
    starts = [np.array([p, q, p * q / mean]) for p in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)]
    return min(starts, key=lambda t: lik(t, 0)[0])


def gamma_gamma_log_likelihood(
    params: GammaGammaParams, frequency: np.ndarray, monetary: np.ndarray
) -> np.ndarray:
    """Each repeat customer's log-likelihood, written directly (reference for the tests)."""
    from scipy.special import gammaln

    p, q, v = params.as_array()
    x, m = np.asarray(frequency, dtype=np.float64), np.asarray(monetary, dtype=np.float64)
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(x * m + v)
    )


def fit_gamma_gamma(
    summary: pl.DataFrame,
    *,
    frequency_col: str = "frequency",
    monetary_col: str = "monetary_value",
    with_se: bool = True,
) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma on customers with ``frequency > 0`` and a positive
    ``monetary_col`` (the mean value of their repeat purchases): Newton's method on
    log-parameters with the analytic Hessian (standard errors from it), started from a fit on
    every k-th customer (~60k) of a large summary."""
    repeat = summary.filter((pl.col(frequency_col) > 0) & (pl.col(monetary_col) > 0))
    if repeat.height < 2:
        raise ValueError("Gamma-Gamma needs at least two repeat customers")
    x = repeat.get_column(frequency_col).cast(pl.Float64).to_numpy()
    m = repeat.get_column(monetary_col).cast(pl.Float64).to_numpy()
    part = subsample(x.size)
    if part is not None:
        sub = _Likelihood(x[part], m[part])
        first = newton_log(sub, _start(sub, m[part]), tol=1e-3).params
    else:
        first = _start(_Likelihood(x, m), m)
    res = newton_log(_Likelihood(x, m), first)
    se: dict[str, float] = {}
    if with_se:
        errors = standard_errors(res.hessian)
        se = dict(zip(("p", "q", "v"), (float(e) for e in errors), strict=True))
    params = GammaGammaParams(*(float(t) for t in res.params))
    return GammaGammaFit(params, -res.neg_ll, se, int(x.size), res.iterations, res.converged)


def conditional_expected_spend(
    params: GammaGammaParams, frequency: np.ndarray, monetary: np.ndarray
) -> np.ndarray:
    """E[spend per purchase | x, m]: the population mean ``p v / (q - 1)`` shrunk toward the
    customer's own mean with weight ``p x / (p x + q - 1)`` (the population mean if x = 0)."""
    p, q, v = params.as_array()
    x = np.asarray(frequency, dtype=np.float64)
    weight = p * x / (p * x + q - 1)
    return (1 - weight) * (v * p / (q - 1)) + weight * np.asarray(monetary, dtype=np.float64)
