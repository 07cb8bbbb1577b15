"""Monthly acquisition cohorts: customers and revenue by months since the first purchase."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from fidele.analytics.summary import daily_purchases

__all__ = ["cohort_matrix", "cohort_table", "cohorts", "customer_months", "months_between"]


def customer_months(
    transactions: pl.DataFrame | pl.LazyFrame,
    *,
    observation_end: date | datetime,
    customer_col: str = "customer_id",
    datetime_col: str = "date",
    monetary_col: str | None = "amount",
) -> pl.LazyFrame:
    """One row per customer and active month: ``customer_col``, ``month`` (Date, first of the
    month), ``cohort`` (month of the first purchase), ``period`` (months since ``cohort``),
    ``orders``, ``revenue``, ``first_day_revenue`` (revenue of the first purchase day if in
    this month, else 0)."""
    days = daily_purchases(
        transactions,
        customer_col=customer_col,
        datetime_col=datetime_col,
        monetary_col=monetary_col,
        observation_end=observation_end,
    )
    first = pl.col("day").min().over(customer_col)
    return (
        days.with_columns(
            pl.col("day").dt.truncate("1mo").alias("month"),
            first.dt.truncate("1mo").alias("cohort"),
            pl.when(pl.col("day") == first).then("amount").otherwise(0).alias("__first"),
        )
        .group_by(customer_col, "month")
        .agg(
            pl.col("cohort").first(),
            pl.col("orders").sum().cast(pl.Int64),
            pl.col("amount").sum().alias("revenue"),
            pl.col("__first").sum().alias("first_day_revenue"),
        )
        .with_columns(months_between("cohort", "month").alias("period"))
    )


def months_between(start: str, end: str) -> pl.Expr:
    """Calendar months from the ``start`` column's month to the ``end`` column's (Int32)."""
    years = pl.col(end).dt.year() - pl.col(start).dt.year()
    return (years * 12 + pl.col(end).dt.month() - pl.col(start).dt.month()).cast(pl.Int32)


def cohorts(
    transactions: pl.DataFrame | pl.LazyFrame,
    *,
    observation_end: date | datetime,
    customer_col: str = "customer_id",
    datetime_col: str = "date",
    monetary_col: str | None = "amount",
) -> pl.DataFrame:
    """The cohort table in long form.

    Returns
    -------
    polars.DataFrame
        ``cohort`` (Date), ``period`` (months since the cohort month, 0 = acquisition month),
        ``cohort_size``, ``customers`` (active in that month), ``retention`` (customers /
        cohort_size), ``revenue`` and ``revenue_per_customer`` (revenue / cohort_size), sorted
        by cohort then period.
    """
    months = customer_months(
        transactions,
        observation_end=observation_end,
        customer_col=customer_col,
        datetime_col=datetime_col,
        monetary_col=monetary_col,
    )
    counts = months.group_by("cohort", "period").agg(
        pl.len().cast(pl.Int64).alias("customers"), pl.col("revenue").sum()
    )
    return cohort_table(counts)


def cohort_table(counts: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The :func:`cohorts` table from its counts, ``cohort``, ``period``, ``customers`` (active)
    and ``revenue`` per cohort and period, however they were counted (polars or the database).
    """
    size = pl.col("customers").filter(pl.col("period") == 0).first().over("cohort")
    return (
        counts.lazy()
        .with_columns(size.alias("cohort_size"))
        .with_columns(
            (pl.col("customers") / pl.col("cohort_size")).alias("retention"),
            (pl.col("revenue") / pl.col("cohort_size")).alias("revenue_per_customer"),
        )
        .select(
            "cohort",
            "period",
            "cohort_size",
            "customers",
            "retention",
            "revenue",
            "revenue_per_customer",
        )
        .sort("cohort", "period")
        .collect()
    )


def cohort_matrix(table: pl.DataFrame, *, value: str = "retention") -> pl.DataFrame:
    """Pivot a :func:`cohorts` table to one row per cohort and one column per period
    (``"0"``, ``"1"``, ...); missing cells are 0 for counts and rates."""
    wide = table.pivot(on="period", index="cohort", values=value, sort_columns=True)
    periods = sorted(int(c) for c in wide.columns if c != "cohort")
    return wide.select("cohort", *[pl.col(str(p)).fill_null(0) for p in periods]).sort("cohort")
