"""Scheduled jobs of complaints and delivery experience."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from fidele.feedback import complaints_service, delivery_service
from fidele.worker.registry import job


@job("complaints.digest", every=timedelta(hours=1))
def digest(session: Session, now: datetime) -> int:
    """The daily ``complaints.digest`` webhook: hourly runs, one per merchant and local day
    (the outbox drops the day's repeats)."""
    return complaints_service.digest(session, now)


@job("delivery.check_late", every=timedelta(days=1))
def check_late(session: Session, now: datetime) -> int:
    """Judge deliveries whose dates were written without an ``order.delivered`` event."""
    return delivery_service.check_due(session, now)
