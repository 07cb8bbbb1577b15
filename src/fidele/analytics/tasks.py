from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from fidele.analytics import service
from fidele.db.session import read_only, transaction
from fidele.tenancy.service import list_merchants
from fidele.worker.registry import job


@job("analytics.refresh", every=timedelta(days=1), standalone=True)
def refresh(factory: sessionmaker[Session], now: datetime) -> int:
    """Every merchant's customer insights and shop reports, once a day: each merchant read and
    computed in a read-only transaction, then stored in a short one of its own (on SQLite,
    requests do not wait for the computation)."""
    reader = read_only(factory)
    with transaction(reader) as session:
        ids = [m.id for m in list_merchants(session)]
    for merchant_id in ids:
        with transaction(reader) as session:
            computed = service.compute(session, merchant_id, now)
        with transaction(factory) as session:
            service.store(session, computed)
    return len(ids)
