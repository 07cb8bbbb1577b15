"""The shop's KPIs per month and overall, the CLV distribution, and a reading of the shop's
stage with the focus it suggests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import polars as pl

from fidele.analytics.cohorts import customer_months

__all__ = ["clv_distribution", "monthly_kpis", "monthly_rates", "shop_kpis", "shop_stage"]


def monthly_kpis(
    transactions: pl.DataFrame | pl.LazyFrame,
    *,
    observation_end: date | datetime,
    customer_col: str = "customer_id",
    datetime_col: str = "date",
    monetary_col: str = "amount",
) -> pl.DataFrame:
    """KPIs per calendar month (purchases on the same day count once, as in the summary).

    Returns
    -------
    polars.DataFrame
        ``month`` (Date), ``customers`` (active), ``new_customers`` (first purchase that
        month), ``returning_customers``, ``orders``, ``revenue``, ``aov`` (revenue / orders),
        ``purchase_frequency`` (orders / customers), ``retention_rate`` (share of the previous
        month's active customers active again; null for the first month), ``churn_rate``
        (1 - retention) and ``returning_revenue_share`` (revenue not from first purchase days).
    """
    months = customer_months(
        transactions,
        observation_end=observation_end,
        customer_col=customer_col,
        datetime_col=datetime_col,
        monetary_col=monetary_col,
    ).collect()
    previous = months.select(customer_col, pl.col("month").dt.offset_by("1mo"))
    retained = months.join(previous, on=[customer_col, "month"], how="semi")
    kept = retained.group_by("month").agg(pl.len().alias("retained"))
    table = months.group_by("month").agg(
        pl.len().cast(pl.Int64).alias("customers"),
        (pl.col("period") == 0).sum().cast(pl.Int64).alias("new_customers"),
        pl.col("orders").sum(),
        pl.col("revenue").sum(),
        pl.col("first_day_revenue").sum(),
    )
    return monthly_rates(table.join(kept, on="month", how="left"))


def monthly_rates(table: pl.DataFrame) -> pl.DataFrame:
    """The :func:`monthly_kpis` table from its counts per month, however they were counted
    (polars or the database): ``month``, ``customers`` (active), ``new_customers``,
    ``orders``, ``revenue``, ``first_day_revenue`` and ``retained`` (customers also active
    the month before; null or 0 if none)."""
    prev_active = pl.col("customers").shift(1)
    consecutive = pl.col("month").shift(1).dt.offset_by("1mo") == pl.col("month")
    retention = pl.when(consecutive).then(pl.col("retained").fill_null(0) / prev_active)
    return (
        table.sort("month")
        .with_columns(
            (pl.col("customers") - pl.col("new_customers")).alias("returning_customers"),
            (pl.col("revenue") / pl.col("orders")).alias("aov"),
            (pl.col("orders") / pl.col("customers")).alias("purchase_frequency"),
            retention.alias("retention_rate"),
            ((pl.col("revenue") - pl.col("first_day_revenue")) / pl.col("revenue"))
            .fill_nan(0.0)
            .alias("returning_revenue_share"),
        )
        .with_columns((1 - pl.col("retention_rate")).alias("churn_rate"))
        .select(
            "month",
            "customers",
            "new_customers",
            "returning_customers",
            "orders",
            "revenue",
            "aov",
            "purchase_frequency",
            "retention_rate",
            "churn_rate",
            "returning_revenue_share",
        )
    )


def shop_kpis(
    summary: pl.DataFrame,
    monthly: pl.DataFrame,
    *,
    frequency_col: str = "frequency",
    orders_col: str = "n_orders",
    spend_col: str = "total_spend",
    monetary_col: str = "monetary_value",
) -> dict[str, object]:
    """Whole-period KPIs from a per-customer summary and its :func:`monthly_kpis`.

    Returns a dict: ``customers``, ``orders``, ``revenue``, ``aov``, ``purchase_frequency``,
    ``repeat_purchase_rate`` (share of customers with a repeat purchase day),
    ``returning_revenue_share``, ``mean_retention_rate``, ``mean_churn_rate``,
    ``order_regularity`` (1 - coefficient of variation of the last six months' orders,
    floored at 0) and ``stage`` / ``focus`` from :func:`shop_stage`.
    """
    customers = summary.height
    orders = int(summary.get_column(orders_col).sum() or 0)
    revenue = float(summary.get_column(spend_col).sum() or 0)
    repeaters = summary.filter(pl.col(frequency_col) > 0)
    repeat_revenue = float((repeaters[frequency_col] * repeaters[monetary_col]).sum() or 0)
    repeat_rate = repeaters.height / customers if customers else 0.0
    regularity = _regularity(monthly.get_column("orders").tail(6).to_list())
    stage, focus = shop_stage(customers, repeat_rate, regularity)
    return {
        "customers": customers,
        "orders": orders,
        "revenue": revenue,
        "aov": revenue / orders if orders else 0.0,
        "purchase_frequency": orders / customers if customers else 0.0,
        "repeat_purchase_rate": repeat_rate,
        "returning_revenue_share": repeat_revenue / revenue if revenue else 0.0,
        "mean_retention_rate": _mean(monthly.get_column("retention_rate")),
        "mean_churn_rate": _mean(monthly.get_column("churn_rate")),
        "order_regularity": regularity,
        "stage": stage,
        "focus": focus,
    }


def _mean(series: pl.Series) -> float | None:
    value = series.drop_nulls().mean()
    return None if value is None else float(value)  # type: ignore[arg-type]


def _regularity(orders: Sequence[int]) -> float:
    if len(orders) < 2 or sum(orders) == 0:
        return 0.0
    mean = sum(orders) / len(orders)
    var = sum((o - mean) ** 2 for o in orders) / (len(orders) - 1)
    return max(0.0, 1.0 - var**0.5 / mean)


def shop_stage(customers: int, repeat_rate: float, regularity: float) -> tuple[str, str]:
    """Read the shop's stage and the focus it suggests.

    - ``just opened`` (< 50 customers): acquisition;
    - ``starting`` (< 500 customers, or repeat rate < 10%): acquisition;
    - ``growing`` (repeat rate < 25%, or orders irregular month to month, regularity < 0.6):
      acquisition and retention;
    - ``established``: retention.
    """
    if customers < 50:
        return "just opened", "acquisition"
    if customers < 500 or repeat_rate < 0.10:
        return "starting", "acquisition"
    if repeat_rate < 0.25 or regularity < 0.6:
        return "growing", "acquisition and retention"
    return "established", "retention"


def clv_distribution(
    scores: pl.DataFrame,
    *,
    clv_col: str = "clv",
    quantiles: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99),
) -> pl.DataFrame:
    """Quantiles, mean and total of CLV.

    Returns
    -------
    polars.DataFrame
        ``statistic`` (``"mean"``, ``"total"``, ``"q10"``...) and ``value``.
    """
    col = scores.get_column(clv_col)
    rows = [("mean", float(col.mean() or 0)), ("total", float(col.sum() or 0))]  # type: ignore[arg-type]
    rows += [(f"q{round(q * 100)}", float(col.quantile(q) or 0)) for q in quantiles]
    return pl.DataFrame(rows, schema=["statistic", "value"], orient="row")
