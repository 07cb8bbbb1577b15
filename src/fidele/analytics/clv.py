"""Customer lifetime value and per-customer scores from a fitted BG/NBD and Gamma-Gamma, and
the calibration-vs-holdout check of Fader, Hardie & Lee."""

from __future__ import annotations

import numpy as np
import polars as pl

from fidele.analytics.bgnbd import BGNBDParams, BGNBDScorer, conditional_expected_purchases
from fidele.analytics.gammagamma import GammaGammaParams, conditional_expected_spend
from fidele.analytics.summary import TimeUnit, unit_days

__all__ = ["calibration_vs_holdout", "customer_lifetime_value", "score"]

# Time units per month, as lifetimes' ``customer_lifetime_value`` counts them.
_PER_MONTH = {"days": 30.0, "weeks": 4.345, "calendar_weeks": 4.345}


def customer_lifetime_value(
    bgnbd: BGNBDParams,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
    spend: np.ndarray,
    *,
    months: int = 12,
    discount_rate: float = 0.01,
    time_unit: TimeUnit = "days",
) -> np.ndarray:
    """Discounted CLV over ``months``: for each month m, the expected purchases in that month
    times the expected spend per purchase, divided by ``(1 + discount_rate) ** m``.

    A month is 30 days or 4.345 weeks, the model's time unit being told explicitly (lifetimes
    assumed days and inflated a weekly model's CLV 3.7x).
    """
    return _clv(BGNBDScorer(bgnbd, frequency, recency, T), spend, months, discount_rate, time_unit)


def _clv(
    scorer: BGNBDScorer, spend: np.ndarray, months: int, discount_rate: float, unit: TimeUnit
) -> np.ndarray:
    # the discounted monthly increments are summed per distinct (x, T) pair, then gathered
    step = _PER_MONTH[unit]
    m = np.arange(1, months + 1)
    return spend * scorer.discounted(m * step, (1 + discount_rate) ** -m.astype(np.float64))


def score(
    summary: pl.DataFrame,
    bgnbd: BGNBDParams,
    gamma_gamma: GammaGammaParams | None = None,
    *,
    customer_col: str = "customer_id",
    time_unit: TimeUnit = "days",
    horizon_days: int = 90,
    clv_months: int = 12,
    discount_rate: float = 0.01,
) -> pl.DataFrame:
    """Score each customer of a summary (whose times are in ``time_unit``).

    Returns
    -------
    polars.DataFrame
        ``customer_col``, ``p_alive``, ``expected_purchases`` (next ``horizon_days`` days) and,
        with ``gamma_gamma``, ``expected_spend`` (per purchase, in the summary's money unit),
        ``expected_revenue`` (purchases x spend over the horizon) and ``clv``
        (``clv_months`` months, monthly ``discount_rate``).
    """
    x, tx, T = (
        summary.get_column(c).cast(pl.Float64).to_numpy() for c in ("frequency", "recency", "T")
    )
    horizon = horizon_days / unit_days(time_unit)
    scorer = BGNBDScorer(bgnbd, x, tx, T)
    purchases = scorer.expected(horizon)
    cols = {
        customer_col: summary.get_column(customer_col),
        "p_alive": scorer.alive,
        "expected_purchases": purchases,
    }
    if gamma_gamma is not None:
        m = summary.get_column("monetary_value").cast(pl.Float64).to_numpy()
        spend = conditional_expected_spend(gamma_gamma, x, m)
        cols["expected_spend"] = spend
        cols["expected_revenue"] = spend * purchases
        cols["clv"] = _clv(scorer, spend, clv_months, discount_rate, time_unit)
    return pl.DataFrame(cols)


def calibration_vs_holdout(
    split: pl.DataFrame, bgnbd: BGNBDParams, *, max_frequency: int = 7
) -> pl.DataFrame:
    """Actual vs predicted mean holdout purchases by calibration frequency (the last bucket
    holds ``max_frequency`` and more), from a :func:`calibration_and_holdout` frame whose
    parameters were fitted on the calibration columns.

    Returns
    -------
    polars.DataFrame
        ``frequency_cal`` (bucket), ``customers``, ``actual`` and ``predicted`` (mean
        purchases per customer in the holdout period), sorted by bucket.
    """
    x, tx, T = (
        split.get_column(c).cast(pl.Float64).to_numpy()
        for c in ("frequency_cal", "recency_cal", "T_cal")
    )
    duration = split.get_column("duration_holdout").to_numpy()
    predicted = conditional_expected_purchases(bgnbd, float(duration[0]), x, tx, T)
    return (
        split.select(
            pl.col("frequency_cal").clip(upper_bound=max_frequency),
            pl.col("frequency_holdout").cast(pl.Float64).alias("actual"),
            pl.Series("predicted", predicted),
        )
        .group_by("frequency_cal")
        .agg(pl.len().alias("customers"), pl.col("actual").mean(), pl.col("predicted").mean())
        .sort("frequency_cal")
    )
