"""Queue messages in the caller's transaction; deliver them later through pluggable senders.

A sender for a channel is registered with :func:`sender`; it raises to signal a failed
attempt (retried with backoff, then marked ``dead`` after ``MAX_ATTEMPTS``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fidele.db.session import transaction
from fidele.kit.repository import insert_or_twin
from fidele.outbox.domain import MAX_ATTEMPTS, backoff, redact
from fidele.outbox.models import OutboxMessage
from fidele.outbox.repository import OutboxRepository

log = logging.getLogger("fidele.outbox")
Sender = Callable[[Session, OutboxMessage], None]
senders: dict[str, Sender] = {}
LEASE = timedelta(minutes=2)


def sender(channel: str) -> Callable[[Sender], Sender]:
    def register(fn: Sender) -> Sender:
        senders[channel] = fn
        return fn

    return register


def enqueue(
    session: Session,
    *,
    programme_id: int,
    channel: str,
    topic: str,
    dedup_key: str,
    payload: dict[str, Any],
    now: datetime,
    merchant_id: int | None = None,
) -> OutboxMessage:
    """Queue a message (idempotent on ``dedup_key``); it leaves only if the caller commits."""
    repo = OutboxRepository(session)
    found = repo.by_dedup_key(dedup_key)
    if found is not None:
        return found
    msg = OutboxMessage(
        programme_id=programme_id,
        merchant_id=merchant_id,
        channel=channel,
        topic=topic,
        dedup_key=dedup_key,
        payload=payload,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    if insert_or_twin(session, msg):
        return msg
    twin = repo.by_dedup_key(dedup_key)
    assert twin is not None, f"outbox {dedup_key} refused as a duplicate but not found"
    return twin


def deliver_due(factory: sessionmaker[Session], now: datetime, *, limit: int = 200) -> int:
    """Deliver due messages, each in its own transaction; returns how many were sent."""
    with transaction(factory) as session:
        ids = OutboxRepository(session).due_ids(now, limit)
    sent = 0
    for message_id in ids:
        with transaction(factory) as session:
            if not OutboxRepository(session).claim(message_id, now, LEASE):
                continue
        with transaction(factory) as session:
            msg = session.get(OutboxMessage, message_id)
            if msg is None:
                continue
            sent += _attempt(session, msg, now)
    return sent


def _attempt(session: Session, msg: OutboxMessage, now: datetime) -> int:
    send = senders.get(msg.channel)
    msg.attempts += 1
    msg.locked_until = None
    try:
        if send is None:
            raise LookupError(f"no sender for channel {msg.channel!r}")
        send(session, msg)
    except Exception as exc:  # any failure of a sender is a failed attempt, retried later
        msg.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if msg.attempts >= MAX_ATTEMPTS:
            msg.status = "dead"
        else:
            msg.next_attempt_at = now + backoff(msg.attempts)
        log.warning("outbox %s attempt %s failed: %s", msg.id, msg.attempts, msg.last_error)
        return 0
    mark_sent(msg, now)
    return 1


def mark_sent(msg: OutboxMessage, now: datetime) -> None:
    """The message left: record it, and keep only a redacted payload (no spendable code, no
    address) so a read of the table after delivery leaks neither."""
    msg.status, msg.sent_at, msg.last_error = "sent", now, None
    msg.payload = redact(msg.payload)


def purge_finished(session: Session, now: datetime, retention: timedelta) -> int:
    """Delete sent messages sent, and dead ones created, more than ``retention`` ago; returns
    how many. Their dedup keys go with them: every producer is idempotent upstream too (a
    card, lot or coupon is created once), so nothing is queued again after the purge."""
    return OutboxRepository(session).delete_finished_before(now - retention)


@sender("email")
def log_email(_: Session, msg: OutboxMessage) -> None:
    """Development sender: emails are logged, not sent (a real sender replaces this)."""
    log.info("email %s to %s", msg.topic, msg.payload.get("to"))
