"""RFM, cohorts, KPIs, cadence and engagement on small hand-computed cases."""

from datetime import UTC, date, datetime, timedelta
from itertools import product

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from fidele.analytics.cadence import cadence
from fidele.analytics.cohorts import cohort_matrix, cohorts
from fidele.analytics.engagement import engagement, status_for
from fidele.analytics.kpis import clv_distribution, monthly_kpis, shop_kpis, shop_stage
from fidele.analytics.rfm import (
    DEFAULT_SEGMENTS,
    Segment,
    assign_segments,
    quantile_scores,
    rfm,
    segment_summary,
)
from fidele.analytics.summary import summary

from .conftest import read_golden, read_orders

MARCH_END = date(2024, 3, 31)


def test_quantile_scores_distinct_values_and_ties():
    frame = pl.DataFrame({"v": [50, 10, 40, 20, 30], "t": [1, 1, 1, 2, 3]})
    out = quantile_scores(frame, {"s": ("v", True), "st": ("t", True), "low": ("v", False)})
    assert out["s"].to_list() == [5, 1, 4, 2, 3]
    assert out["low"].to_list() == [1, 5, 2, 4, 3]
    assert out["st"].to_list() == [1, 1, 1, 4, 5]  # ties share the lowest rank's score


def test_quantile_scores_do_not_depend_on_row_order():
    frame = pl.DataFrame({"k": list(range(20)), "v": [i % 7 for i in range(20)]})
    one = quantile_scores(frame, {"s": ("v", True)}).sort("k")
    two = quantile_scores(frame.reverse(), {"s": ("v", True)}).sort("k")
    assert_frame_equal(one, two)


def test_default_segments_partition_every_score_combination():
    combos = pl.DataFrame(
        list(product(range(1, 6), repeat=3)),
        schema=["r_score", "f_score", "m_score"],
        orient="row",
    )
    named = assign_segments(combos)
    assert "Other" not in named["segment"].to_list()
    assert set(named["segment"]) == {s.name for s in DEFAULT_SEGMENTS}


def test_rfm_by_hand():
    frame = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "last_purchase": [date(2024, 3, d) for d in (30, 1, 20, 10, 25)],
            "n_orders": [9, 1, 4, 2, 6],
            "total_spend": [900, 10, 300, 50, 500],
        }
    )
    out = rfm(frame, observation_end=MARCH_END)
    assert out["recency_days"].to_list() == [1, 30, 11, 21, 6]
    assert out["rfm"].to_list() == ["555", "111", "333", "222", "444"]
    assert out["segment"].to_list() == [
        "Champions",
        "Lost",
        "Need attention",
        "Hibernating",
        "Champions",
    ]
    custom = (Segment("Big spenders", {"m_score": (4, 5)}),)
    mine = rfm(frame, observation_end=MARCH_END, segments=custom)
    assert mine["segment"].to_list() == ["Big spenders", "Other", "Other", "Other", "Big spenders"]
    table = segment_summary(out)
    champions = table.filter(pl.col("segment") == "Champions").row(0, named=True)
    assert champions["customers"] == 2
    assert champions["revenue"] == 1400
    assert champions["revenue_share"] == pytest.approx(1400 / 1760)


def test_cohorts_by_hand():
    orders = read_orders("orders_cohorts.csv")
    got = cohorts(orders, observation_end=MARCH_END)
    assert_frame_equal(got, read_golden("cohorts_expected.csv"), check_dtypes=False)
    matrix = cohort_matrix(got)
    assert matrix.columns == ["cohort", "0", "1", "2"]
    assert matrix.row(0) == (date(2024, 1, 1), 1.0, 0.5, 1.0)


def test_monthly_kpis_by_hand():
    orders = read_orders("orders_cohorts.csv")
    got = monthly_kpis(orders, observation_end=MARCH_END)
    assert_frame_equal(got, read_golden("monthly_kpis_expected.csv"), check_dtypes=False)


def test_shop_kpis_by_hand():
    orders = read_orders("orders_cohorts.csv")
    summ = summary(orders, observation_end=MARCH_END)
    kpis = shop_kpis(summ, monthly_kpis(orders, observation_end=MARCH_END))
    assert kpis["customers"] == 4
    assert kpis["orders"] == 8
    assert kpis["revenue"] == 510
    assert kpis["repeat_purchase_rate"] == 0.75  # A, B, C bought on two days or more
    assert kpis["returning_revenue_share"] == pytest.approx((80 + 20 + 40) / 510)
    assert kpis["stage"] == "just opened"


@pytest.mark.parametrize(
    ("customers", "repeat", "regularity", "stage"),
    [
        (10, 0.9, 1.0, "just opened"),
        (300, 0.5, 1.0, "starting"),
        (5000, 0.05, 1.0, "starting"),
        (5000, 0.2, 1.0, "growing"),
        (5000, 0.4, 0.3, "growing"),
        (5000, 0.4, 0.9, "established"),
    ],
)
def test_shop_stage(customers, repeat, regularity, stage):
    assert shop_stage(customers, repeat, regularity)[0] == stage


def test_cadence_by_hand():
    day0 = datetime(2024, 1, 1, 12, tzinfo=UTC)
    rows = [("A", 0), ("A", 10), ("A", 30), ("B", 0), ("B", 40), ("C", 0)]
    frame = pl.DataFrame(
        {"customer_id": [c for c, _ in rows], "date": [day0 + timedelta(days=d) for _, d in rows]}
    )
    out = cadence(frame, observation_end=date(2024, 2, 20))  # day 50
    by = {r["customer_id"]: r for r in out.iter_rows(named=True)}
    assert by["A"]["median_gap"] == 15
    assert by["A"]["expected_gap"] == pytest.approx((2 * 15 + 2 * 20) / 4)
    assert by["B"]["expected_gap"] == pytest.approx((40 + 2 * 20) / 3)
    assert by["C"]["expected_gap"] == 20
    assert by["C"]["n_gaps"] == 0
    assert by["C"]["next_expected_order"] == date(2024, 1, 21)
    assert by["B"]["next_expected_order"] == date(2024, 2, 10) + timedelta(days=27)
    assert by["A"]["overdue_ratio"] == pytest.approx(20 / 17.5)


def test_engagement_window_scale_and_status():
    now = datetime(2024, 6, 30, 12, tzinfo=UTC)
    rows = [
        ("a", "newsletter_subscribed", 1),
        ("a", "review_posted", 3),
        ("a", "order.placed", 5),
        ("b", "social_share", 2),
        ("b", "unknown.thing", 2),
        ("b", "review_posted", 400),
    ]
    events = pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "type": [r[1] for r in rows],
            "occurred_at": [now - timedelta(days=r[2]) for r in rows],
        }
    )
    out = engagement(events, as_of=now, window_days=180)
    assert out.rows() == [("a", 23, 3, "engaged"), ("b", 3, 2, "casual")]
    fans = engagement(events, as_of=now, scale={"newsletter_subscribed": 60})
    assert fans["engagement_status"].to_list() == ["fan", "casual"]
    assert status_for(0) == "casual"
    assert status_for(49) == "engaged"


def test_clv_distribution():
    out = clv_distribution(pl.DataFrame({"clv": [float(i) for i in range(101)]}))
    values = dict(out.iter_rows())
    assert values["mean"] == 50
    assert values["total"] == 5050
    assert values["q50"] == 50
