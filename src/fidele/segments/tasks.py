from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from fidele.kit.clock import FrozenClock
from fidele.segments import membership
from fidele.worker.registry import job


@job("segments.update_members", every=timedelta(seconds=5), standalone=True)
def update_members(factory: sessionmaker[Session], now: datetime) -> int:
    """Re-evaluate the customers whose own events marked them dirty (``fidele worker --once``);
    running workers skip this job: their MembershipLoop does it continuously."""
    return membership.drain(factory, FrozenClock(now))


@job("segments.refresh", every=timedelta(minutes=15))
def refresh(session: Session, now: datetime) -> int:
    """Recompute segments that move with the clock alone, those on newer insights, and every
    segment not computed for a day (rows written in bulk, without events)."""
    return membership.refresh(session, now)
