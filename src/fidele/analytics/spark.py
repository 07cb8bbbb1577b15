"""The per-customer summary on Spark, where a large shop's orders live: the same columns and
conventions as :func:`fidele.analytics.summary.summary` (same-day purchases merged, days or
weeks = days / 7, ``monetary_value`` the mean of repeat days' values, observation end
explicit and inclusive).

pyspark is imported lazily (it is not a runtime dependency of fidele): pass a Spark DataFrame
in, get a Spark DataFrame out, and ``.toPandas()``/``.collect()`` the (small) result, or fit
the models on it after :func:`to_polars`.

Days are counted from the epoch on the UTC instant (``unix_micros`` floored to whole days, or
``unix_date`` for a DateType column), so the session time zone plays no part. Every figure is
computed from integers the way the polars summary computes it, so both agree exactly.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from fidele.analytics.summary import TimeUnit, as_day, unit_days

if TYPE_CHECKING:  # pragma: no cover - typing only
    import polars as pl
    from pyspark.sql import Column, DataFrame

__all__ = ["spark_daily_purchases", "spark_summary", "to_polars"]

_US_PER_DAY = 86_400_000_000
_EPOCH = date(1970, 1, 1)


def _day_number(F: Any, frame: DataFrame, datetime_col: str) -> Column:
    from pyspark.sql.types import DateType

    col = F.col(datetime_col)
    if isinstance(frame.schema[datetime_col].dataType, DateType):
        return F.unix_date(col)
    return F.floor(F.unix_micros(col) / F.lit(_US_PER_DAY)).cast("long")


def spark_daily_purchases(
    transactions: DataFrame,
    *,
    customer_col: str = "customer_id",
    datetime_col: str = "date",
    monetary_col: str | None = "amount",
    observation_end: date | datetime,
) -> DataFrame:
    """Stage one: ``customer_col``, ``day`` (days since 1970-01-01, long), ``orders`` and
    ``amount`` (the day's summed ``monetary_col``; 0 if None) up to ``observation_end``."""
    from pyspark.sql import functions as F

    end = (as_day(observation_end) - _EPOCH).days
    # sum keeps integers as long (minor units) and decimals/doubles as they are
    value = F.sum(monetary_col) if monetary_col else F.sum(F.lit(0).cast("long"))
    keep = [F.col(monetary_col)] if monetary_col else []
    day = _day_number(F, transactions, datetime_col).alias("day")
    return (
        transactions.select(F.col(customer_col), day, *keep)
        .filter(F.col("day") <= end)
        .groupBy(customer_col, "day")
        .agg(F.count(F.lit(1)).alias("orders"), value.alias("amount"))
    )


def spark_summary(
    transactions: DataFrame,
    *,
    customer_col: str = "customer_id",
    datetime_col: str = "date",
    monetary_col: str | None = "amount",
    observation_end: date | datetime,
    time_unit: TimeUnit = "days",
    interpurchase: bool = True,
) -> DataFrame:
    """Summarise each customer's purchases up to ``observation_end``, on Spark.

    Parameters and conventions are those of :func:`fidele.analytics.summary.summary`;
    ``datetime_col`` is a TimestampType (an instant, read in UTC) or a DateType column.

    Returns
    -------
    pyspark.sql.DataFrame
        ``customer_col``, ``first_purchase`` and ``last_purchase`` (date), ``n_orders``,
        ``frequency`` (long), ``recency``, ``T``, ``monetary_value`` (double),
        ``total_spend`` (long for integer amounts) and, with ``interpurchase``,
        ``ipt_mean`` and ``ipt_std`` (double, null below 1 and 2 gaps). Sorted by customer.
    """
    from pyspark.sql import functions as F

    if time_unit == "calendar_weeks":
        raise ValueError("the Spark summary counts days or weeks of 7 days, not calendar weeks")
    per = unit_days(time_unit)
    days = spark_daily_purchases(
        transactions,
        customer_col=customer_col,
        datetime_col=datetime_col,
        monetary_col=monetary_col,
        observation_end=observation_end,
    )
    end = (as_day(observation_end) - _EPOCH).days
    out = days.groupBy(customer_col).agg(
        F.min("day").alias("first"),
        F.max("day").alias("last"),
        F.sum("orders").cast("long").alias("n_orders"),
        (F.count(F.lit(1)) - 1).cast("long").alias("frequency"),
        F.sum("amount").alias("total_spend"),
        F.min(F.struct("day", "amount")).getField("amount").alias("first_amount"),
    )
    repeat_value = (F.col("total_spend") - F.col("first_amount")) / F.col("frequency")
    cols = [
        F.col(customer_col),
        F.date_from_unix_date("first").alias("first_purchase"),
        F.date_from_unix_date("last").alias("last_purchase"),
        F.col("n_orders"),
        F.col("frequency"),
        ((F.col("last") - F.col("first")) / F.lit(per)).alias("recency"),
        ((F.lit(end) - F.col("first")) / F.lit(per)).alias("T"),
        F.when(F.col("frequency") > 0, repeat_value).otherwise(F.lit(0.0)).alias("monetary_value"),
        F.col("total_spend"),
    ]
    if interpurchase:
        out = out.join(_spark_gaps(F, days, customer_col, per), on=customer_col, how="left")
        cols += [F.col("ipt_mean"), F.col("ipt_std")]
    return out.select(*cols).orderBy(customer_col)


def _spark_gaps(F: Any, days: DataFrame, customer_col: str, per: float) -> DataFrame:
    """Mean and sample standard deviation of the gaps between purchase days, from the exact
    integer sums of the gaps in days and of their squares (as the polars summary does)."""
    from pyspark.sql import Window

    previous = F.lag("day").over(Window.partitionBy(customer_col).orderBy("day"))
    gaps = days.select(customer_col, (F.col("day") - previous).alias("gap")).filter(
        F.col("gap").isNotNull()
    )
    stats = gaps.groupBy(customer_col).agg(
        F.count(F.lit(1)).alias("n"),
        F.sum("gap").alias("s1"),
        F.sum(F.col("gap") * F.col("gap")).alias("s2"),
    )
    n, s1, s2 = F.col("n"), F.col("s1"), F.col("s2")
    var = (n * s2 - s1 * s1) / (n * (n - 1))
    return stats.select(
        customer_col,
        ((s1 / n) / F.lit(per)).alias("ipt_mean"),
        F.when(n > 1, F.sqrt(var) / F.lit(per)).alias("ipt_std"),
    )


def to_polars(frame: DataFrame) -> pl.DataFrame:
    """Collect a (small) Spark DataFrame into polars, column types kept (no pandas needed)."""
    import polars as pl

    rows = [tuple(row) for row in frame.collect()]
    return pl.DataFrame(rows, schema=frame.columns, orient="row", infer_schema_length=None)
