"""The special functions the models need, in numpy: digamma and trigamma, log-gamma on small
arrays, the logistic pair of the BG/NBD likelihood, the Gauss series 2F1 of expected
purchases, and dot products that never reach BLAS.

Why not scipy.special: importing it (and scipy.optimize) took ~0.5 s of a ~1.5 s
`fidele analytics clv` process, more than both fits. The models only evaluate these functions
on a few hundred distinct frequencies and a handful of scalars, where a recurrence plus an
asymptotic series is exact to a few ulps; the 2F1 falls back to scipy (imported then) for the
arguments its series does not cover quickly. Tests check each against scipy and mpmath.

Why not BLAS: OpenBLAS runs ``ddot`` on every core for long vectors, and on a shared 2-core
machine its spinning threads made an optimiser tens of times slower; ``einsum`` sums in its
own single-threaded SIMD loop, and always in the same order.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["digamma", "dot", "hyp2f1_tails", "lgamma", "trigamma"]

# Below this, digamma and trigamma step up by their recurrences; from it on, the asymptotic
# series to z^-14 / z^-15 is within 1e-16 (its next terms are 0.44 z^-16 and 7.1 z^-17).
_ASYMPTOTIC_FROM = 10.0


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """``a @ b`` for 1-d float arrays, without BLAS."""
    return float(np.einsum("i,i->", a, b))


def lgamma(z: np.ndarray) -> np.ndarray:
    """log Gamma of a small array of positive numbers (``math.lgamma`` per element)."""
    flat = np.asarray(z, dtype=np.float64).ravel()
    return np.array([math.lgamma(v) for v in flat.tolist()]).reshape(np.shape(z))


def _shifted(z: np.ndarray, power: int) -> tuple[np.ndarray, np.ndarray]:
    """``z`` raised to at least :data:`_ASYMPTOTIC_FROM` by steps of one, and the sum of
    ``1 / z ** power`` over the steps (the recurrences' corrections)."""
    z = np.array(z, dtype=np.float64)  # a copy
    acc = np.zeros_like(z)
    small = z < _ASYMPTOTIC_FROM
    while small.any():
        acc[small] += z[small] ** -power
        z[small] += 1.0
        small = z < _ASYMPTOTIC_FROM
    return z, acc


def digamma(z: np.ndarray | float) -> np.ndarray:
    """psi(z) for z > 0: ``psi(z) = psi(z + 1) - 1/z`` up to 10, then
    ``log z - 1/(2z) - sum B_2k / (2k z^2k)``."""
    w, acc = _shifted(np.asarray(z), 1)
    inv = 1.0 / w
    i2 = inv * inv
    tail = i2 * (
        1 / 12
        - i2
        * (
            1 / 120
            - i2 * (1 / 252 - i2 * (1 / 240 - i2 * (1 / 132 - i2 * (691 / 32760 - i2 / 12))))
        )
    )
    return np.log(w) - 0.5 * inv - tail - acc


def trigamma(z: np.ndarray | float) -> np.ndarray:
    """psi'(z) for z > 0: ``psi'(z) = psi'(z + 1) + 1/z^2`` up to 10, then
    ``1/z + 1/(2z^2) + sum B_2k / z^(2k+1)``."""
    w, acc = _shifted(np.asarray(z), 2)
    inv = 1.0 / w
    i2 = inv * inv
    inner = 1 / 6 - i2 * (
        1 / 30 - i2 * (1 / 42 - i2 * (1 / 30 - i2 * (5 / 66 - i2 * (691 / 2730 - i2 * 7 / 6))))
    )
    return inv * (1.0 + inv * (0.5 + inv * inner)) + acc


# The series is used for z up to this (at most ~115 terms to 1e-17); beyond it, scipy.
_SERIES_MAX_Z = 0.72
_SERIES_EPS = 1e-17


def hyp2f1_tails(A: float, B: float, C: np.ndarray, z: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Gauss 2F1(A, B; C[group]; z) for many ``z`` sharing few distinct ``C`` (shape of z).

    The coefficients ``(A)_n (B)_n / ((C)_n n!)`` are tabulated once per distinct ``C`` and
    the power series summed by Horner's rule; it is truncated where the next term, times
    ``z / (1 - z)``, is below 1e-17 of the leading term, a bound on the rest once the term
    ratio ``(A+n)(B+n) / ((C+n)(n+1))`` is at most 1 (it then stays so). Arguments the series
    cannot take quickly (``z`` above 0.72, ``C`` not positive, term ratios above 1 for
    ever) are computed by ``scipy.special.hyp2f1``.
    """
    z = np.asarray(z, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)
    out = np.empty_like(z)
    ratio_le_1_from = _ratio_bound(A, B, C)
    fine = (z >= 0) & (z <= _SERIES_MAX_Z) & np.isfinite(ratio_le_1_from[group])
    if fine.any():
        out[fine] = _series(A, B, C, z[fine], group[fine], ratio_le_1_from)
    if not fine.all():
        from scipy.special import hyp2f1

        rest = ~fine
        out[rest] = hyp2f1(A, B, C[group[rest]], z[rest])
    return out


def _ratio_bound(A: float, B: float, C: np.ndarray) -> np.ndarray:
    """Per C, an n from which every term ratio is at most 1 in absolute value (inf if none):
    ``(A+n)(B+n) <= (C+n)(n+1)`` for all larger n when ``C + 1 > A + B`` and
    ``n >= (AB - C) / (C + 1 - A - B)``; the factors are then positive past ``-A``, ``-B``."""
    slope = C + 1.0 - A - B
    with np.errstate(divide="ignore", invalid="ignore"):
        start = np.where(slope > 0, np.maximum((A * B - C) / slope, 0.0), np.inf)
    start = np.maximum(start, max(-A, -B, 0.0))
    return np.where(C > 0, np.ceil(start), np.inf)


def _series(
    A: float, B: float, C: np.ndarray, z: np.ndarray, group: np.ndarray, from_n: np.ndarray
) -> np.ndarray:
    used = np.unique(group)
    Cu, n0, zmax = C[used], int(from_n[used].max()), float(z.max())
    # coefficients of z^0 .. z^(N-1), N the first n >= n0 whose term bounds the rest below eps
    table, coef, n = [], np.ones_like(Cu), 0
    while n < n0 or float(np.abs(coef).max()) * zmax**n / (1 - zmax) >= _SERIES_EPS:
        table.append(coef)
        coef = coef * ((A + n) * (B + n) / ((Cu + n) * (n + 1)))
        n += 1
    if not table:
        return np.ones_like(z)
    where = np.searchsorted(used, group)
    total = table[-1][where]
    for row in reversed(table[:-1]):
        total *= z
        total += row[where]
    return total
