from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from fidele.outbox.service import deliver_due
from fidele.worker.registry import job


@job("outbox.deliver", every=timedelta(seconds=10), standalone=True)
def deliver(factory: sessionmaker[Session], now: datetime) -> int:
    """Deliver due outbox messages, each in its own short transaction."""
    return deliver_due(factory, now)
