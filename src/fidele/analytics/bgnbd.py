"""BG/NBD (Fader, Hardie & Lee 2005): maximum likelihood on compressed summaries, in log space,
with an analytic gradient; P(alive) and expected purchases per customer.

Times are in the summary's unit (days or weeks); the fit rescales them so the longest ``T`` is
10 (raw weeks made the likelihood's branch terms underflow) and reports ``alpha`` back in the
summary's unit, as lifetimes does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.special import digamma, expit, gammaln, hyp2f1

from fidele.analytics._fit import hessian, minimise_log, standard_errors

__all__ = [
    "BGNBDFit",
    "BGNBDParams",
    "BGNBDScorer",
    "bgnbd_log_likelihood",
    "conditional_expected_purchases",
    "fit_bgnbd",
    "p_alive",
]


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float

    def as_array(self) -> np.ndarray:
        return np.array([self.r, self.alpha, self.a, self.b])


@dataclass(frozen=True)
class BGNBDFit:
    """A fitted BG/NBD: parameters, total log-likelihood and standard errors (square roots of
    the inverse observed information, by finite differences of the analytic gradient)."""

    params: BGNBDParams
    log_likelihood: float
    se: dict[str, float] = field(default_factory=dict)
    n_customers: int = 0
    n_patterns: int = 0
    iterations: int = 0
    converged: bool = True

    def as_dict(self) -> dict[str, object]:
        p = self.params
        return {
            "r": p.r,
            "alpha": p.alpha,
            "a": p.a,
            "b": p.b,
            "log_likelihood": self.log_likelihood,
            "se": dict(self.se),
            "n_customers": self.n_customers,
            "n_patterns": self.n_patterns,
            "iterations": self.iterations,
            "converged": self.converged,
        }


class _Likelihood:
    """The BG/NBD log-likelihood over (x, t_x, T) patterns with weights.

    Terms that depend only on x are summed through per-x weights (bincount), so they cost one
    evaluation per distinct x; log(alpha + t) is computed once per distinct time and gathered.
    For a repeat buyer the two branches are ``A3 = -(r + x) log(alpha + T)`` and
    ``A4 = log a - log(b + x - 1) - (r + x) log(alpha + t_x)``; with ``d = A4 - A3``,
    ``log(e^A3 + e^A4) = A3 + softplus(d)`` and the branch weights are ``expit(-d)`` and
    ``expit(d)``, so the terms in ``A3`` alone are per-time sums fixed at construction and
    each evaluation makes ~15 passes over the patterns, in preallocated buffers (fresh large
    temporaries cost page faults at every call).
    """

    def __init__(self, x: np.ndarray, tx: np.ndarray, T: np.ndarray, w: np.ndarray) -> None:
        xi = x.astype(np.int64)
        self.W = float(w.sum())
        self.cx = np.bincount(xi, weights=w)
        self.kx = np.arange(self.cx.size, dtype=np.float64)
        times, inv = np.unique(np.concatenate([T, tx]), return_inverse=True)
        i_T, i_t = inv[: x.size], inv[x.size :]
        rep = xi > 0
        self.times = times
        self.c0 = np.bincount(i_T[~rep], weights=w[~rep], minlength=times.size)
        self.x1, self.ix1 = x[rep].astype(np.float64), xi[rep] - 1
        self.iT1, self.it1, self.w1 = i_T[rep], i_t[rep], w[rep]
        # per-time weights of the A3 terms: sum of w and of w x over repeat patterns at T
        self.cT1 = np.bincount(self.iT1, weights=self.w1, minlength=times.size)
        self.cT1x = np.bincount(self.iT1, weights=self.w1 * self.x1, minlength=times.size)
        self._buf = np.empty((4, self.x1.size))

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative log-likelihood and its gradient in (r, alpha, a, b)."""
        r, alpha, a, b = theta
        c, k = self.cx, self.kx
        lt = np.log(alpha + self.times)
        inv_t = 1.0 / (alpha + self.times)
        lbx = np.log(b + k[1:] - 1.0)
        span, d, rx, tmp = self._buf  # log((alpha + T) / (alpha + t_x)), d, r + x, scratch
        np.subtract(lt[self.iT1], lt[self.it1], out=span)
        np.add(self.x1, r, out=rx)
        np.multiply(rx, span, out=d)
        d -= lbx[self.ix1]
        d += np.log(a)
        ll_a3 = -(r * (self.cT1 @ lt) + self.cT1x @ lt)  # sum of w A3
        np.logaddexp(0.0, d, out=tmp)
        ll = self._x_terms(r, alpha, a, b) - r * (self.c0 @ lt) + ll_a3 + self.w1 @ tmp
        ws4 = expit(d, out=tmp)
        ws4 *= self.w1  # w expit(d): the weight of the A4 branch
        d_r = (
            c @ (digamma(r + k) - digamma(r))
            + self.W * np.log(alpha)
            - self.c0 @ lt
            - self.cT1 @ lt
            + ws4 @ span
        )
        np.subtract(inv_t[self.iT1], inv_t[self.it1], out=span)
        np.multiply(rx, ws4, out=rx)
        d_alpha = (
            self.W * r / alpha
            - r * (self.c0 @ inv_t)
            - (r * self.cT1 + self.cT1x) @ inv_t
            + rx @ span
        )
        d_ab = digamma(a + b) - digamma(a + b + k)
        sw4 = np.bincount(self.ix1, weights=ws4, minlength=k.size - 1)
        d_a = c @ d_ab + sw4.sum() / a
        d_b = c @ (d_ab + digamma(b + k) - digamma(b)) - sw4 @ (1.0 / np.exp(lbx))
        return -ll, -np.array([d_r, d_alpha, d_a, d_b])

    def _x_terms(self, r: float, alpha: float, a: float, b: float) -> float:
        c, k = self.cx, self.kx
        a1 = c @ (gammaln(r + k) - gammaln(r)) + self.W * r * np.log(alpha)
        a2 = c @ (gammaln(a + b) + gammaln(b + k) - gammaln(b) - gammaln(a + b + k))
        return float(a1 + a2)


def _arrays(
    summary: pl.DataFrame, frequency_col: str, recency_col: str, T_col: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(
        summary.get_column(c).cast(pl.Float64).to_numpy()
        for c in (frequency_col, recency_col, T_col)
    )  # type: ignore[return-value]


def fit_bgnbd(
    summary: pl.DataFrame,
    *,
    frequency_col: str = "frequency",
    recency_col: str = "recency",
    T_col: str = "T",
    start: BGNBDParams | None = None,
    with_se: bool = True,
) -> BGNBDFit:
    """Maximum-likelihood BG/NBD on a per-customer summary.

    Customers are compressed to unique ``(frequency, recency, T)`` patterns with counts; the
    search runs on log-parameters with L-BFGS-B and the analytic gradient, time rescaled so
    that ``max(T) = 10``. Parameters come back in the summary's time unit.
    """
    if summary.height == 0:
        raise ValueError("cannot fit BG/NBD on an empty summary")
    scale = 10.0 / max(float(summary.get_column(T_col).max()), 1e-9)  # type: ignore[arg-type]
    # in order of first occurrence: the same summary gives the same sums, so the same fit
    patterns = summary.group_by(frequency_col, recency_col, T_col, maintain_order=True).len()
    ux, utx, uT = _arrays(patterns, frequency_col, recency_col, T_col)
    counts = patterns.get_column("len").cast(pl.Float64).to_numpy()
    utx, uT = utx * scale, uT * scale
    lik = _Likelihood(ux, utx, uT, counts)
    first = np.ones(4) if start is None else start.as_array() * [1, scale, 1, 1]
    res = minimise_log(lik, first)
    r, alpha_s, a, b = res.params
    se = _se(lik, res.params, scale) if with_se else {}
    log_lik = -res.neg_ll + float(counts @ ux) * np.log(scale)  # back to unscaled time
    params = BGNBDParams(float(r), float(alpha_s / scale), float(a), float(b))
    return BGNBDFit(
        params, float(log_lik), se, summary.height, int(ux.size), res.iterations, res.converged
    )


def _se(lik: _Likelihood, theta: np.ndarray, scale: float) -> dict[str, float]:
    errors = standard_errors(hessian(lambda t: lik(t)[1], theta))
    errors[1] /= scale
    return dict(zip(("r", "alpha", "a", "b"), (float(e) for e in errors), strict=True))


def bgnbd_log_likelihood(
    params: BGNBDParams, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Each customer's log-likelihood, written directly (the reference the fit is tested on)."""
    r, alpha, a, b = params.as_array()
    x = np.asarray(frequency, dtype=np.float64)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + recency)
    a4 = np.where(x > 0, a4, -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def _log_odds_dead(params: BGNBDParams, x: np.ndarray, tx: np.ndarray, T: np.ndarray):
    r, alpha, a, b = params.as_array()
    ratio = np.log((alpha + T) / (alpha + tx))
    return np.log(a / (b + np.maximum(x, 1) - 1)) + (r + x) * ratio


def p_alive(
    params: BGNBDParams, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """P(alive | x, t_x, T): 1 without repeats, else ``1 / (1 + exp(log odds of death))``."""
    x = np.asarray(frequency, dtype=np.float64)
    return np.where(x > 0, expit(-_log_odds_dead(params, x, recency, T)), 1.0)


class BGNBDScorer:
    """Per-customer predictions for many horizons: the (x, T) pairs and P(alive) are computed
    once, then each horizon costs one 2F1 per distinct pair."""

    def __init__(
        self, params: BGNBDParams, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray
    ) -> None:
        self.params = params
        self.x = np.asarray(frequency, dtype=np.float64)
        self.alive = p_alive(params, self.x, np.asarray(recency), np.asarray(T))
        self.key, (self.ux, self.uT) = _pairs(self.x, np.asarray(T, dtype=np.float64))

    def expected(self, t: float) -> np.ndarray:
        """E[X(T, T + t) | x, t_x, T], see :func:`conditional_expected_purchases`."""
        r, alpha, a, b = self.params.as_array()
        z = t / (alpha + self.uT + t)
        tail = np.exp((a - 1) * np.log1p(-z)) * hyp2f1(a + b - 1 - r, a - 1, a + b + self.ux - 1, z)
        first = (a + b + self.x - 1) / (a - 1)
        return first * (1.0 - tail[self.key]) * self.alive


def conditional_expected_purchases(
    params: BGNBDParams,
    t: float,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
) -> np.ndarray:
    """E[X(T, T + t) | x, t_x, T]: expected purchases in the next ``t`` time units.

    The Gauss 2F1 is used in its Euler-transformed form
    ``(1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)``, ``z = t / (alpha + T + t)``, which stays
    finite for heavy buyers over long horizons (the direct form overflowed), and depends on
    ``(x, T)`` only: it is evaluated once per distinct pair and gathered back.
    """
    return BGNBDScorer(params, frequency, recency, T).expected(t)


def _pairs(x: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    uT, iT = np.unique(T, return_inverse=True)
    code = x.astype(np.int64) * uT.size + iT
    ucode, inv = np.unique(code, return_inverse=True)
    return inv, ((ucode // uT.size).astype(np.float64), uT[ucode % uT.size])
