from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from fidele.dashboard import journeys_report
from fidele.worker.registry import job


@job("dashboard.journeys_report", every=journeys_report.EVERY, standalone=True)
def journeys_report_job(factory: sessionmaker[Session], now: datetime) -> int:
    """The overview's "what the journeys brought this month", for every merchant."""
    return journeys_report.refresh_all(factory, now)
