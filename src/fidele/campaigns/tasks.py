"""The flows' worker work: advancing due enrollments (a continuous loop in every worker
process, side by side) and the scheduled scans that enroll on dates and predictions."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from fidele.campaigns import engine, triggers
from fidele.worker.registry import continuous, job


@continuous("campaigns.advance")
def advance(factory: sessionmaker[Session], now: datetime) -> int:
    """Advance every enrollment due by ``now`` (disjoint claims across processes)."""
    return engine.advance_due(factory, now)


@job("campaigns.dates", every=timedelta(hours=1))
def dates(session: Session, now: datetime) -> int:
    """Enroll birthdays, first-order anniversaries and fixed dates of the last day."""
    return triggers.enroll_dates(session, now)


@job("campaigns.predictions", every=timedelta(hours=6))
def predictions(session: Session, now: datetime) -> int:
    """Enroll customers overdue on their own cadence (win-back)."""
    return triggers.enroll_predictions(session, now)
