from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from fidele.analytics.summary import calibration_and_holdout, daily_purchases, summary

from .conftest import read_golden

OBS = date(2024, 1, 20)


def test_summary_matches_hand_computed_golden(small_orders):
    got = summary(small_orders, observation_end=OBS)
    want = read_golden("summary_small_days.csv")
    assert_frame_equal(got, want, check_dtypes=False)


def test_weeks_are_days_over_seven(small_orders):
    days = summary(small_orders, observation_end=OBS)
    weeks = summary(small_orders, observation_end=OBS, time_unit="weeks")
    for col in ("recency", "T", "ipt_mean"):
        assert_frame_equal(
            weeks.select(pl.col(col) * 7), days.select(pl.col(col)), check_dtypes=False
        )


def test_column_names_are_parameters(small_orders):
    renamed = small_orders.rename({"customer_id": "who", "date": "at", "amount": "net"})
    got = summary(
        renamed, customer_col="who", datetime_col="at", monetary_col="net", observation_end=OBS
    )
    want = summary(small_orders, observation_end=OBS)
    assert got["who"].to_list() == want["customer_id"].to_list()
    assert got["monetary_value"].to_list() == want["monetary_value"].to_list()


def test_observation_end_cuts_later_transactions(small_orders):
    later = summary(small_orders, observation_end=date(2024, 2, 1))
    row = later.filter(pl.col("customer_id") == "A").row(0, named=True)
    assert row["frequency"] == 3
    assert row["total_spend"] == 1239
    before_c = summary(small_orders, observation_end=date(2024, 1, 19))
    assert "C" not in before_c["customer_id"].to_list()


def test_calibration_and_holdout_by_hand(small_orders):
    split = calibration_and_holdout(
        small_orders, calibration_end=date(2024, 1, 8), observation_end=OBS
    )
    assert split["customer_id"].to_list() == ["A"]
    row = split.row(0, named=True)
    assert row == {
        "customer_id": "A",
        "frequency_cal": 1,
        "recency_cal": 4.0,
        "T_cal": 7.0,
        "monetary_value_cal": 30.0,
        "frequency_holdout": 1,
        "monetary_value_holdout": 60.0,
        "duration_holdout": 12.0,
    }


def test_calibration_end_must_precede_observation_end(small_orders):
    with pytest.raises(ValueError, match="calibration_end"):
        calibration_and_holdout(small_orders, calibration_end=OBS, observation_end=OBS)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 60), st.integers(0, 500)),
        min_size=1,
        max_size=40,
    )
)
def test_summary_invariants(rows):
    frame = pl.DataFrame(
        {
            "customer_id": [f"k{c}" for c, _, _ in rows],
            "date": [date(2024, 1, 1) + timedelta(days=d) for _, d, _ in rows],
            "amount": [a for _, _, a in rows],
        }
    )
    out = summary(frame, observation_end=date(2024, 3, 31))
    assert (out["recency"] <= out["T"]).all()
    assert (out["frequency"] < out["n_orders"] + 1).all()
    assert out["total_spend"].sum() == sum(a for _, _, a in rows)
    assert (out["frequency"] <= out["recency"]).all()
    assert out.height == len({c for c, _, _ in rows})


def _reference_summary(frame: pl.DataFrame, end: date) -> pl.DataFrame:
    """The summary the plain way: hash group-bys by (customer, day) then customer, gaps from a
    sort (what summary computed before its run-length kernel)."""
    days = daily_purchases(frame, observation_end=end).collect().sort("customer_id", "day")
    gaps = days.with_columns(pl.col("day").diff().over("customer_id").dt.total_days().alias("gap"))
    return (
        gaps.group_by("customer_id")
        .agg(
            pl.col("orders").sum().alias("n_orders"),
            (pl.len() - 1).alias("frequency"),
            ((pl.col("day").max() - pl.col("day").min()).dt.total_days()).alias("recency"),
            ((pl.lit(end) - pl.col("day").min()).dt.total_days()).alias("T"),
            pl.col("amount").sum().alias("total_spend"),
            pl.col("amount").slice(1).mean().fill_null(0.0).alias("monetary_value"),
            pl.col("gap").mean().alias("ipt_mean"),
            pl.col("gap").std().alias("ipt_std"),
        )
        .sort("customer_id")
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 90 * 24), st.integers(0, 500)),
        min_size=1,
        max_size=60,
    )
)
def test_summary_equals_plain_group_by_on_unsorted_rows(rows):
    """Rows in any order, several orders a day, instants near midnight, orders after the end."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "customer_id": [f"k{c}" for c, _, _ in rows],
            "date": [start + timedelta(hours=h) for _, h, _ in rows],
            "amount": [a for _, _, a in rows],
        }
    )
    end = date(2024, 3, 1)
    if frame.filter(pl.col("date").dt.date() <= end).is_empty():
        return
    got = summary(frame, observation_end=end).drop("first_purchase", "last_purchase")
    want = _reference_summary(frame, end)
    assert_frame_equal(got, want, check_dtypes=False, check_column_order=False)


def test_calendar_weeks_match_lifetimes_freq_w():
    """``calendar_weeks`` merges purchases per calendar week and counts whole weeks: the golden
    file is lifetimes' ``summary_data_from_transaction_data(freq="W")`` on the same orders."""
    orders = read_golden("orders_calendar_weeks.csv")
    got = summary(
        orders, observation_end=date(2025, 12, 30), time_unit="calendar_weeks", interpurchase=False
    )
    want = read_golden("summary_calendar_weeks_lifetimes.csv")
    cols = ["customer_id", "frequency", "recency", "T", "monetary_value"]
    assert_frame_equal(got.select(cols), want.select(cols), check_dtypes=False)
    # days / 7 (the default "weeks") counts differently: that is the documented difference
    weeks = summary(orders, observation_end=date(2025, 12, 30), time_unit="weeks")
    assert not weeks.select(cols).equals(got.select(cols))


def test_calendar_weeks_calibration_matches_lifetimes():
    """The split is on the days (a Tuesday after a Monday calibration end is holdout), then
    weeks are counted, as lifetimes' ``calibration_and_holdout_data(freq="W")`` does.
    (lifetimes' holdout monetary value is the mean of single transactions; ours stays the mean
    of the purchase periods, as for days.)"""
    orders = read_golden("orders_calendar_weeks.csv")
    got = calibration_and_holdout(
        orders,
        calibration_end=date(2025, 6, 30),
        observation_end=date(2025, 12, 30),
        time_unit="calendar_weeks",
    )
    want = read_golden("calibration_calendar_weeks_lifetimes.csv")
    cols = [
        "customer_id",
        "frequency_cal",
        "recency_cal",
        "T_cal",
        "monetary_value_cal",
        "frequency_holdout",
        "duration_holdout",
    ]
    assert_frame_equal(
        got.select(cols).sort("customer_id"),
        want.select(cols).sort("customer_id"),
        check_dtypes=False,
    )


def test_calendar_weeks_ignore_the_rest_of_the_last_week():
    """A purchase after the observation end but in its calendar week is not counted."""
    orders = pl.DataFrame(
        {
            "customer_id": ["a", "a", "a"],
            "date": [date(2024, 1, 1), date(2024, 1, 3), date(2024, 1, 18)],  # Mon, Wed, Thu
            "amount": [10, 20, 30],
        }
    )
    got = summary(orders, observation_end=date(2024, 1, 16), time_unit="calendar_weeks")
    row = got.row(0, named=True)
    assert (row["frequency"], row["recency"], row["T"], row["total_spend"]) == (0, 0.0, 2.0, 30)


@pytest.mark.parametrize("order", ["date", "shuffled"])
@pytest.mark.parametrize("ids", ["string", "integer"])
def test_row_order_and_id_type_do_not_change_the_summary(order, ids):
    """Exports come in time order (or any order), with string or integer ids: the same
    summary as on rows sorted by customer."""
    from fidele.analytics.generate import simulate_bgnbd_gg

    shop = simulate_bgnbd_gg(2000, start=date(2024, 1, 1), days=730, seed=4)
    if ids == "integer":
        shop = shop.with_columns(pl.col("customer_id").str.slice(1).cast(pl.Int64))
    end = date(2025, 12, 30)
    want = summary(shop.sort("customer_id", "date"), observation_end=end)
    rows = shop.sort("date") if order == "date" else shop.sample(fraction=1.0, shuffle=True, seed=3)
    assert_frame_equal(summary(rows, observation_end=end), want)
    assert_frame_equal(
        summary(rows.lazy(), observation_end=end, time_unit="weeks"),
        summary(shop, observation_end=end, time_unit="weeks"),
    )
