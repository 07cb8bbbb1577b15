"""The summary on Spark (PySpark in local mode, loopback only) equals the polars summary."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from fidele.analytics.generate import simulate_bgnbd_gg
from fidele.analytics.spark import spark_summary, to_polars
from fidele.analytics.summary import summary

from .conftest import read_orders

pytestmark = pytest.mark.slow

OBS = date(2024, 9, 30)  # before the generated period's end: later orders must be ignored


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARK_LOCAL_IP", "127.0.0.1")
        # Spark's Python workers must be this interpreter (the venv with pyspark), not the
        # first python3 on PATH.
        mp.setenv("PYSPARK_PYTHON", sys.executable)
        mp.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
        mp.setenv("SPARK_LOCAL_HOSTNAME", "localhost")
        session = (
            SparkSession.builder.master("local[2]")
            .appName("fidele-tests")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            # days are taken on the UTC instant: a non-UTC session zone must not matter
            .config("spark.sql.session.timeZone", "America/New_York")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        yield session
        session.stop()


@pytest.fixture(scope="module")
def orders() -> pl.DataFrame:
    """Generated orders, plus same-day repeats and orders minutes either side of midnight UTC
    (the day cut), with a 10-digit amount to catch any float accumulation."""
    frame = simulate_bgnbd_gg(1_500, start=date(2024, 1, 1), days=365, seed=5)
    extra = pl.DataFrame(
        {
            "customer_id": ["c0000001", "c0000001", "c0000002", "c0000002", "c0000003"],
            "date": [
                datetime(2024, 3, 1, 23, 59, tzinfo=UTC),
                datetime(2024, 3, 2, 0, 1, tzinfo=UTC),
                datetime(2024, 9, 30, 23, 59, 59, tzinfo=UTC),
                datetime(2024, 10, 1, tzinfo=UTC),
                datetime(2024, 5, 5, 4, tzinfo=UTC),
            ],
            "amount": [1, 2, 3, 4, 9_876_543_210],
        },
        schema=frame.schema,
    )
    dupes = frame.gather_every(7).with_columns(pl.col("date") + timedelta(minutes=1))
    return pl.concat([frame, extra, dupes]).sort("customer_id", "date")


def _spark_frame(spark, frame: pl.DataFrame):  # type: ignore[no-untyped-def]
    from pyspark.sql.types import LongType, StringType, StructField, StructType, TimestampType

    schema = StructType(
        [
            StructField("customer_id", StringType(), False),
            StructField("date", TimestampType(), False),
            StructField("amount", LongType(), False),
        ]
    )
    return spark.createDataFrame(frame.rows(), schema=schema)


@pytest.mark.parametrize("time_unit", ["days", "weeks"])
def test_spark_summary_equals_polars(spark, orders, time_unit):
    want = summary(orders, observation_end=OBS, time_unit=time_unit)
    got = to_polars(
        spark_summary(_spark_frame(spark, orders), observation_end=OBS, time_unit=time_unit)
    )
    assert got.height == want.height > 1_000
    assert want["frequency"].max() > 3 and want["ipt_std"].null_count() < want.height
    assert_frame_equal(got, want, check_dtypes=False, check_exact=True)


def test_spark_summary_on_dates_without_amounts(spark):
    small = read_orders("orders_small.csv").with_columns(pl.col("date").dt.date())
    want = summary(small, monetary_col=None, observation_end=date(2024, 1, 20))
    frame = spark.createDataFrame(
        small.select("customer_id", "date").rows(), ["customer_id", "date"]
    )
    got = to_polars(spark_summary(frame, monetary_col=None, observation_end=date(2024, 1, 20)))
    assert_frame_equal(got, want, check_dtypes=False, check_exact=True)
