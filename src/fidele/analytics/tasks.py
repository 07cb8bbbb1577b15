from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from fidele.analytics import service
from fidele.worker.registry import job


@job("analytics.refresh", every=timedelta(days=1))
def refresh(session: Session, now: datetime) -> int:
    """Every merchant's customer insights and shop reports, once a day."""
    return len(service.refresh_all(session, now))
