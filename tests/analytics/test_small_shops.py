"""Small shops get useful, labelled numbers: the plain MLE where the data identifies the
models, a penalised fit where it does not, cadence and spend averages below that."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fidele.analytics.bgnbd import fit_bgnbd
from fidele.analytics.cadence import cadence
from fidele.analytics.generate import simulate_bgnbd_gg
from fidele.analytics.pipeline import ClvOptions, cadence_scores, customer_insights
from fidele.analytics.summary import summary

START, END = date(2024, 1, 1), date(2025, 12, 30)


def _shop(n: int, seed: int) -> pl.DataFrame:
    return simulate_bgnbd_gg(n, start=START, days=730, seed=seed)


@pytest.mark.parametrize("n", [30, 100, 300, 1000])
@pytest.mark.parametrize("seed", [1, 42])
def test_every_customer_gets_finite_labelled_numbers(n, seed):
    report, out = customer_insights(_shop(n, seed), observation_end=END)
    assert out.height == n
    assert report["method"] in {"model", "penalised_model", "cadence_average"}
    assert set(out["clv_method"]) == {report["method"]}
    for col in ("expected_purchases", "expected_spend", "clv"):
        values = out[col].to_numpy()
        assert np.isfinite(values).all() and (values >= 0).all(), col
    if report["method"] == "cadence_average":
        assert out["p_alive"].null_count() == n and report["warnings"]
    else:
        assert out["p_alive"].is_between(0, 1).all()
    if n == 30:  # fewer than 20 repeat customers: no model at all
        assert report["method"] == "cadence_average"


def test_a_flat_likelihood_falls_back_to_the_penalised_fit():
    """100 customers, seed 42: the plain MLE runs off along a ridge (a and b ~ 1e11)."""
    data = summary(_shop(100, 42), observation_end=END, time_unit="weeks", interpurchase=False)
    plain = fit_bgnbd(data, penalise=False)
    assert not plain.identified
    fitted = fit_bgnbd(data)
    assert fitted.estimator == "penalised" and fitted.identified
    assert 0.01 < fitted.params.a < 100 and 0.01 < fitted.params.b < 100
    report, _ = customer_insights(_shop(100, 42), observation_end=END)
    assert report["method"] == "penalised_model"
    assert any("prior" in w for w in report["warnings"])


@pytest.mark.parametrize(("n", "seed"), [(300, 1), (1000, 42), (5000, 3)])
def test_the_plain_mle_is_unchanged_where_the_data_identifies_it(n, seed):
    data = summary(_shop(n, seed), observation_end=END, time_unit="weeks", interpurchase=False)
    plain = fit_bgnbd(data, penalise=False)
    assert plain.identified
    assert fit_bgnbd(data).params == plain.params
    assert fit_bgnbd(data).estimator == "mle"


def test_the_fallback_is_near_the_model_where_both_exist():
    """On a shop the models fit, the averages come within a factor of 1.6 of the BG/NBD's
    expected purchases and CLV on average: rough, but of the right size."""
    shop = _shop(3000, 7)
    report, out = customer_insights(shop, observation_end=END)
    assert report["method"] == "model"
    data = summary(shop, observation_end=END, time_unit="weeks", interpurchase=False)
    rough = cadence_scores(data, cadence(shop, observation_end=END), ClvOptions())
    for col in ("expected_purchases", "clv"):
        ratio = rough[col].mean() / out[col].mean()
        assert 0.6 < ratio < 1.6, (col, ratio)


def test_the_file_cli_says_when_the_model_needed_a_prior(tmp_path):
    path = tmp_path / "orders.csv"
    _shop(100, 42).write_csv(path)
    fidele = str(Path(sys.executable).parent / "fidele")
    done = subprocess.run(
        [
            fidele,
            "analytics",
            "clv",
            "--orders",
            str(path),
            "--observation-end",
            str(END),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["method"] == "penalised_model"
    assert report["bgnbd"]["estimator"] == "penalised"
    assert all(math.isfinite(report["bgnbd"][k]) for k in ("r", "alpha", "a", "b"))
    table = subprocess.run(
        [fidele, "analytics", "clv", "--orders", str(path), "--observation-end", str(END)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0 and "warning" in table.stderr and "prior" in table.stderr
