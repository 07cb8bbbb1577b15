"""Each customer's own purchase cadence: the expected gap to the next order (the customer's
median gap shrunk toward the shop's typical gap when it has few orders), the date of the next
expected order and how overdue the customer is."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from fidele.analytics.summary import as_day, daily_purchases, purchase_gaps

__all__ = ["cadence"]


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
    typical = shop_gap if shop_gap is not None else _typical(gaps)
    gaps = gaps.drop("__gaps")
    n = pl.col("n_gaps")
    expected = (n * pl.col("median_gap").fill_null(0) + prior_weight * typical) / (n + prior_weight)
    return (
        gaps.with_columns(expected.alias("expected_gap"))
        .with_columns(
            (pl.col("last_purchase") + pl.duration(days=pl.col("expected_gap").round(0))).alias(
                "next_expected_order"
            ),
            (pl.lit(end) - pl.col("last_purchase")).dt.total_days().alias("days_since_last"),
        )
        .with_columns((pl.col("days_since_last") / pl.col("expected_gap")).alias("overdue_ratio"))
        .sort(customer_col)
    )


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


def _typical(gaps: pl.DataFrame) -> float:
    pooled = gaps.get_column("__gaps").explode().drop_nulls()
    return float(pooled.median()) if pooled.len() else 30.0  # type: ignore[arg-type]
