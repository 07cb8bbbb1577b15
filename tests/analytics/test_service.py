import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.analytics import service
from fidele.analytics.cohorts import cohorts
from fidele.analytics.kpis import monthly_kpis, shop_kpis
from fidele.analytics.models import AnalyticsReport, CustomerInsight
from fidele.analytics.pipeline import customer_insights
from fidele.analytics.repository import AnalyticsRepository
from fidele.analytics.rfm import rfm, segment_summary
from fidele.analytics.summary import summary
from fidele.analytics.tasks import refresh as refresh_job
from fidele.customers.models import Customer
from fidele.errors import NotFound
from fidele.events import service as events
from fidele.orders.models import Order
from fidele.tenancy.models import Programme
from tests.fixtures.factories import make_tenant

from .db import NOW, load_shop, shop_orders

FIDELE = str(Path(sys.executable).parent / "fidele")


@pytest.fixture
def shop(session, tenant):
    frame = shop_orders(120)
    load_shop(session, tenant.caller, frame)
    return frame


def _order(session, tenant, external_id):
    return session.execute(
        select(Order).where(
            Order.merchant_id == tenant.merchant_id, Order.external_id == external_id
        )
    ).scalar_one()


def test_orders_are_net_of_refunds_and_cancellations(session, tenant, shop):
    _order(session, tenant, "o0").status = "cancelled"
    full = _order(session, tenant, "o1")
    full.refunded_total = full.total
    part = _order(session, tenant, "o2")
    part.refunded_total = 100
    session.flush()
    loaded = AnalyticsRepository(session).orders(tenant.merchant_id, until=NOW)
    assert loaded.height == shop.height - 2
    assert (
        loaded["amount"].sum() == shop["amount"].sum() - shop["amount"][0] - shop["amount"][1] - 100
    )


def test_unpaid_orders_count_once_paid(session, tenant, shop):
    # A pending order (a transfer or cash on delivery not received) is not a purchase yet:
    # both the polars path and the database's summary leave it out until it is paid.
    pending = _order(session, tenant, "o0")
    pending.payment_status, pending.paid_at = "pending", None
    session.flush()
    repo = AnalyticsRepository(session)
    end = NOW.date()
    loaded = repo.orders(tenant.merchant_id, until=NOW)
    assert loaded.height == shop.height - 1
    in_db = repo.summary_sql(tenant.merchant_id, end, 1.0)
    local = summary(loaded, observation_end=end, time_unit="days", interpurchase=False)
    assert_frame_equal(in_db, local, check_dtypes=False)
    pending.payment_status, pending.paid_at = "paid", NOW
    session.flush()
    assert repo.orders(tenant.merchant_id, until=NOW).height == shop.height


def test_sql_summary_matches_polars(session, tenant, shop):
    _order(session, tenant, "o3").refunded_total = 50
    session.flush()
    _order(session, tenant, "o4").payment_status = "pending"
    session.flush()
    repo = AnalyticsRepository(session)
    end = (NOW - timedelta(days=30)).date()
    for unit, per in (("days", 1.0), ("weeks", 7.0)):
        in_db = repo.summary_sql(tenant.merchant_id, end, per)
        local = summary(
            repo.orders(tenant.merchant_id, until=NOW),
            observation_end=end,
            time_unit=unit,
            interpurchase=False,
        )
        assert_frame_equal(in_db, local, check_dtypes=False)


def _from_every_order(session, merchant_id, now):
    """What the refresh stored when it read every order into polars: the insights and the
    reports of the polars functions on the orders."""
    orders = AnalyticsRepository(session).orders(merchant_id, until=now)
    end = now.date()
    report, insights = customer_insights(orders, observation_end=end)
    data = summary(orders, observation_end=end, interpurchase=False)
    monthly = monthly_kpis(orders, observation_end=end)
    reports = {
        "kpis": {"kpis": shop_kpis(data, monthly), "monthly": monthly.to_dicts()},
        "cohorts": {"cohorts": cohorts(orders, observation_end=end).to_dicts()},
        "rfm": {"segments": segment_summary(rfm(data, observation_end=end)).to_dicts()},
        "clv": {"models": report},
    }
    return orders.height, insights, reports


def _comparable(payload):
    """A report as stored (JSON), the fit's timings left out (they differ run to run)."""
    payload = json.loads(json.dumps(service._finite(payload), default=str))
    models = payload.get("models") or {}
    models.pop("timings", None)
    if models.get("models"):
        models["models"].pop("timings", None)
    return payload


_INSIGHT = {
    "r_score": "r_score",
    "f_score": "f_score",
    "m_score": "m_score",
    "segment": "segment",
    "p_alive": "p_alive",
    "expected_purchases": "expected_purchases_90d",
    "expected_spend": "expected_spend",
    "clv": "clv",
    "clv_method": "clv_method",
    "next_expected_order": "next_expected_order",
    "expected_gap": "expected_gap_days",
    "overdue_ratio": "overdue_ratio",
}


def _assert_stored(session, merchant_id, insights, reports):
    """The stored insights and reports are exactly those of the polars path."""
    stored = {
        r.customer_id: r
        for r in session.execute(
            select(CustomerInsight).where(CustomerInsight.merchant_id == merchant_id)
        ).scalars()
    }
    assert set(stored) == set(insights["customer_id"])
    for want in insights.iter_rows(named=True):
        row = stored[want["customer_id"]]
        for col, field in _INSIGHT.items():
            value = want[col]
            if field in ("expected_spend", "clv"):
                value = round(value)
            assert getattr(row, field) == value, (want["customer_id"], field)
    for kind, payload in reports.items():
        got = session.get(AnalyticsReport, (merchant_id, kind)).payload
        assert _comparable(got) == _comparable(payload), kind


@pytest.mark.parametrize(("n", "seed"), [(120, 5), (6, 1)])
def test_refresh_from_database_rows_equals_the_polars_path(session, tenant, monkeypatch, n, seed):
    """The refresh works from one row per customer computed by the database; it stores exactly
    what the polars functions give on every order (models fitted at 120 customers, the cadence
    fallback at 6), refunds, cancellations, same-day orders and orders after ``now`` included."""
    load_shop(session, tenant.caller, shop_orders(n, seed=seed))
    _order(session, tenant, "o0").status = "cancelled"
    _order(session, tenant, "o1").refunded_total = 70
    later = _order(session, tenant, "o2")  # today, but after now: not counted
    later.placed_at = NOW + timedelta(hours=3)
    twin, first = _order(session, tenant, "o4"), _order(session, tenant, "o3")
    twin.customer_id, twin.placed_at = first.customer_id, first.placed_at + timedelta(minutes=5)
    session.flush()
    n_orders, insights, reports = _from_every_order(session, tenant.merchant_id, NOW)

    def every_order(*args, **kwargs):
        raise AssertionError("the refresh must not read every order")

    monkeypatch.setattr(AnalyticsRepository, "orders", every_order)
    result = service.refresh(session, tenant.merchant_id, NOW)
    assert (result.customers, result.orders) == (insights.height, n_orders)
    assert result.clv_method == ("model" if n > 20 else "cadence_average")
    _assert_stored(session, tenant.merchant_id, insights, reports)
    for kind in service.REPORT_KINDS:  # nothing stored: computed now from the same rows
        session.execute(delete(AnalyticsReport).where(AnalyticsReport.kind == kind))
        computed = service.report(session, tenant.caller, kind, NOW).payload
        if kind != "clv":
            assert _comparable(computed) == _comparable(reports[kind])


def test_installed_cli_refreshes_from_the_database(committed_engine):
    """`fidele analytics refresh` as a user runs it, on a committed database: it stores what
    the polars path computes on every order as of its own clock."""
    with Session(committed_engine) as setup:
        shop = make_tenant(setup, NOW, name="CLI shop")
        load_shop(setup, shop.caller, shop_orders(40, seed=3))
        setup.commit()
    env = {
        **os.environ,
        "FIDELE_DATABASE_URL": committed_engine.url.render_as_string(hide_password=False),
        "FIDELE_EMBEDDED_WORKER": "false",
    }
    cmd = [FIDELE, "analytics", "refresh", "--merchant", str(shop.merchant_id), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    now = datetime.fromisoformat(result["computed_at"])
    with Session(committed_engine) as check:
        n_orders, insights, reports = _from_every_order(check, shop.merchant_id, now)
        assert (result["customers"], result["orders"]) == (40, n_orders)
        _assert_stored(check, shop.merchant_id, insights, reports)


def test_refresh_stores_insights_and_reports(session, tenant, shop):
    customer = session.execute(
        select(Customer).where(Customer.external_id == "c0000001")
    ).scalar_one()
    events.record(
        session,
        tenant.caller,
        type="review_posted",
        occurred_at=NOW - timedelta(days=3),
        now=NOW,
        source="test",
        payload={},
        customer_id=customer.id,
    )
    result = service.refresh(session, tenant.merchant_id, NOW)
    assert result.customers == 120
    assert result.models_fitted
    rows = session.execute(select(CustomerInsight)).scalars().all()
    assert len(rows) == 120
    assert all(r.segment and 1 <= r.r_score <= 5 for r in rows)
    assert all(0 <= r.p_alive <= 1 and r.clv >= 0 for r in rows)
    mine = session.get(CustomerInsight, customer.id)
    placed = shop.filter(pl.col("customer_id") == "c0000001").height
    assert mine.engagement_score == 8 + 5 * placed_in_window(shop, "c0000001")
    assert placed >= 1
    kinds = {r.kind for r in session.execute(select(AnalyticsReport)).scalars()}
    assert kinds == {"kpis", "cohorts", "rfm", "clv"}
    again = service.refresh(session, tenant.merchant_id, NOW)  # idempotent: replaces
    assert again.customers == 120
    assert session.query(CustomerInsight).count() == 120


def placed_in_window(frame, customer, days=180):
    since = NOW - timedelta(days=days)
    return frame.filter((pl.col("customer_id") == customer) & (pl.col("date") > since)).height


def test_engagement_scale_from_programme_settings(session, tenant, shop):
    programme = session.get(Programme, tenant.programme_id)
    programme.settings = {
        "engagement": {
            "scale": {"order.placed": 0, "review_posted": 60},
            "statuses": [[0, "quiet"], [50, "fan"]],
        }
    }
    customer = session.execute(
        select(Customer).where(Customer.external_id == "c0000002")
    ).scalar_one()
    events.record(
        session,
        tenant.caller,
        type="review_posted",
        occurred_at=NOW - timedelta(days=1),
        now=NOW,
        source="test",
        payload={},
        customer_id=customer.id,
    )
    service.refresh(session, tenant.merchant_id, NOW)
    row = session.get(CustomerInsight, customer.id)
    assert (row.engagement_score, row.engagement_status) == (60, "fan")
    others = session.execute(
        select(CustomerInsight).where(CustomerInsight.customer_id != customer.id)
    ).scalars()
    assert {r.engagement_status for r in others} == {"quiet"}


def test_small_shop_gets_rfm_and_labelled_averages_without_models(session, tenant):
    load_shop(session, tenant.caller, shop_orders(5, seed=1))
    result = service.refresh(session, tenant.merchant_id, NOW)
    assert not result.models_fitted
    assert result.clv_method == "cadence_average"
    rows = session.execute(select(CustomerInsight)).scalars().all()
    assert len(rows) == 5
    assert all(r.segment and r.clv_method == "cadence_average" for r in rows)
    assert all(r.clv is not None and r.clv > 0 and r.p_alive is None for r in rows)
    clv = session.get(AnalyticsReport, (tenant.merchant_id, "clv")).payload["models"]
    assert clv["method"] == "cadence_average" and clv["warnings"]


def test_refresh_all_and_job_cover_every_merchant_and_scope(session, tenant, shop, clock):
    other = make_tenant(session, clock.now(), name="Shop B")
    load_shop(session, other.caller, shop_orders(30, seed=9), prefix="b")
    session.flush()  # the job works in its own transactions (savepoints here)
    jobs = sessionmaker(
        bind=session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    assert refresh_job(jobs, NOW) == 2
    mine = session.query(CustomerInsight).filter_by(merchant_id=tenant.merchant_id).count()
    theirs = session.query(CustomerInsight).filter_by(merchant_id=other.merchant_id).count()
    assert (mine, theirs) == (120, 30)
    with pytest.raises(NotFound):
        service.customer_insight(session, other.caller, "c0000100")  # only tenant has it
    with pytest.raises(NotFound):
        service.refresh_all(session, NOW, merchant_id=999_999)
