"""Gamma-Gamma spend model (Fader & Hardie's 2013 note, lifetimes' ``GammaGammaFitter``):
fitted on repeat customers' mean repeat-purchase value, analytic gradient, log parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.special import digamma, gammaln

from fidele.analytics._fit import hessian, minimise_log, standard_errors

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
            "mean_spend": p.p * p.v / (p.q - 1) if p.q > 1 else float("inf"),
        }


class _Likelihood:
    """Per-x terms are summed through per-x counts; only ``log(x m + v)`` is per customer."""

    def __init__(self, x: np.ndarray, m: np.ndarray) -> None:
        xi = x.astype(np.int64)
        self.n = float(x.size)
        self.cx = np.bincount(xi).astype(np.float64)[1:]  # x >= 1 here
        self.kx = np.arange(1, self.cx.size + 1, dtype=np.float64)
        self.spend = x * m
        self.sum_x_log_xm = float(x @ (np.log(m) + np.log(x)))
        self.sum_log_m = float(np.log(m).sum())
        self.x = x

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, v = theta
        c, k = self.cx, self.kx
        log_sv = np.log(self.spend + v)
        ll = (
            c @ (gammaln(p * k + q) - gammaln(p * k))
            - self.n * gammaln(q)
            + self.n * q * np.log(v)
            + p * self.sum_x_log_xm
            - self.sum_log_m
            - p * (self.x @ log_sv)
            - q * log_sv.sum()
        )
        psi = digamma(p * k + q)
        d_p = c @ (k * (psi - digamma(p * k))) + self.sum_x_log_xm - self.x @ log_sv
        d_q = c @ psi - self.n * digamma(q) + self.n * np.log(v) - log_sv.sum()
        d_v = self.n * q / v - (p * self.x + q) @ (1.0 / (self.spend + v))
        return -float(ll), -np.array([d_p, d_q, d_v])


def gamma_gamma_log_likelihood(
    params: GammaGammaParams, frequency: np.ndarray, monetary: np.ndarray
) -> np.ndarray:
    """Each repeat customer's log-likelihood, written directly (reference for the tests)."""
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
    ``monetary_col`` (the mean value of their repeat purchases)."""
    repeat = summary.filter((pl.col(frequency_col) > 0) & (pl.col(monetary_col) > 0))
    if repeat.height < 2:
        raise ValueError("Gamma-Gamma needs at least two repeat customers")
    x = repeat.get_column(frequency_col).cast(pl.Float64).to_numpy()
    m = repeat.get_column(monetary_col).cast(pl.Float64).to_numpy()
    lik = _Likelihood(x, m)
    res = minimise_log(lik, np.ones(3))
    se: dict[str, float] = {}
    if with_se:
        errors = standard_errors(hessian(lambda t: lik(t)[1], res.params))
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
