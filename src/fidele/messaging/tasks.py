"""Scheduled jobs of messaging."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from fidele.messaging import recommendations
from fidele.worker.registry import job


@job("messaging.recommendations", every=timedelta(hours=6))
def refresh_recommendations(session: Session, now: datetime) -> int:
    """Recompute "bought together" for every merchant whose orders changed since last time."""
    return recommendations.refresh_due(session, now)
