from datetime import UTC, date, datetime, timedelta

import polars as pl

from fidele.analytics.generate import simulate_bgnbd_gg

START = date(2024, 1, 1)


def test_same_seed_same_frame_other_seed_other_frame():
    one = simulate_bgnbd_gg(500, start=START, seed=7)
    assert one.equals(simulate_bgnbd_gg(500, start=START, seed=7))
    assert not one.equals(simulate_bgnbd_gg(500, start=START, seed=8))


def test_schema_and_ids():
    frame = simulate_bgnbd_gg(300, start=START, seed=1)
    assert frame.schema == pl.Schema(
        {"customer_id": pl.Utf8, "date": pl.Datetime("us", "UTC"), "amount": pl.Int64}
    )
    assert frame["customer_id"].n_unique() == 300
    assert frame["customer_id"].min() == "c0000001"
    assert frame["customer_id"].max() == "c0000300"


def test_births_in_first_half_purchases_inside_period():
    frame = simulate_bgnbd_gg(2000, start=START, days=400, seed=2)
    origin = datetime(2024, 1, 1, tzinfo=UTC)
    firsts = frame.group_by("customer_id").agg(pl.col("date").min())["date"]
    assert firsts.min() >= origin
    assert firsts.max() < origin + timedelta(days=200)
    assert frame["date"].max() < origin + timedelta(days=400)
    assert frame["amount"].min() >= 1


def test_mean_spend_matches_gamma_gamma_mean():
    frame = simulate_bgnbd_gg(20_000, start=START, seed=3, p=6.0, q=4.0, v=15.0)
    expected = 6.0 * 15.0 / (4.0 - 1.0) * 100  # E[z] = p v / (q - 1), in cents
    assert abs(frame["amount"].mean() / expected - 1) < 0.05


def test_cap_limits_heavy_buyers():
    capped = simulate_bgnbd_gg(5000, start=START, seed=4, a=0.01, b=100.0, mean_orders_cap=2)
    free = simulate_bgnbd_gg(5000, start=START, seed=4, a=0.01, b=100.0)
    per = capped.group_by("customer_id").len()["len"]
    assert per.max() < free.group_by("customer_id").len()["len"].max()
    assert per.mean() < 1 + 2 + 0.2


def test_acquisition_window_is_a_parameter():
    frame = simulate_bgnbd_gg(2000, start=START, days=400, acquisition_days=50, seed=2)
    origin = datetime(2024, 1, 1, tzinfo=UTC)
    firsts = frame.group_by("customer_id").agg(pl.col("date").min())["date"]
    assert firsts.max() < origin + timedelta(days=50) < firsts.max() + timedelta(days=2)
    assert frame["date"].max() < origin + timedelta(days=400)
