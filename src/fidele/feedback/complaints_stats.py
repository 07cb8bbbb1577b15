"""Measurement of complaints: rate per 100 orders, time to first response and to resolution,
SLA breaches and the retention of complainants against customers without a complaint."""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.feedback import complaints_domain as domain
from fidele.feedback.complaints_repository import ComplaintRepository
from fidele.tenancy.service import Caller


def _hours(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "mean": None, "median": None}  # type: ignore[dict-item]
    return {
        "n": len(values),  # type: ignore[dict-item]
        "mean": round(statistics.fmean(values), 2),
        "median": round(statistics.median(values), 2),
    }


def stats(
    session: Session, caller: Caller, now: datetime, *, since: datetime | None = None
) -> dict[str, Any]:
    """The figures of ``GET /v1/complaints/stats``. Rates and times count complaints opened
    since ``since`` (all when None); retention always looks at every resolution whose window
    has passed, as it needs the time after it."""
    repo = ComplaintRepository(session)
    every = repo.all_of(caller.merchant_id)
    rows = [r for r in every if since is None or r.opened_at >= since]
    orders = repo.order_count(caller.merchant_id, since, now)
    first = [
        (r.first_response_at - r.opened_at).total_seconds() / 3600
        for r in rows
        if r.first_response_at is not None
    ]
    resolved = [r for r in rows if r.status == "resolved" and r.closed_at is not None]
    by_category: dict[str, int] = {}
    for r in rows:
        by_category[r.category] = by_category.get(r.category, 0) + 1
    times: dict[int, list[datetime]] = {}
    for customer_id, placed in repo.order_times(caller.merchant_id):
        times.setdefault(customer_id, []).append(placed)
    closed = [
        domain.Resolved(
            r.customer_id,
            r.closed_at,
            r.gesture_kind or "none",
            (r.closed_at - r.opened_at).total_seconds() / 3600,
        )
        for r in every
        if r.status == "resolved" and r.closed_at is not None
    ]
    return {
        "since": since.isoformat() if since else None,
        "until": now.isoformat(),
        "complaints": len(rows),
        "orders": orders,
        "per_100_orders": round(100 * len(rows) / orders, 2) if orders else None,
        "by_category": dict(sorted(by_category.items())),
        "by_status": {s: sum(r.status == s for r in rows) for s in domain.STATUSES},
        "first_response_hours": _hours(first),
        "resolution_hours": _hours(
            [(r.closed_at - r.opened_at).total_seconds() / 3600 for r in resolved]  # type: ignore[operator]
        ),
        "sla_breaches": {
            "first_response": sum(
                domain.breached(r.first_response_due, r.first_response_at, now) for r in rows
            ),
            "resolution": sum(domain.breached(r.resolution_due, r.closed_at, now) for r in rows),
        },
        "retention": domain.retention(
            closed, times, now, complained={r.customer_id for r in every}
        ),
    }
