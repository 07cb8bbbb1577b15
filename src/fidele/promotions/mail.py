"""Emails of the promotions domain, queued in the outbox in the same transaction as what they
announce (the messaging domain delivers them; a rollback drops them with the change)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.outbox import service as outbox


def queue(
    session: Session,
    *,
    programme_id: int,
    merchant_id: int,
    topic: str,
    dedup_key: str,
    to: str,
    now: datetime,
    **payload: Any,
) -> None:
    """One email to ``to`` about ``topic``, queued once per ``dedup_key``."""
    outbox.enqueue(
        session,
        programme_id=programme_id,
        merchant_id=merchant_id,
        channel="email",
        topic=topic,
        dedup_key=dedup_key,
        now=now,
        payload={"to": to, **payload},
    )
