"""The overview's slow parts, precomputed for a big shop (a 1,000,000-customer shop took
1.4 s to render the overview live, 0.9 s of it the points liability's sum over every lot):

- "what the journeys brought this month": comparing the journeys' messages against their
  holdouts reads every ledger row of the month. Stored as the analytics report ``journeys``;
  the page shows the stored one of this month with its time, or computes it.
- the points liability and the average CLV: stored as the report ``overview``; the page
  reads it while it is fresh (``FRESH``) and shows its time, else computes them live.

The job (``dashboard.journeys_report``, hourly) stores both for every merchant."""

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
OVERVIEW = "overview"
EVERY = timedelta(hours=1)
FRESH = 2 * EVERY  # one missed run is still fresh enough


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


def compute_overview(session: Session, merchant_id: int, now: datetime) -> dict[str, Any]:
    """``loyalty.reports.liability`` and the average stored CLV, as the overview shows them."""
    from fidele.dashboard.repository import CustomerSearch
    from fidele.loyalty import reports
    from fidele.tenancy.service import get_merchant

    programme_id = get_merchant(session, merchant_id).programme_id
    return {
        "liability": reports.liability(session, programme_id, now),
        "average_clv": CustomerSearch(session).average_clv(merchant_id),
    }


def read_overview(session: Session, merchant_id: int, now: datetime) -> dict[str, Any] | None:
    """The stored liability and average CLV (with ``computed_at``) while fresh, else None."""
    stored = AnalyticsRepository(session).report(merchant_id, OVERVIEW)
    if stored is None or not now - FRESH <= stored.computed_at <= now:
        return None
    return {**stored.payload, "computed_at": stored.computed_at}


def refresh_all(factory: sessionmaker[Session], now: datetime) -> int:
    """Every merchant's report: read in a read-only transaction, stored in a short one."""
    reader = read_only(factory)
    with transaction(reader) as session:
        ids = [m.id for m in list_merchants(session)]
    for merchant_id in ids:
        with transaction(reader) as session:
            payload = compute(session, merchant_id, now)
            overview = compute_overview(session, merchant_id, now)
        with transaction(factory) as session:
            store(session, merchant_id, payload, now)
            AnalyticsRepository(session).replace_report(merchant_id, OVERVIEW, overview, now)
    return len(ids)
