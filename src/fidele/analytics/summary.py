"""Per-customer summary from transactions: frequency, recency, T and spend, as lifetimes counts
them at day resolution, plus the calibration/holdout split used to check models.

Conventions (those of lifetimes' ``summary_data_from_transaction_data(freq="D")`` and of the
published BG/NBD results):

- time is cut at the **day** (UTC): purchases on the same day are one purchase whose value is
  the sum of that day's amounts;
- ``frequency`` is the number of purchase days after the first (repeat purchases);
- ``recency`` is days from the first to the last purchase day, ``T`` days from the first
  purchase day to the observation end; in weeks they are days / 7;
- transactions after ``observation_end`` (a day, inclusive) are ignored;
- ``monetary_value`` is the mean value of the repeat purchase days (0 without repeats).

The aggregation runs in two stages (customer-day, then customer), which measured twice as fast
as a single pass with ``n_unique``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import polars as pl

__all__ = [
    "TimeUnit",
    "as_day",
    "calibration_and_holdout",
    "daily_purchases",
    "purchase_gaps",
    "summary",
]

TimeUnit = Literal["days", "weeks"]
_UNIT_DAYS = {"days": 1.0, "weeks": 7.0}


def as_day(value: date | datetime) -> date:
    """The UTC day of a date or an aware datetime (naive datetimes are read as UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            from datetime import UTC

            value = value.astimezone(UTC)
        return value.date()
    return value


def unit_days(time_unit: TimeUnit) -> float:
    """Days per time unit (``"days"`` 1, ``"weeks"`` 7)."""
    if time_unit not in _UNIT_DAYS:
        raise ValueError(f"time_unit must be 'days' or 'weeks', not {time_unit!r}")
    return _UNIT_DAYS[time_unit]


def _day_expr(datetime_col: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(datetime_col)
    if isinstance(dtype, pl.Datetime) and dtype.time_zone not in (None, "UTC"):
        col = col.dt.convert_time_zone("UTC")
    return col if dtype == pl.Date else col.dt.date()


def daily_purchases(
    transactions: pl.DataFrame | pl.LazyFrame,
    *,
    customer_col: str = "customer_id",
    datetime_col: str = "date",
    monetary_col: str | None = "amount",
    observation_end: date | datetime,
) -> pl.LazyFrame:
    """Stage one: one row per customer and purchase day up to ``observation_end`` (inclusive).

    Returns
    -------
    polars.LazyFrame
        ``customer_col``, ``day`` (Date), ``orders`` (UInt32, transactions that day) and
        ``amount`` (the day's summed ``monetary_col``; 0 if ``monetary_col`` is None).
    """
    lf = transactions.lazy()
    dtype = lf.collect_schema()[datetime_col]
    end = as_day(observation_end)
    value = pl.col(monetary_col).sum() if monetary_col else pl.lit(0, pl.Int64)
    return (
        lf.with_columns(_day_expr(datetime_col, dtype).alias("__day"))
        .filter(pl.col("__day") <= end)
        .group_by(customer_col, "__day")
        .agg(pl.len().alias("orders"), value.alias("amount"))
        .rename({"__day": "day"})
    )


def summary(
    transactions: pl.DataFrame | pl.LazyFrame,
    *,
    customer_col: str = "customer_id",
    datetime_col: str = "date",
    monetary_col: str | None = "amount",
    observation_end: date | datetime,
    time_unit: TimeUnit = "days",
    interpurchase: bool = True,
) -> pl.DataFrame:
    """Summarise each customer's purchases up to ``observation_end``.

    Parameters
    ----------
    transactions
        One row per order (amounts already net of refunds, cancelled orders removed).
    customer_col, datetime_col, monetary_col
        Column names; ``datetime_col`` is a Date or a Datetime (read in UTC).
    observation_end
        Last day observed (inclusive); later transactions are ignored.
    time_unit
        ``"days"`` or ``"weeks"`` (days / 7) for ``recency``, ``T`` and the gaps.
    interpurchase
        Also compute the mean and standard deviation of the gaps between purchase days
        (needs a sort; the models do not use them).

    Returns
    -------
    polars.DataFrame
        ``customer_col``, ``first_purchase`` and ``last_purchase`` (Date), ``n_orders``
        (transactions), ``frequency`` (repeat purchase days), ``recency``, ``T``,
        ``monetary_value`` (mean repeat day value, 0 without repeats), ``total_spend``
        and, with ``interpurchase``, ``ipt_mean`` and ``ipt_std`` (null below 1 and 2 gaps).
        Sorted by customer.
    """
    per = unit_days(time_unit)
    days = daily_purchases(
        transactions,
        customer_col=customer_col,
        datetime_col=datetime_col,
        monetary_col=monetary_col,
        observation_end=observation_end,
    )
    end = as_day(observation_end)
    out = days.group_by(customer_col).agg(
        pl.col("day").min().alias("first_purchase"),
        pl.col("day").max().alias("last_purchase"),
        pl.col("orders").sum().cast(pl.Int64).alias("n_orders"),
        (pl.len() - 1).cast(pl.Int64).alias("frequency"),
        pl.col("amount").sum().alias("total_spend"),
        pl.col("amount").sort_by("day").first().alias("__first_amount"),
    )
    out = out.with_columns(*_time_columns(end)).with_columns(
        pl.when(pl.col("frequency") > 0)
        .then((pl.col("total_spend") - pl.col("__first_amount")) / pl.col("frequency"))
        .otherwise(0.0)
        .alias("monetary_value")
    )
    if interpurchase:
        out = out.join(_gaps(days, customer_col), on=customer_col, how="left")
    cols = [customer_col, "first_purchase", "last_purchase", "n_orders", "frequency"]
    cols += ["recency", "T", "monetary_value", "total_spend"]
    timed = ["recency", "T"] + (["ipt_mean", "ipt_std"] if interpurchase else [])
    cols += timed[2:]
    return _in_units(out.select(cols).sort(customer_col).collect(), timed, per)


def _in_units(frame: pl.DataFrame, columns: list[str], per: float) -> pl.DataFrame:
    """``columns`` (in days) divided by ``per`` days, correctly rounded. polars divides by a
    scalar as a multiplication by its reciprocal (off by one ulp for 146 of the first 400
    integers over 7); numpy divides, as lifetimes (pandas) and Spark do."""
    if per == 1.0:
        return frame.with_columns(pl.col(columns).cast(pl.Float64))
    return frame.with_columns(
        pl.Series(c, frame.get_column(c).cast(pl.Float64).to_numpy() / per, nan_to_null=True)
        for c in columns
    )


def _time_columns(end: date) -> list[pl.Expr]:
    span = pl.col("last_purchase") - pl.col("first_purchase")
    age = pl.lit(end) - pl.col("first_purchase")
    return [span.dt.total_days().alias("recency"), age.dt.total_days().alias("T")]


def purchase_gaps(days: pl.LazyFrame, customer_col: str, per: float = 1.0) -> pl.LazyFrame:
    """Stage-one rows sorted by customer and day with ``gap``: time since the customer's
    previous purchase day in units of ``per`` days (null on the first)."""
    same = pl.col(customer_col) == pl.col(customer_col).shift(1)
    gap = pl.when(same).then(pl.col("day").diff().dt.total_days() / per)
    return days.select(customer_col, "day").sort(customer_col, "day").with_columns(gap.alias("gap"))


def _gaps(days: pl.LazyFrame, customer_col: str) -> pl.LazyFrame:
    """Mean and sample standard deviation of the gaps, from the exact integer sums of the gaps
    in days and of their squares: no floating accumulation error, and the same arithmetic as
    the Spark summary, so both agree to the last bit. In days."""
    gap = pl.col("gap").cast(pl.Int64)
    stats = (
        purchase_gaps(days, customer_col)
        .group_by(customer_col)
        .agg(
            gap.count().cast(pl.Int64).alias("n"),
            gap.sum().alias("s1"),
            (gap * gap).sum().alias("s2"),
        )
    )
    n, s1, s2 = pl.col("n"), pl.col("s1"), pl.col("s2")
    var = (n * s2 - s1 * s1) / (n * (n - 1))
    return stats.select(
        customer_col,
        pl.when(n > 0).then(s1 / n).alias("ipt_mean"),
        pl.when(n > 1).then(var.sqrt()).alias("ipt_std"),
    )


def calibration_and_holdout(
    transactions: pl.DataFrame | pl.LazyFrame,
    *,
    customer_col: str = "customer_id",
    datetime_col: str = "date",
    monetary_col: str | None = "amount",
    calibration_end: date | datetime,
    observation_end: date | datetime,
    time_unit: TimeUnit = "days",
) -> pl.DataFrame:
    """Split into a calibration period (up to ``calibration_end``, inclusive) and a holdout
    period (after it, up to ``observation_end``), for customers who bought in calibration.

    Returns
    -------
    polars.DataFrame
        ``customer_col``, ``frequency_cal``, ``recency_cal``, ``T_cal``,
        ``monetary_value_cal``, ``frequency_holdout`` (purchase days in the holdout),
        ``monetary_value_holdout`` (their mean value, 0 if none) and ``duration_holdout``
        (holdout length in ``time_unit``), as lifetimes' ``calibration_and_holdout_data``.
    """
    cal_end, obs_end = as_day(calibration_end), as_day(observation_end)
    if cal_end >= obs_end:
        raise ValueError("calibration_end must be before observation_end")
    names = dict(customer_col=customer_col, datetime_col=datetime_col, monetary_col=monetary_col)
    cal = summary(
        transactions, **names, observation_end=cal_end, time_unit=time_unit, interpurchase=False
    )
    days = daily_purchases(transactions, **names, observation_end=obs_end)
    hold = (
        days.filter(pl.col("day") > cal_end)
        .group_by(customer_col)
        .agg(
            pl.len().cast(pl.Int64).alias("frequency_holdout"),
            pl.col("amount").mean().cast(pl.Float64).alias("monetary_value_holdout"),
        )
        .collect()
    )
    duration = (obs_end - cal_end).days / unit_days(time_unit)
    return (
        cal.select(
            customer_col,
            pl.col("frequency").alias("frequency_cal"),
            pl.col("recency").alias("recency_cal"),
            pl.col("T").alias("T_cal"),
            pl.col("monetary_value").alias("monetary_value_cal"),
        )
        .join(hold, on=customer_col, how="left")
        .with_columns(
            pl.col("frequency_holdout").fill_null(0),
            pl.col("monetary_value_holdout").fill_null(0.0),
            pl.lit(duration).alias("duration_holdout"),
        )
    )
