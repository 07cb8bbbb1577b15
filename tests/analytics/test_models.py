"""BG/NBD, Gamma-Gamma and CLV: parameter recovery on generated data, likelihood and gradient
against direct formulas, numerical stability, properties of the predictions."""

from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import approx_fprime

from fidele.analytics import bgnbd as bg
from fidele.analytics import gammagamma as gg_module
from fidele.analytics._fit import hessian_fd
from fidele.analytics.bgnbd import BGNBDParams, fit_bgnbd, p_alive
from fidele.analytics.clv import calibration_vs_holdout, customer_lifetime_value, score
from fidele.analytics.gammagamma import (
    GammaGammaParams,
    conditional_expected_spend,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
)
from fidele.analytics.generate import simulate_bgnbd_gg
from fidele.analytics.summary import calibration_and_holdout, summary

from .conftest import END, START

TRUE_BG = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
TRUE_GG = GammaGammaParams(p=6.25, q=3.74, v=15.44)
# Relative tolerances for 40k customers: about 3-4 standard errors, plus the small bias that
# merging same-day purchases puts on alpha.
BG_TOL = {"r": 0.08, "alpha": 0.10, "a": 0.15, "b": 0.20}
GG_TOL = {"p": 0.12, "q": 0.06, "v": 0.15}


def weekly_summary(frame: pl.DataFrame, end: date = END) -> pl.DataFrame:
    return summary(frame, observation_end=end, time_unit="weeks", interpurchase=False)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bgnbd_recovers_true_parameters(seed):
    fit = fit_bgnbd(weekly_summary(simulate_bgnbd_gg(40_000, start=START, seed=seed)))
    assert fit.converged
    for name, tol in BG_TOL.items():
        got, want = getattr(fit.params, name), getattr(TRUE_BG, name)
        assert abs(got / want - 1) < tol, (name, got, want)
        assert 0 < fit.se[name] < tol * want


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_gamma_gamma_recovers_true_parameters(seed):
    frame = simulate_bgnbd_gg(40_000, start=START, seed=seed, amount_scale=1000.0)
    fit = fit_gamma_gamma(weekly_summary(frame).with_columns(pl.col("monetary_value") / 1000))
    for name, tol in GG_TOL.items():
        got, want = getattr(fit.params, name), getattr(TRUE_GG, name)
        assert abs(got / want - 1) < tol, (name, got, want)


def test_fit_maximises_the_direct_likelihood(simulated):
    data = weekly_summary(simulated)
    x, tx, T = (data[c].to_numpy() for c in ("frequency", "recency", "T"))
    fit = fit_bgnbd(data)
    best = bg.bgnbd_log_likelihood(fit.params, x, tx, T).sum()
    assert best == pytest.approx(fit.log_likelihood, rel=1e-10)
    for i in range(4):
        for step in (0.99, 1.01):
            moved = fit.params.as_array()
            moved[i] *= step
            assert bg.bgnbd_log_likelihood(BGNBDParams(*moved), x, tx, T).sum() < best


def test_analytic_gradient_matches_finite_differences(simulated):
    data = weekly_summary(simulated)
    x, tx, T = (data[c].cast(pl.Float64).to_numpy() for c in ("frequency", "recency", "T"))
    lik = bg._Likelihood.of_customers(x, tx, T)
    theta = np.array([0.3, 5.0, 0.9, 2.0])

    def direct(t):
        return -bg.bgnbd_log_likelihood(BGNBDParams(*t), x, tx, T).sum()

    assert lik(theta, 0)[0] == pytest.approx(direct(theta), rel=1e-12)
    numeric = approx_fprime(theta, direct, 1e-6)
    np.testing.assert_allclose(lik(theta, 1)[1], numeric, rtol=1e-4)


@pytest.mark.parametrize("theta", [[0.3, 5.0, 0.9, 2.0], [2.0, 0.5, 3.0, 0.7], [0.05, 40, 0.2, 9]])
def test_analytic_hessian_matches_finite_differences_of_the_gradient(simulated, theta):
    data = weekly_summary(simulated)
    x, tx, T = (data[c].cast(pl.Float64).to_numpy() for c in ("frequency", "recency", "T"))
    lik = bg._Likelihood.of_customers(x, tx, T)
    theta = np.array(theta)
    value, grad, hess = lik(theta, 2)
    assert (value, list(grad)) == (lik(theta, 0)[0], list(lik(theta, 1)[1]))
    numeric = hessian_fd(lambda t: lik(t, 1)[1], theta)
    np.testing.assert_allclose(hess, numeric, rtol=1e-6, atol=1e-7 * np.abs(numeric).max())


def test_gamma_gamma_gradient_and_hessian_match_finite_differences(simulated):
    data = weekly_summary(simulated).filter(pl.col("frequency") > 0)
    x = data["frequency"].cast(pl.Float64).to_numpy()
    m = data["monetary_value"].to_numpy()
    lik = gg_module._Likelihood(x, m)
    for theta in (np.array([6.0, 3.7, 15.0]), np.array([0.4, 12.0, 300.0])):

        def direct(t):
            return -gamma_gamma_log_likelihood(GammaGammaParams(*t), x, m).sum()

        value, grad, hess = lik(theta, 2)
        assert value == pytest.approx(direct(theta), rel=1e-12)
        np.testing.assert_allclose(grad, approx_fprime(theta, direct, 1e-6 * theta), rtol=1e-4)
        numeric = hessian_fd(lambda t: lik(t, 1)[1], theta)
        np.testing.assert_allclose(hess, numeric, rtol=1e-6, atol=1e-7 * np.abs(numeric).max())


def test_gamma_gamma_likelihood_and_spend_formula():
    params = GammaGammaParams(p=6.0, q=4.0, v=15.0)
    ll = gamma_gamma_log_likelihood(params, np.array([1.0]), np.array([30.0]))
    # by hand: log Gamma(10)/(Gamma(6)Gamma(4)) + 4 log 15 + 5 log 30 + 0 - 10 log 45
    from math import lgamma, log

    want = lgamma(10) - lgamma(6) - lgamma(4) + 4 * log(15) + 5 * log(30) - 10 * log(45)
    assert ll[0] == pytest.approx(want, rel=1e-12)
    spend = conditional_expected_spend(params, np.array([0.0, 2.0]), np.array([0.0, 50.0]))
    assert spend[0] == pytest.approx(6 * 15 / 3)
    w = 12 / (12 + 3)
    assert spend[1] == pytest.approx((1 - w) * 30 + w * 50)


def _expected_reference(params: BGNBDParams, t, x, tx, T) -> float:
    """The direct (untransformed) formula in 50-digit arithmetic."""
    import mpmath as mp

    mp.mp.dps = 50
    r, alpha, a, b = (mp.mpf(v) for v in params.as_array())
    x, tx, T, t = mp.mpf(x), mp.mpf(tx), mp.mpf(T), mp.mpf(t)
    hyp = mp.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    num = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
    den = 1 + (a / (b + x - 1)) * ((alpha + T) / (alpha + tx)) ** (r + x) if x > 0 else 1
    return float(num / den)


def test_heavy_buyers_over_long_horizons_match_50_digit_reference():
    params = BGNBDParams(0.243, 4.414, 0.793, 2.426)
    x = np.array([300.0, 1000.0, 0.0, 5.0])
    tx, T = np.array([259.0, 259.9, 0.0, 1.0]), np.array([260.0, 260.0, 260.0, 260.0])
    got = bg.conditional_expected_purchases(params, 260.0, x, tx, T)
    assert np.isfinite(got).all()
    want = [_expected_reference(params, 260.0, *row) for row in zip(x, tx, T, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-300)


@settings(max_examples=60, deadline=None)
@given(
    x=st.integers(0, 200),
    frac=st.floats(0, 1),
    T=st.floats(0.5, 300),
    t=st.floats(0.1, 200),
)
def test_prediction_properties(x, frac, T, t):
    params = BGNBDParams(0.243, 4.414, 0.793, 2.426)
    tx = np.array([frac * T if x else 0.0])
    arr = np.array([float(x)]), tx, np.array([T])
    alive = p_alive(params, *arr)[0]
    assert 0 <= alive <= 1
    assert x > 0 or alive == 1
    near = bg.conditional_expected_purchases(params, t, *arr)[0]
    far = bg.conditional_expected_purchases(params, 2 * t, *arr)[0]
    assert 0 <= near <= far + 1e-12


def test_clv_without_discount_is_spend_times_purchases():
    params = BGNBDParams(0.243, 4.414, 0.793, 2.426)
    x, tx, T = np.array([0.0, 3.0]), np.array([0.0, 30.0]), np.array([40.0, 40.0])
    spend = np.array([10.0, 20.0])
    flat = customer_lifetime_value(
        params, x, tx, T, spend, months=12, discount_rate=0.0, time_unit="weeks"
    )
    want = spend * bg.conditional_expected_purchases(params, 12 * 4.345, x, tx, T)
    np.testing.assert_allclose(flat, want, rtol=1e-10)
    discounted = customer_lifetime_value(
        params, x, tx, T, spend, months=12, discount_rate=0.02, time_unit="weeks"
    )
    assert (discounted < flat).all()


def test_days_and_weeks_give_the_same_customer_values(simulated):
    out = {}
    for unit in ("days", "weeks"):
        data = summary(simulated, observation_end=END, time_unit=unit, interpurchase=False)
        fit = fit_bgnbd(data)
        gg = fit_gamma_gamma(data)
        out[unit] = (fit, score(data, fit.params, gg.params, time_unit=unit, horizon_days=91))
    assert out["days"][0].params.alpha == pytest.approx(7 * out["weeks"][0].params.alpha, 1e-4)
    for col in ("p_alive", "expected_purchases"):
        np.testing.assert_allclose(out["days"][1][col], out["weeks"][1][col], rtol=1e-3, atol=1e-9)


def test_calibration_vs_holdout_tracks_actuals(simulated):
    split = calibration_and_holdout(
        simulated, calibration_end=date(2025, 6, 30), observation_end=END, time_unit="weeks"
    )
    cal = split.rename({"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T"})
    table = calibration_vs_holdout(split, fit_bgnbd(cal).params)
    assert table["frequency_cal"].to_list() == list(range(8))
    assert table["customers"].sum() == split.height
    ratio = (table["predicted"] / table["actual"]).to_numpy()
    assert np.all(np.abs(ratio - 1) < 0.25)
    assert table["actual"].is_sorted()


def test_cdnow_published_estimates():
    """Fader, Hardie & Lee (2005) on CDNOW: r 0.243, alpha 4.414, a 0.793, b 2.426,
    LL -9582.4; Fader & Hardie's Gamma-Gamma note: p 6.25, q 3.74, v 15.44."""
    from .conftest import GOLDEN

    data = pl.read_csv(GOLDEN / "cdnow_summary.csv")
    fit = fit_bgnbd(data, frequency_col="x", recency_col="t_x", T_col="T")
    got = [fit.params.r, fit.params.alpha, fit.params.a, fit.params.b]
    np.testing.assert_allclose(got, [0.243, 4.414, 0.793, 2.426], rtol=2e-3)
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    gg = fit_gamma_gamma(data, frequency_col="x", monetary_col="zbar")
    np.testing.assert_allclose(
        [gg.params.p, gg.params.q, gg.params.v], [6.25, 3.74, 15.44], rtol=3e-3
    )
