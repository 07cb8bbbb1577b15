"""The numerical kernels the models use instead of scipy: special functions against scipy and
mpmath, the series 2F1 on both sides of its fallback, time codes, the Newton optimiser."""

import numpy as np
import pytest
import scipy.special as sc
from hypothesis import given, settings
from hypothesis import strategies as st

from fidele.analytics import _fit, _special
from fidele.analytics.bgnbd import BGNBDParams, BGNBDScorer

ARGS = np.concatenate([np.geomspace(1e-8, 1e6, 4000), np.linspace(0.01, 40, 4000)])


def test_digamma_trigamma_lgamma_match_scipy():
    np.testing.assert_allclose(_special.digamma(ARGS), sc.digamma(ARGS), rtol=2e-15, atol=2e-15)
    np.testing.assert_allclose(_special.trigamma(ARGS), sc.polygamma(1, ARGS), rtol=4e-15)
    np.testing.assert_allclose(_special.lgamma(ARGS), sc.gammaln(ARGS), rtol=2e-15, atol=2e-15)
    assert _special.digamma(3.5) == pytest.approx(sc.digamma(3.5), rel=1e-15)


def test_dot_is_a_dot_product():
    a, b = np.arange(10_000.0), np.linspace(0, 1, 10_000)
    assert _special.dot(a, b) == pytest.approx(float(a @ b), rel=1e-14)


@pytest.mark.parametrize("zmax", [0.05, 0.33, 0.72, 0.95, 0.999])
def test_hyp2f1_series_and_its_fallback_match_scipy(zmax):
    rng = np.random.default_rng(int(zmax * 1000))
    r, a, b = 0.25, 0.79, 2.38
    C = a + b + np.arange(0, 400.0) - 1
    group = rng.integers(0, C.size, 20_000)
    z = rng.uniform(0, zmax, group.size)
    got = _special.hyp2f1_tails(a + b - 1 - r, a - 1, C, z, group)
    np.testing.assert_allclose(got, sc.hyp2f1(a + b - 1 - r, a - 1, C[group], z), rtol=1e-13)


@settings(max_examples=80, deadline=None)
@given(
    r=st.floats(0.01, 20),
    a=st.floats(0.05, 20),
    b=st.floats(0.05, 50),
    x=st.integers(0, 500),
    z=st.floats(0, 0.72),
)
def test_hyp2f1_series_matches_50_digit_reference(r, a, b, x, z):
    """The series' domain (z up to 0.72) over the model's family of arguments; beyond it
    the function is scipy's (the test above)."""
    import mpmath as mp

    mp.mp.dps = 50
    A, B, C = a + b - 1 - r, a - 1, a + b + x - 1
    if C <= 0:
        return
    want = float(mp.hyp2f1(A, B, C, z))
    got = _special.hyp2f1_tails(A, B, np.array([C]), np.array([z]), np.array([0]))[0]
    assert got == pytest.approx(want, rel=1e-12, abs=1e-300)


def test_scorer_on_a_grid_and_off_it_agree():
    params = BGNBDParams(0.243, 4.414, 0.793, 2.426)
    rng = np.random.default_rng(3)
    days = rng.integers(0, 700, 5000)
    x = rng.integers(0, 30, days.size).astype(np.float64)
    T = days / 7.0
    tx = np.floor(rng.uniform(0, 1, days.size) * days) / 7.0 * (x > 0)
    on = BGNBDScorer(params, x, tx, T)
    off = BGNBDScorer(params, x, tx + 1e-9 * (x > 0), T + 1e-9)  # not a day grid
    np.testing.assert_allclose(on.expected(13.0), off.expected(13.0), rtol=1e-7)


def test_time_codes_on_grids_and_off():
    weeks = np.array([0, 1, 2, 700]) / 7.0
    table, (codes,) = _fit.time_codes(weeks)
    assert table.size == 701 and list(codes) == [0, 1, 2, 700]
    assert np.array_equal(table[codes], weeks)
    days = np.array([3.0, 0.0, 5.0])
    table, (codes,) = _fit.time_codes(days)
    assert table.size == 6 and np.array_equal(table[codes], days)
    odd = np.array([0.5, 30.43, 0.5])
    table, (a, b) = _fit.time_codes(odd, np.array([30.43]))
    assert list(table) == [0.5, 30.43] and list(a) == [0, 1, 0] and list(b) == [1]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-3, 3) | st.integers(-(2**62), 2**62), max_size=300))
def test_distinct_counts_are_numpy_s_unique_with_counts(values):
    keys = np.array(values, dtype=np.int64)  # small values repeat
    got, counts = _fit.distinct_counts(keys)
    want, want_counts = np.unique(keys, return_counts=True)
    assert np.array_equal(got, want) and np.array_equal(counts, want_counts)
    assert got.dtype == np.int64 and counts.dtype == want_counts.dtype


def test_newton_finds_a_known_minimum_from_far_and_returns_its_hessian():
    # f = sum w (log theta - log m)^2 + sum theta, minimum at 2 w (log t - log m) / t + 1 = 0
    m, w = np.array([3.0, 0.2, 50.0]), np.array([10.0, 1.0, 1000.0])

    def objective(theta, order):
        lg = np.log(theta) - np.log(m)
        value = float(w @ lg**2 + theta.sum())
        grad = 2 * w * lg / theta + 1
        hess = np.diag(2 * w * (1 - lg) / theta**2)
        return value, grad if order else None, hess if order > 1 else None

    res = _fit.newton_log(objective, np.ones(3))
    assert res.converged
    np.testing.assert_allclose(objective(res.params, 1)[1], 0, atol=1e-9)
    np.testing.assert_allclose(res.hessian, objective(res.params, 2)[2], rtol=1e-5)
