"""Outward signals of loyalty changes: an event in the log (for other features) and an
outgoing webhook. A replay rebuilds state silently: nothing is re-announced."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.loyalty.models import Member

REPLAY = "loyalty_replay"
LOGGED = {"loyalty.tier_changed", "loyalty.points_expiring"}


def replaying(session: Session) -> bool:
    return bool(session.info.get(REPLAY))


def emit(
    session: Session,
    member: Member,
    *,
    merchant_id: int,
    topic: str,
    dedup: str,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    if replaying(session):
        return
    from fidele.webhooks import service as webhooks

    body = {"member_id": member.id, **payload}
    if topic in LOGGED:
        _log(session, member, merchant_id, topic, dedup, body, now)
    webhooks.publish(
        session,
        programme_id=member.programme_id,
        merchant_id=merchant_id,
        topic=topic,
        payload=body,
        dedup_key=f"{topic}:{dedup}",
        now=now,
    )


def _log(
    session: Session,
    member: Member,
    merchant_id: int,
    topic: str,
    dedup: str,
    body: dict[str, Any],
    now: datetime,
) -> None:
    from fidele.events import service as events
    from fidele.tenancy.service import Caller

    caller = Caller(merchant_id, member.programme_id, None, frozenset())
    events.record(
        session,
        caller,
        type=topic,
        occurred_at=now,
        now=now,
        source="loyalty",
        payload=body,
        idempotency_key=f"{topic}:{dedup}",
    )
