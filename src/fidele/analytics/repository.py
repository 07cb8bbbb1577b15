"""All of analytics' SQL: orders net of refunds and cancellations into polars, the per-customer
summary computed where the data lives (SQL), events for engagement, and the stored results."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import polars as pl
from sqlalchemy import bindparam, delete, insert, select, text
from sqlalchemy.orm import Session

from fidele.analytics.cohorts import months_between
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
        merchant's orders placed before ``until``, without cancelled, unpaid (``pending``: a
        transfer or cash on delivery not received yet) or fully refunded ones."""
        stmt = (
            select(Order.customer_id, Order.placed_at, _NET)
            .where(
                Order.merchant_id == merchant_id,
                Order.status != "cancelled",
                Order.cancelled_at.is_(None),
                Order.payment_status == "paid",
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

    def shop_tables(
        self, merchant_id: int, until: datetime, observation_end: date, unit_days: float
    ) -> ShopTables:
        """Everything the refresh needs, computed by the database (PostgreSQL or SQLite, the
        same SQL): one row per customer, the histogram of the gaps, and the cohort and monthly
        counts; orders placed before ``until`` on days up to ``observation_end``, net of
        refunds, cancellations and unpaid orders, as :meth:`orders`."""
        self._purchase_days(merchant_id, until, observation_end)
        tables = ShopTables(
            customers=self._customers(observation_end, unit_days),
            gaps=self._frame(_GAPS_SQL, {}, {"gap": pl.Int64, "count": pl.Int64}),
            cohort_months=self._frame(
                _sql(_COHORT_MONTHS_SQL, self._dialect()), {}, _COHORT_MONTHS
            ),
        )
        # not in a finally: after an error PostgreSQL refuses every statement until rollback,
        # which removes the table anyway (the next build drops any leftover first)
        self.session.execute(text(f"DROP TABLE {_DAYS}"))
        return tables

    def summary_sql(
        self, merchant_id: int, observation_end: date, unit_days: float
    ) -> pl.DataFrame:
        """The per-customer summary computed by the database (PostgreSQL or SQLite), the same
        conventions and columns as :func:`fidele.analytics.summary.summary` without the
        interpurchase columns; for shops whose orders are too many to pull out."""
        until = datetime.combine(observation_end + timedelta(days=1), time(), UTC)
        self._purchase_days(merchant_id, until, observation_end)
        found = self._customers(observation_end, unit_days)
        self.session.execute(text(f"DROP TABLE {_DAYS}"))
        return found.drop("n_gaps", "median_gap")

    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def _purchase_days(self, merchant_id: int, until: datetime, end: date) -> None:
        """Stage one into a temporary table (this connection's only; dropped by the caller):
        one row per customer and purchase day, its first day and the gap since the previous
        one, read by every later query instead of the orders."""
        dialect = self._dialect()
        self.session.execute(text(f"DROP TABLE IF EXISTS {_DAYS}"))
        stmt = text(_sql(_DAYS_SQL, dialect)).bindparams(
            bindparam("until", type_=Order.__table__.c.placed_at.type)
        )
        params = {"merchant_id": merchant_id, "until": until, "end": _day_param(end, dialect)}
        self.session.execute(stmt, params)

    def _customers(self, end: date, unit_days: float) -> pl.DataFrame:
        params = {"end": _day_param(end, self._dialect()), "unit": unit_days}
        return self._frame(_sql(_CUSTOMERS_SQL, self._dialect()), params, _CUSTOMERS)

    def _frame(self, sql: str, params: dict[str, Any], schema: dict[str, Any]) -> pl.DataFrame:
        """The rows of a query as a frame: on PostgreSQL streamed as CSV by COPY (a million
        customers would otherwise be a million Python tuples), elsewhere fetched. Dates come
        as ISO text either way and are parsed by polars."""
        raw = {k: (pl.Utf8 if v == pl.Date else v) for k, v in schema.items()}
        if self._dialect() == "postgresql":
            stmt = (
                text(sql)
                .bindparams(**params)
                .compile(
                    dialect=self.session.get_bind().dialect, compile_kwargs={"literal_binds": True}
                )
            )
            buffer = io.BytesIO()
            conn = self.session.connection().connection.driver_connection
            with conn.cursor() as cur, cur.copy(f"COPY ({stmt}) TO STDOUT (FORMAT CSV)") as copy:
                for block in copy:
                    buffer.write(block)
            frame = (
                pl.read_csv(buffer.getvalue(), has_header=False, schema=raw)
                if buffer.tell()
                else pl.DataFrame(schema=raw)
            )
        else:
            rows = self.session.execute(text(sql), params).all()
            frame = pl.DataFrame(rows, schema=raw, orient="row")
        return frame.with_columns(
            pl.col(k).str.to_date("%Y-%m-%d") for k, v in schema.items() if v == pl.Date
        )

    def replace_insights(self, merchant_id: int, rows: pl.DataFrame) -> None:
        """Replace the merchant's insights by ``rows`` (the table's columns): by COPY on
        PostgreSQL (a million rows in seconds, not the minute of batched INSERTs),
        elsewhere in batches of 5,000."""
        self.session.execute(
            delete(CustomerInsight).where(CustomerInsight.merchant_id == merchant_id)
        )
        if self._dialect() == "postgresql":
            columns = ", ".join(rows.columns)
            conn = self.session.connection().connection.driver_connection
            statement = f"COPY customer_insights ({columns}) FROM STDIN (FORMAT CSV)"
            with conn.cursor() as cur, cur.copy(statement) as copy:
                for start in range(0, rows.height, 50_000):
                    copy.write(rows.slice(start, 50_000).write_csv(include_header=False))
            return
        for start in range(0, rows.height, 5000):
            self.session.execute(insert(CustomerInsight), rows.slice(start, 5000).to_dicts())

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


@dataclass(frozen=True)
class ShopTables:
    """What the refresh reads from the database instead of the orders: ``customers`` (the
    summary of :func:`fidele.analytics.summary.summary` plus ``n_gaps`` and ``median_gap``,
    days), ``gaps`` (``gap`` in days, ``count``: every customer's gaps pooled) and
    ``cohort_months`` (per cohort and active month: ``customers``, ``new_customers``,
    ``orders``, ``revenue``, ``first_day_revenue`` and ``retained``, those also active the
    month before), from which :meth:`cohorts` and :meth:`months` sum their counts."""

    customers: pl.DataFrame
    gaps: pl.DataFrame
    cohort_months: pl.DataFrame

    def cohorts(self) -> pl.DataFrame:
        """``cohort``, ``period``, ``customers``, ``revenue``: the counts of
        :func:`fidele.analytics.cohorts.cohort_table`."""
        period = months_between("cohort", "month").alias("period")
        return self.cohort_months.select("cohort", period, "customers", "revenue")

    def months(self) -> pl.DataFrame:
        """The counts of :func:`fidele.analytics.kpis.monthly_rates`, one row per month."""
        counts = ("customers", "new_customers", "orders", "revenue", "first_day_revenue")
        return self.cohort_months.group_by("month").agg(
            *[pl.col(c).sum() for c in counts], pl.col("retained").sum()
        )


_DAYS = "analytics_purchase_days"

# Stage one, by (customer, UTC day) as the polars summary, into the temporary table.
_DAYS_SQL = f"""
CREATE TEMPORARY TABLE {_DAYS} AS
WITH days AS (
  SELECT customer_id, {{day}} AS day, SUM(total - refunded_total) AS amount, COUNT(*) AS orders
  FROM orders
  WHERE merchant_id = :merchant_id AND status <> 'cancelled' AND cancelled_at IS NULL
    AND payment_status = 'paid' AND total > refunded_total
    AND placed_at < :until AND {{day}} <= {{end}}
  GROUP BY customer_id, {{day}}
)
SELECT customer_id, day, amount, orders,
       MIN(day) OVER (PARTITION BY customer_id) AS first_day,
       {{gap}} AS gap
FROM days
"""

# One row per customer. The median gap without percentile_cont (SQLite has none): the gaps
# ranked within the customer, the middle one or the mean of the middle two.
_CUSTOMERS_SQL = f"""
WITH ranked AS (
  SELECT customer_id, day, amount, orders, first_day, gap,
         ROW_NUMBER() OVER (PARTITION BY customer_id, gap IS NULL ORDER BY gap) AS gap_rank,
         COUNT(gap) OVER (PARTITION BY customer_id) AS n_gaps
  FROM {_DAYS}
)
SELECT customer_id,
       MIN(day) AS first_purchase,
       MAX(day) AS last_purchase,
       CAST(SUM(orders) AS BIGINT) AS n_orders,
       COUNT(*) - 1 AS frequency,
       {{span_recency}} / CAST(:unit AS DOUBLE PRECISION) AS recency,
       {{span_age}} / CAST(:unit AS DOUBLE PRECISION) AS t,
       CASE WHEN COUNT(*) > 1
            THEN CAST(SUM(amount) - SUM(CASE WHEN day = first_day THEN amount ELSE 0 END)
                      AS DOUBLE PRECISION)
                 / CAST(COUNT(*) - 1 AS DOUBLE PRECISION)
            ELSE 0.0 END AS monetary_value,
       CAST(SUM(amount) AS BIGINT) AS total_spend,
       COUNT(gap) AS n_gaps,
       CAST(AVG(CASE WHEN gap IS NOT NULL
                      AND gap_rank IN ((n_gaps + 1) / 2, (n_gaps + 2) / 2)
                     THEN gap END) AS DOUBLE PRECISION) AS median_gap
FROM ranked
GROUP BY customer_id
ORDER BY customer_id
"""

_GAPS_SQL = f"""
SELECT gap, COUNT(*) AS count FROM {_DAYS} WHERE gap IS NOT NULL GROUP BY gap ORDER BY gap
"""

# One row per customer and active month, as fidele.analytics.cohorts.customer_months.
_CUSTOMER_MONTHS = f"""
customer_months AS (
  SELECT customer_id, {{month_of_day}} AS month, {{month_of_first}} AS cohort,
         SUM(orders) AS orders, SUM(amount) AS revenue,
         SUM(CASE WHEN day = first_day THEN amount ELSE 0 END) AS first_day_revenue
  FROM {_DAYS}
  GROUP BY customer_id, {{month_of_day}}, {{month_of_first}}
)"""

# Counts per cohort and active month: both the cohort table (cohort x period) and the monthly
# KPIs (summed per month) come from these few hundred rows, one pass over the purchase days.
_COHORT_MONTHS_SQL = f"""
WITH {_CUSTOMER_MONTHS}, flagged AS (
  SELECT month, cohort, orders, revenue, first_day_revenue,
         CASE WHEN LAG(month) OVER (PARTITION BY customer_id ORDER BY month) = {{previous}}
              THEN 1 ELSE 0 END AS retained
  FROM customer_months
)
SELECT cohort, month, COUNT(*) AS customers,
       SUM(CASE WHEN month = cohort THEN 1 ELSE 0 END) AS new_customers,
       SUM(orders) AS orders, SUM(revenue) AS revenue,
       SUM(first_day_revenue) AS first_day_revenue, SUM(retained) AS retained
FROM flagged
GROUP BY cohort, month
ORDER BY cohort, month
"""

_DIALECT = {
    "postgresql": {
        "day": "CAST(placed_at AT TIME ZONE 'UTC' AS DATE)",
        "end": "CAST(:end AS DATE)",
        "gap": "day - LAG(day) OVER (PARTITION BY customer_id ORDER BY day)",
        "span_recency": "CAST(MAX(day) - MIN(day) AS DOUBLE PRECISION)",
        "span_age": "CAST(CAST(:end AS DATE) - MIN(day) AS DOUBLE PRECISION)",
        "month_of_day": "CAST(date_trunc('month', day) AS DATE)",
        "month_of_first": "CAST(date_trunc('month', first_day) AS DATE)",
        "previous": "CAST(month - INTERVAL '1 month' AS DATE)",
    },
    "sqlite": {  # SQLite stores UTC as naive text and dates as ISO text
        "day": "date(placed_at)",
        "end": ":end",
        "gap": "CAST(julianday(day) - julianday(LAG(day) OVER"
        " (PARTITION BY customer_id ORDER BY day)) AS INTEGER)",
        "span_recency": "(julianday(MAX(day)) - julianday(MIN(day)))",
        "span_age": "(julianday(:end) - julianday(MIN(day)))",
        "month_of_day": "date(day, 'start of month')",
        "month_of_first": "date(first_day, 'start of month')",
        "previous": "date(month, '-1 month')",
    },
}


def _sql(template: str, dialect: str) -> str:
    return template.format(**_DIALECT["postgresql" if dialect == "postgresql" else "sqlite"])


def _day_param(day: date, dialect: str) -> date | str:
    return day if dialect == "postgresql" else day.isoformat()


_CUSTOMERS = {
    "customer_id": pl.Int64,
    "first_purchase": pl.Date,
    "last_purchase": pl.Date,
    "n_orders": pl.Int64,
    "frequency": pl.Int64,
    "recency": pl.Float64,
    "T": pl.Float64,
    "monetary_value": pl.Float64,
    "total_spend": pl.Int64,
    "n_gaps": pl.Int64,
    "median_gap": pl.Float64,
}
_COHORT_MONTHS = {
    "cohort": pl.Date,
    "month": pl.Date,
    "customers": pl.Int64,
    "new_customers": pl.Int64,
    "orders": pl.Int64,
    "revenue": pl.Int64,
    "first_day_revenue": pl.Int64,
    "retained": pl.Int64,
}
