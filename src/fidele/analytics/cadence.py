"""Each customer's own purchase cadence: the expected gap to the next order (the customer's
median gap shrunk toward the shop's typical gap when it has few orders), the date of the next
expected order and how overdue the customer is."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl

from fidele.analytics.summary import as_day, daily_purchases, purchase_gaps

__all__ = ["cadence", "cadence_from_gaps", "median_of_counts"]


def cadence(
    transactions: pl.DataFrame | pl.LazyFrame,
    *,
    observation_end: date | datetime,
    customer_col: str = "customer_id",
    datetime_col: str = "date",
    prior_weight: float = 2.0,
    shop_gap: float | None = None,
) -> pl.DataFrame:
    """Expected gap and next order per customer.

    ``expected_gap = (n * median_gap + prior_weight * shop_gap) / (n + prior_weight)`` with
    ``n`` the customer's number of gaps between purchase days; ``shop_gap`` defaults to the
    median of all gaps in the shop (30 days if nobody has bought twice).

    Returns
    -------
    polars.DataFrame
        ``customer_col``, ``last_purchase`` (Date), ``n_gaps``, ``median_gap`` (days, null
        without repeats), ``expected_gap`` (days), ``next_expected_order`` (Date),
        ``days_since_last`` and ``overdue_ratio`` (days since last / expected gap).
    """
    end = as_day(observation_end)
    days = daily_purchases(
        transactions,
        customer_col=customer_col,
        datetime_col=datetime_col,
        monetary_col=None,
        observation_end=end,
    )
    gaps = _gaps(days, customer_col).collect()
    if shop_gap is None:
        shop_gap = median_of_counts(gaps.get_column("__gaps").explode().drop_nulls().value_counts())
    return cadence_from_gaps(
        gaps.drop("__gaps"),
        observation_end=end,
        shop_gap=shop_gap,
        customer_col=customer_col,
        prior_weight=prior_weight,
    )


def cadence_from_gaps(
    gaps: pl.DataFrame,
    *,
    observation_end: date | datetime,
    shop_gap: float,
    customer_col: str = "customer_id",
    prior_weight: float = 2.0,
) -> pl.DataFrame:
    """The cadence of :func:`cadence` from per-customer gap statistics (``customer_col``,
    ``last_purchase``, ``n_gaps``, ``median_gap`` in days), however they were computed (polars
    or the database), and the shop's typical gap. Same columns as :func:`cadence`."""
    end = as_day(observation_end)
    n = pl.col("n_gaps")
    expected = (n * pl.col("median_gap").fill_null(0) + prior_weight * shop_gap) / (
        n + prior_weight
    )
    return (
        gaps.select(customer_col, "last_purchase", "n_gaps", "median_gap")
        .with_columns(expected.alias("expected_gap"))
        .with_columns(
            (pl.col("last_purchase") + pl.duration(days=pl.col("expected_gap").round(0))).alias(
                "next_expected_order"
            ),
            (pl.lit(end) - pl.col("last_purchase")).dt.total_days().alias("days_since_last"),
        )
        .with_columns((pl.col("days_since_last") / pl.col("expected_gap")).alias("overdue_ratio"))
        .sort(customer_col)
    )


def median_of_counts(counts: pl.DataFrame) -> float:
    """The median of the values (first column) each repeated as often as the second column
    says (the two middle ones averaged), or 30 days when there is none (nobody bought twice):
    the shop's typical gap from a histogram of the gaps (a few hundred rows from the
    database). The polars path calls it too, so both take the same median."""
    value, count = counts.columns[:2]
    ordered = counts.filter(pl.col(count) > 0).sort(value)
    total = int(ordered.get_column(count).sum() or 0)
    if total == 0:
        return 30.0
    values = ordered.get_column(value).cast(pl.Float64).to_numpy()
    upto = np.cumsum(ordered.get_column(count).to_numpy())
    middle = ((total - 1) // 2, total // 2)
    low, high = (values[np.searchsorted(upto, k, side="right")] for k in middle)
    return float((low + high) / 2)


def _gaps(days: pl.LazyFrame, customer_col: str) -> pl.LazyFrame:
    return (
        purchase_gaps(days, customer_col)
        .group_by(customer_col)
        .agg(
            pl.col("day").max().alias("last_purchase"),
            pl.col("gap").count().cast(pl.Int64).alias("n_gaps"),
            pl.col("gap").median().alias("median_gap"),
            pl.col("gap").drop_nulls().alias("__gaps"),
        )
    )
