"""Refresh a merchant's analytics from its orders and events, and read the stored results.
Never commits: the job, the CLI command or the request owns the transaction."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from fidele.analytics import engagement as eng
from fidele.analytics.cadence import cadence_from_gaps, median_of_counts
from fidele.analytics.cohorts import cohort_table
from fidele.analytics.kpis import monthly_rates, shop_kpis
from fidele.analytics.models import AnalyticsReport, CustomerInsight
from fidele.analytics.pipeline import USABLE, ClvOptions, insights_from_summary
from fidele.analytics.repository import AnalyticsRepository, ShopTables
from fidele.analytics.rfm import rfm, segment_summary
from fidele.analytics.schemas import EngagementConfig
from fidele.analytics.summary import unit_days
from fidele.customers import service as customers
from fidele.errors import NotFound
from fidele.tenancy.models import Merchant, Programme
from fidele.tenancy.service import Caller, list_merchants

__all__ = [
    "Computed",
    "RefreshResult",
    "compute",
    "customer_insight",
    "engagement_config",
    "refresh",
    "refresh_all",
    "report",
    "set_engagement",
    "store",
]

REPORT_KINDS = ("kpis", "cohorts", "rfm", "clv")
OPTIONS = ClvOptions()


@dataclass(frozen=True)
class RefreshResult:
    merchant_id: int
    customers: int
    orders: int
    models_fitted: bool
    clv_method: str | None
    computed_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def engagement_settings(programme: Programme | None) -> EngagementConfig:
    """The programme's engagement scale (``settings["engagement"]``), or the default one."""
    stored = (programme.settings or {}).get("engagement") if programme else None
    return EngagementConfig.model_validate(stored) if stored else EngagementConfig()


def engagement_config(session: Session, caller: Caller) -> EngagementConfig:
    """The engagement scale in force for the caller's programme."""
    return engagement_settings(session.get(Programme, caller.programme_id))


def set_engagement(
    session: Session, programme_id: int, config: EngagementConfig
) -> EngagementConfig:
    """Replace the programme's engagement scale (the next refresh scores with it)."""
    programme = session.get(Programme, programme_id)
    if programme is None:
        raise NotFound(f"programme {programme_id} not found")
    programme.settings = {**(programme.settings or {}), "engagement": config.model_dump()}
    return config


@dataclass(frozen=True)
class Computed:
    """A merchant's insights and reports, computed and not yet stored."""

    merchant_id: int
    rows: pl.DataFrame
    reports: dict[str, Any]
    orders: int
    models_fitted: bool
    clv_method: str | None
    computed_at: datetime


def refresh(session: Session, merchant_id: int, now: datetime) -> RefreshResult:
    """Recompute the merchant's per-customer insights and shop reports as of ``now``.

    The database computes one row per customer (the summary and the gap statistics) and the
    cohort and monthly counts: the orders themselves never leave it."""
    return store(session, compute(session, merchant_id, now))


def compute(session: Session, merchant_id: int, now: datetime) -> Computed:
    """The reading and computing half of :func:`refresh` (a job runs it in a read-only
    transaction: on SQLite the write lock is then held only by :func:`store`)."""
    repo = AnalyticsRepository(session)
    tables = _shop_tables(repo, merchant_id, now)
    end = now.date()
    report, insights = _insights(tables, end)
    scores, idle = _engagement(session, repo, merchant_id, now)
    rows = _rows(_merged(insights, scores, idle), merchant_id, now)
    reports = {kind: _finite(p) for kind, p in _reports(tables, end, report).items()}
    method = str(report["method"]) if report else None
    orders = int(tables.customers.get_column("n_orders").sum())
    return Computed(merchant_id, rows, reports, orders, method in USABLE, method, now)


def store(session: Session, computed: Computed) -> RefreshResult:
    """The writing half of :func:`refresh`: replace the merchant's stored insights and reports."""
    repo = AnalyticsRepository(session)
    repo.replace_insights(computed.merchant_id, computed.rows)
    for kind, payload in computed.reports.items():
        repo.replace_report(computed.merchant_id, kind, payload, computed.computed_at)
    return RefreshResult(
        computed.merchant_id,
        computed.rows.height,
        computed.orders,
        computed.models_fitted,
        computed.clv_method,
        computed.computed_at,
    )


def refresh_all(
    session: Session, now: datetime, merchant_id: int | None = None
) -> list[RefreshResult]:
    """Refresh one merchant (404 if unknown) or all of them."""
    merchants = list_merchants(session)
    if merchant_id is not None:
        merchants = [m for m in merchants if m.id == merchant_id]
        if not merchants:
            raise NotFound(f"merchant {merchant_id} not found")
    return [refresh(session, m.id, now) for m in merchants]


def _shop_tables(repo: AnalyticsRepository, merchant_id: int, now: datetime) -> ShopTables:
    return repo.shop_tables(merchant_id, now, now.date(), unit_days(OPTIONS.time_unit))


def _insights(tables: ShopTables, end: date) -> tuple[dict[str, object] | None, pl.DataFrame]:
    data = tables.customers
    if data.height == 0:
        return None, pl.DataFrame(schema={"customer_id": pl.Int64})
    beat = cadence_from_gaps(data, observation_end=end, shop_gap=median_of_counts(tables.gaps))
    return insights_from_summary(data, beat, observation_end=end, options=OPTIONS)


def _engagement(
    session: Session, repo: AnalyticsRepository, merchant_id: int, now: datetime
) -> tuple[pl.DataFrame, pl.Expr]:
    merchant = session.get(Merchant, merchant_id)
    conf = engagement_settings(session.get(Programme, merchant.programme_id) if merchant else None)
    since = now - timedelta(days=conf.window_days)
    events = repo.events(merchant_id, since, now)
    scored = eng.engagement(
        events,
        as_of=now,
        window_days=conf.window_days,
        scale=conf.scale,
        statuses=conf.thresholds(),
    )
    # Customers without a counted event score 0 on the same scale: give them its status.
    idle = pl.lit(eng.status_for(0, conf.thresholds()))
    return scored, idle


def _merged(insights: pl.DataFrame, scores: pl.DataFrame, idle: pl.Expr) -> pl.DataFrame:
    return insights.join(
        scores.drop("actions"), on="customer_id", how="full", coalesce=True
    ).with_columns(
        pl.col("engagement_score").fill_null(0),
        pl.col("engagement_status").fill_null(idle),
    )


_FLOATS = {
    "p_alive": "p_alive",
    "expected_purchases": "expected_purchases_90d",
    "expected_gap": "expected_gap_days",
    "overdue_ratio": "overdue_ratio",
}
_MONEY = {"expected_spend": "expected_spend", "clv": "clv"}
_KEPT = {
    "r_score": pl.Int16,
    "f_score": pl.Int16,
    "m_score": pl.Int16,
    "segment": pl.Utf8,
    "clv_method": pl.Utf8,
    "next_expected_order": pl.Date,
}


def _rows(merged: pl.DataFrame, merchant_id: int, now: datetime) -> pl.DataFrame:
    """The ``customer_insights`` rows: not-finite numbers become null (money rounded half to
    even, as Python's round), columns a shop without orders lacks are null."""

    def col(name: str, dtype: type[pl.DataType]) -> pl.Expr:
        return pl.col(name).cast(dtype) if name in merged.columns else pl.lit(None, dtype)

    def finite(name: str) -> pl.Expr:
        value = col(name, pl.Float64)
        return pl.when(value.is_finite()).then(value)

    money = {
        out: finite(name).round(0, mode="half_to_even").cast(pl.Int64).alias(out)
        for name, out in _MONEY.items()
    }
    floats = {out: finite(name).alias(out) for name, out in _FLOATS.items()}
    kept = {name: col(name, dtype).alias(name) for name, dtype in _KEPT.items()}
    columns = {**kept, **floats, **money}
    return merged.select(
        pl.col("customer_id"),
        pl.lit(merchant_id, pl.Int64).alias("merchant_id"),
        *(columns[c] for c in _INSIGHT_COLUMNS),
        pl.col("engagement_score").cast(pl.Int64),
        pl.col("engagement_status"),
        pl.lit(now).alias("computed_at"),
    )


_INSIGHT_COLUMNS = (
    "r_score",
    "f_score",
    "m_score",
    "segment",
    "p_alive",
    "expected_purchases_90d",
    "expected_spend",
    "clv",
    "clv_method",
    "next_expected_order",
    "expected_gap_days",
    "overdue_ratio",
)


def _reports(
    tables: ShopTables, end: date, clv: dict[str, object] | None
) -> dict[str, dict[str, Any]]:
    data = tables.customers
    if data.height == 0:
        return {
            "kpis": {"kpis": {}, "monthly": []},
            "cohorts": {"cohorts": []},
            "rfm": {"segments": []},
            "clv": {"models": None},
        }
    monthly = monthly_rates(tables.months())
    return {
        "kpis": {"kpis": shop_kpis(data, monthly), "monthly": _json_rows(monthly)},
        "cohorts": {"cohorts": _json_rows(cohort_table(tables.cohorts()))},
        "rfm": {"segments": _json_rows(segment_summary(rfm(data, observation_end=end)))},
        "clv": {"models": clv},
    }


def _finite(value: Any) -> Any:
    """JSON without NaN/inf (PostgreSQL's jsonb refuses them): they become null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items()}
        for row in frame.iter_rows(named=True)
    ]


def customer_insight(session: Session, caller: Caller, external_id: str) -> CustomerInsight:
    """The stored insights of one of the caller's customers (404 if none yet)."""
    customer = customers.get(session, caller, external_id)
    found = AnalyticsRepository(session).insight(customer.id)
    if found is None or found.merchant_id != caller.merchant_id:
        raise NotFound(f"no insights for customer {external_id!r} yet: run the refresh")
    return found


def report(session: Session, caller: Caller, kind: str, now: datetime) -> AnalyticsReport:
    """The stored report of this kind, or one computed now (not stored) if none exists."""
    repo = AnalyticsRepository(session)
    found = repo.report(caller.merchant_id, kind)
    if found is not None:
        return found
    tables = _shop_tables(repo, caller.merchant_id, now)
    payload = _finite(_reports(tables, now.date(), None)[kind])
    return AnalyticsReport(
        merchant_id=caller.merchant_id, kind=kind, payload=payload, computed_at=now
    )
