"""All of analytics' SQL: orders net of refunds and cancellations into polars, the per-customer
summary computed where the data lives (SQL), events for engagement, and the stored results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import polars as pl
from sqlalchemy import delete, insert, select, text
from sqlalchemy.orm import Session

from fidele.analytics.models import AnalyticsReport, CustomerInsight
from fidele.customers.models import Customer
from fidele.events.models import Event
from fidele.orders.models import Order

_NET = Order.total - Order.refunded_total


class AnalyticsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def orders(self, merchant_id: int, until: datetime) -> pl.DataFrame:
        """``customer_id`` (internal id), ``date`` (UTC), ``amount`` (net minor units) of the
        merchant's orders placed before ``until``, without cancelled or fully refunded ones."""
        stmt = (
            select(Order.customer_id, Order.placed_at, _NET)
            .where(
                Order.merchant_id == merchant_id,
                Order.status != "cancelled",
                Order.cancelled_at.is_(None),
                _NET > 0,
                Order.placed_at < until,
            )
            .order_by(Order.customer_id, Order.placed_at)
        )
        rows = self.session.execute(stmt).all()
        return pl.DataFrame(
            rows,
            schema={"customer_id": pl.Int64, "date": pl.Datetime("us", "UTC"), "amount": pl.Int64},
            orient="row",
        )

    def events(self, merchant_id: int, since: datetime, until: datetime) -> pl.DataFrame:
        """``customer_id``, ``type``, ``occurred_at`` of the merchant's customer events."""
        stmt = select(Event.customer_id, Event.type, Event.occurred_at).where(
            Event.merchant_id == merchant_id,
            Event.customer_id.is_not(None),
            Event.occurred_at > since,
            Event.occurred_at <= until,
        )
        return pl.DataFrame(
            self.session.execute(stmt).all(),
            schema={
                "customer_id": pl.Int64,
                "type": pl.Utf8,
                "occurred_at": pl.Datetime("us", "UTC"),
            },
            orient="row",
        )

    def summary_sql(
        self, merchant_id: int, observation_end: date, unit_days: float
    ) -> pl.DataFrame:
        """The per-customer summary computed by the database (PostgreSQL or SQLite), the same
        conventions and columns as :func:`fidele.analytics.summary.summary` without the
        interpurchase columns; for shops whose orders are too many to pull out."""
        dialect = self.session.get_bind().dialect.name
        sql = _summary_sql(dialect)
        params = {"merchant_id": merchant_id, "end": observation_end, "unit": unit_days}
        if dialect == "sqlite":
            params["end"] = observation_end.isoformat()
        rows = self.session.execute(text(sql), params).mappings().all()
        return _summary_frame(rows)

    def replace_insights(self, merchant_id: int, rows: Sequence[dict[str, Any]]) -> None:
        self.session.execute(
            delete(CustomerInsight).where(CustomerInsight.merchant_id == merchant_id)
        )
        for start in range(0, len(rows), 5000):
            self.session.execute(insert(CustomerInsight), list(rows[start : start + 5000]))

    def insight(self, customer_id: int) -> CustomerInsight | None:
        return self.session.get(CustomerInsight, customer_id)

    def replace_report(
        self, merchant_id: int, kind: str, payload: dict[str, Any], at: datetime
    ) -> None:
        self.session.execute(
            delete(AnalyticsReport).where(
                AnalyticsReport.merchant_id == merchant_id, AnalyticsReport.kind == kind
            )
        )
        self.session.add(
            AnalyticsReport(merchant_id=merchant_id, kind=kind, payload=payload, computed_at=at)
        )
        self.session.flush()

    def report(self, merchant_id: int, kind: str) -> AnalyticsReport | None:
        return self.session.get(AnalyticsReport, (merchant_id, kind))

    def customer_external_ids(self, merchant_id: int) -> dict[int, str]:
        stmt = select(Customer.id, Customer.external_id).where(Customer.merchant_id == merchant_id)
        return dict(self.session.execute(stmt).tuples().all())


# Stage one groups by (customer, UTC day) and stage two by customer, as the polars summary.
_SUMMARY_SQL = """
WITH days AS (
  SELECT customer_id, {day} AS day, SUM(total - refunded_total) AS amount, COUNT(*) AS orders
  FROM orders
  WHERE merchant_id = :merchant_id AND status <> 'cancelled' AND cancelled_at IS NULL
    AND total > refunded_total AND {day} <= {end}
  GROUP BY customer_id, {day}
), ranked AS (
  SELECT customer_id, day, amount, orders,
         MIN(day) OVER (PARTITION BY customer_id) AS first_day
  FROM days
)
SELECT customer_id,
       MIN(day) AS first_purchase,
       MAX(day) AS last_purchase,
       CAST(SUM(orders) AS BIGINT) AS n_orders,
       COUNT(*) - 1 AS frequency,
       {span_recency} / :unit AS recency,
       {span_age} / :unit AS t,
       CAST(CASE WHEN COUNT(*) > 1
            THEN (SUM(amount) - SUM(CASE WHEN day = first_day THEN amount ELSE 0 END))
                 * 1.0 / (COUNT(*) - 1)
            ELSE 0 END AS DOUBLE PRECISION) AS monetary_value,
       CAST(SUM(amount) AS BIGINT) AS total_spend
FROM ranked
GROUP BY customer_id
ORDER BY customer_id
"""


def _summary_sql(dialect: str) -> str:
    if dialect == "postgresql":
        return _SUMMARY_SQL.format(
            day="CAST(placed_at AT TIME ZONE 'UTC' AS DATE)",
            end="CAST(:end AS DATE)",
            span_recency="CAST(MAX(day) - MIN(day) AS DOUBLE PRECISION)",
            span_age="CAST(CAST(:end AS DATE) - MIN(day) AS DOUBLE PRECISION)",
        )
    return _SUMMARY_SQL.format(  # SQLite stores UTC as naive text
        day="date(placed_at)",
        end=":end",
        span_recency="(julianday(MAX(day)) - julianday(MIN(day)))",
        span_age="(julianday(:end) - julianday(MIN(day)))",
    )


def _summary_frame(rows: Sequence[Any]) -> pl.DataFrame:
    schema = {
        "customer_id": pl.Int64,
        "first_purchase": pl.Date,
        "last_purchase": pl.Date,
        "n_orders": pl.Int64,
        "frequency": pl.Int64,
        "recency": pl.Float64,
        "T": pl.Float64,
        "monetary_value": pl.Float64,
        "total_spend": pl.Int64,
    }
    data = [
        (
            r["customer_id"],
            _as_date(r["first_purchase"]),
            _as_date(r["last_purchase"]),
            r["n_orders"],
            r["frequency"],
            r["recency"],
            r["t"],
            r["monetary_value"],
            r["total_spend"],
        )
        for r in rows
    ]
    return pl.DataFrame(data, schema=schema, orient="row")


def _as_date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value
