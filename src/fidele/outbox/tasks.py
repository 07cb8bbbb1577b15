from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from fidele.outbox.service import deliver_due
from fidele.worker.registry import job


@job("outbox.deliver", every=timedelta(seconds=10), standalone=True)
def deliver(factory: sessionmaker[Session], now: datetime) -> int:
    """Deliver the due outbox messages one by one (``fidele worker --once``). Running workers
    skip this job (``runner.CONTINUOUS``): their DeliveryLoop drains the outbox continuously."""
    return deliver_due(factory, now)
