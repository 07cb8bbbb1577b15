"""What each page shows, assembled from the domains' own services (the ones the API calls):
no rule is computed a second time here."""

from __future__ import annotations

import csv
import io
from typing import Any

import polars as pl

from fidele.analytics import service as analytics
from fidele.analytics.kpis import clv_distribution
from fidele.customers import gdpr
from fidele.customers.models import Customer
from fidele.dashboard import journeys_report
from fidele.dashboard.charts import bar_chart, heat_colour, line_chart, text_colour
from fidele.dashboard.repository import CustomerSearch
from fidele.dashboard.web import Ctx
from fidele.errors import NotFound
from fidele.loyalty import reports

TREND_MONTHS = 12
PAGE = 50
FOCUS_MEANING = {
    "acquisition": "Focus on bringing in new customers: too few buy again yet for retention "
    "work to pay.",
    "acquisition and retention": "Bring in new customers and turn first buyers into regulars: "
    "repeat purchases are starting but not yet steady.",
    "retention": "Focus on retention: your customers come back, so keeping them pays more than "
    "buying new ones.",
}


def overview(ctx: Ctx) -> dict[str, Any]:
    """The KPIs of ``GET /v1/analytics/kpis``, the points liability of ``GET
    /v1/programme/liability`` and the average stored CLV, with the last 12 months."""
    report = analytics.report(ctx.session, ctx.caller, "kpis", ctx.now)
    kpis = report.payload.get("kpis") or {}
    monthly = (report.payload.get("monthly") or [])[-TREND_MONTHS:]
    # a big shop's liability and average CLV are precomputed (``journeys_report``)
    stored = journeys_report.read_overview(ctx.session, ctx.merchant.id, ctx.now)
    if stored is None:
        liability = reports.liability(ctx.session, ctx.programme.id, ctx.now)
        average_clv = CustomerSearch(ctx.session).average_clv(ctx.merchant.id)
    else:
        liability, average_clv = stored["liability"], stored["average_clv"]
    figures: dict[str, Any] = {}
    # the month in progress is partial: "active" counts the last complete one
    this_month = ctx.now.date().replace(day=1).isoformat()
    last_full = next((m for m in reversed(monthly) if m["month"][:10] < this_month), None)
    if kpis:
        figures = {
            "customers": kpis["customers"],
            "active_customers": last_full["customers"] if last_full else 0,
            "active_month": last_full["month"] if last_full else None,
            "repeat_purchase_rate": kpis["repeat_purchase_rate"],
            "retention_rate": kpis["mean_retention_rate"],
            "returning_revenue": kpis["revenue"] * kpis["returning_revenue_share"],
            "average_clv": average_clv,
            "stage": kpis["stage"],
            "focus": kpis["focus"],
            "meaning": FOCUS_MEANING.get(str(kpis["focus"]), ""),
        }
    fmt = ctx.fmt
    labels = [fmt.month(m["month"]) for m in monthly]
    charts = {}
    if monthly:
        charts = {
            "revenue": line_chart(
                labels, [m["revenue"] for m in monthly], title=fmt.t("Revenue"), fmt=fmt.money
            ),
            "customers": line_chart(
                labels, [m["customers"] for m in monthly], title=fmt.t("Customers"), fmt=fmt.number
            ),
            "retention": line_chart(
                labels,
                [m["retention_rate"] for m in monthly],
                title=fmt.t("Retention rate (monthly average)"),
                fmt=fmt.percent,
            ),
        }
    return {
        "figures": figures,
        "monthly": monthly,
        "charts": charts,
        "liability": liability,
        "computed_at": report.computed_at,
        "liability_at": stored["computed_at"] if stored else None,
    }


def customer_list(ctx: Ctx, query: str, after: int, segment: str = "") -> dict[str, Any]:
    rows = CustomerSearch(ctx.session).search(
        ctx.merchant.id, query, after_id=after, limit=PAGE + 1, segment=segment or None
    )
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return {
        "query": query,
        "segment": segment,
        "customers": rows,
        "next_after": rows[-1].id if more and rows else None,
        "any_customers": bool(rows) or bool(query) or bool(segment) or after > 0,
    }


def customer_of(ctx: Ctx, customer_id: int) -> Customer:
    """One of the merchant's customers by internal id (404 for another merchant's)."""
    customer = ctx.session.get(Customer, customer_id)
    if customer is None or customer.merchant_id != ctx.merchant.id:
        raise NotFound(f"customer {customer_id} not found")
    return customer


STATEMENT_LINES = 50


def customer_360(ctx: Ctx, customer: Customer) -> dict[str, Any]:
    """The customer's profile and each domain's section, from the same functions as the
    API's export (``GET /v1/customers/{id}/export``): orders, loyalty (balances, tier,
    statement), vouchers, coupons, gift cards, referrals, insights."""
    gdpr.load()
    sections = {
        name: fn(ctx.session, customer, ctx.now)
        for name, fn in gdpr.exporters.items()
        if name
        in ("orders", "loyalty", "vouchers", "coupons", "gift_cards", "referrals", "insights")
    }
    loyalty = sections.get("loyalty") or {}
    statement = list(reversed(loyalty.get("statement", [])))[:STATEMENT_LINES]
    orders = sorted(
        sections.get("orders") or [], key=lambda o: o.get("placed_at") or "", reverse=True
    )
    tier = loyalty.get("tier")
    progress = None
    if tier and tier.get("next"):
        nxt = tier["next"]
        progress = {
            "value": min(nxt["progress"], nxt["threshold"]),
            "max": nxt["threshold"] or 1,
            **nxt,
        }
    return {
        "customer": customer,
        "orders": orders,
        "loyalty": loyalty,
        "statement": statement,
        "tier": tier,
        "progress": progress,
        "vouchers": sections.get("vouchers") or [],
        "coupons": sections.get("coupons") or [],
        "gift_cards": sections.get("gift_cards") or [],
        "referrals": sections.get("referrals") or {},
        "insights": sections.get("insights"),
    }


CLV_BINS = 10


def analytics_page(ctx: Ctx) -> dict[str, Any]:
    """Cohorts, RFM segments and KPIs of the stored reports (``GET /v1/analytics/*``), and the
    distribution of the stored CLV estimates."""
    fmt = ctx.fmt
    cohorts = analytics.report(ctx.session, ctx.caller, "cohorts", ctx.now).payload
    rfm = analytics.report(ctx.session, ctx.caller, "rfm", ctx.now).payload
    kpis = analytics.report(ctx.session, ctx.caller, "kpis", ctx.now)
    grid = _cohort_grid(cohorts.get("cohorts") or [])
    values = CustomerSearch(ctx.session).clv_values(ctx.merchant.id)
    clv = None
    if values:
        stats = clv_distribution(pl.DataFrame({"clv": values}))
        top = max(values) or 1
        width = top / CLV_BINS
        counts = [0] * CLV_BINS
        for v in values:
            counts[min(int(v / width), CLV_BINS - 1) if width else 0] += 1
        labels = [fmt.money(width * (i + 1)) for i in range(CLV_BINS)]
        clv = {
            "stats": dict(stats.iter_rows()),
            "chart": bar_chart(labels, counts, title=fmt.t("CLV distribution")),
            "bins": list(zip(labels, counts, strict=True)),
        }
    return {
        "cohorts": grid,
        "segments": rfm.get("segments") or [],
        "monthly": list(reversed(kpis.payload.get("monthly") or [])),
        "clv": clv,
        "computed_at": kpis.computed_at,
    }


def _cohort_grid(rows: list[dict[str, Any]], months: int = 12) -> dict[str, Any]:
    """Cohort x months-since-first-order retention, the last ``months`` cohorts."""
    by_cohort: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:
        by_cohort.setdefault(str(row["cohort"]), {})[int(row["period"])] = row
    cohorts = sorted(by_cohort)[-months:]
    periods = list(range(min(months, max((len(by_cohort[c]) for c in cohorts), default=0))))
    lines = []
    for c in cohorts:
        cells = []
        for p in periods:
            found = by_cohort[c].get(p)
            ratio = None if found is None else found.get("retention")
            cells.append({"ratio": ratio, "fill": heat_colour(ratio), "ink": text_colour(ratio)})
        size = by_cohort[c].get(0, {}).get("cohort_size") or by_cohort[c].get(0, {}).get(
            "customers"
        )
        lines.append({"cohort": c, "size": size, "cells": cells})
    return {"periods": periods, "lines": lines}


KPI_COLUMNS = (
    "month",
    "customers",
    "new_customers",
    "returning_customers",
    "orders",
    "revenue",
    "aov",
    "purchase_frequency",
    "retention_rate",
    "churn_rate",
    "returning_revenue_share",
)


def kpis_csv(ctx: Ctx) -> str:
    """The monthly KPIs as CSV (money in minor units, rates as fractions: for spreadsheets)."""
    report = analytics.report(ctx.session, ctx.caller, "kpis", ctx.now)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(KPI_COLUMNS)
    for row in report.payload.get("monthly") or []:
        writer.writerow(["" if row.get(k) is None else row.get(k) for k in KPI_COLUMNS])
    return out.getvalue()
