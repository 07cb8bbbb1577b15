"""The overview's "what the journeys brought this month", precomputed: comparing a big shop's
journey messages against their holdouts reads every ledger row of the month, too slow for a
page. The job stores it hourly as the analytics report ``journeys``; the page shows the stored
one with its time, or computes it when none of this month is stored yet."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fidele.analytics.repository import AnalyticsRepository
from fidele.campaigns.repository import FlowRepository
from fidele.dashboard.journeys_repository import flows_with_messages_since
from fidele.db.session import read_only, transaction
from fidele.messaging import stats
from fidele.tenancy.service import list_merchants

KIND = "journeys"
EVERY = timedelta(hours=1)


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def compute(session: Session, merchant_id: int, now: datetime) -> dict[str, Any]:
    """``stats.journeys_lift`` of the merchant's flows since the first of this month."""
    since = month_start(now)
    listed = [(f.id, f.name) for f in FlowRepository(session).listing(merchant_id)]
    busy = flows_with_messages_since(session, merchant_id, since)
    out = stats.journeys_lift(session, merchant_id, [f for f in listed if f[0] in busy], since)
    out["flows"] += [
        {"flow_id": i, "flow": name, "holdout": None} for i, name in listed if i not in busy
    ]
    out["since"] = out["since"].isoformat()
    return out


def store(session: Session, merchant_id: int, payload: dict[str, Any], now: datetime) -> None:
    AnalyticsRepository(session).replace_report(merchant_id, KIND, payload, now)


def read(session: Session, merchant_id: int, now: datetime) -> dict[str, Any]:
    """The stored report of this month (with ``computed_at``), else one computed now."""
    stored = AnalyticsRepository(session).report(merchant_id, KIND)
    if stored is not None and stored.computed_at >= month_start(now):
        return {**stored.payload, "computed_at": stored.computed_at}
    return {**compute(session, merchant_id, now), "computed_at": now}


def refresh_all(factory: sessionmaker[Session], now: datetime) -> int:
    """Every merchant's report: read in a read-only transaction, stored in a short one."""
    reader = read_only(factory)
    with transaction(reader) as session:
        ids = [m.id for m in list_merchants(session)]
    for merchant_id in ids:
        with transaction(reader) as session:
            payload = compute(session, merchant_id, now)
        with transaction(factory) as session:
            store(session, merchant_id, payload, now)
    return len(ids)
