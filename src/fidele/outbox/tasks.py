from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from fidele.outbox.service import deliver_due, purge_finished
from fidele.settings import get_settings
from fidele.worker.registry import job


@job("outbox.deliver", every=timedelta(seconds=10), standalone=True)
def deliver(factory: sessionmaker[Session], now: datetime) -> int:
    """Deliver the due outbox messages one by one (``fidele worker --once``). Running workers
    skip this job (``runner.CONTINUOUS``): their DeliveryLoop drains the outbox continuously."""
    return deliver_due(factory, now)


@job("outbox.purge_sent", every=timedelta(days=1))
def purge_sent(session: Session, now: datetime) -> int:
    """Delete sent and dead messages older than ``FIDELE_OUTBOX_RETENTION_DAYS``."""
    return purge_finished(session, now, timedelta(days=get_settings().outbox_retention_days))
