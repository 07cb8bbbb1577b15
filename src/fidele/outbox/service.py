"""Queue messages in the caller's transaction; deliver them later through pluggable senders.

A sender for a channel is registered with :func:`sender`; it raises to signal a failed
attempt (retried with backoff, then marked ``dead`` after ``MAX_ATTEMPTS``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fidele.db.engine import READONLY
from fidele.db.session import transaction
from fidele.kit.plugins import load_everything
from fidele.kit.repository import insert_or_twin
from fidele.outbox.domain import MAX_ATTEMPTS, backoff, redact
from fidele.outbox.models import OutboxMessage
from fidele.outbox.repository import OutboxRepository

log = logging.getLogger("fidele.outbox")
Sender = Callable[[Session, OutboxMessage], None]
senders: dict[str, Sender] = {}
# A claim is short and renewed every LEASE / 3 while its attempt runs (DeliveryLoop): a message
# claimed by a worker that died is attempted again by another within LEASE.
LEASE = timedelta(seconds=15)


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


Outcome = tuple[OutboxMessage, str | None]  # a claimed message, its failure or None if sent


def deliver_due(factory: sessionmaker[Session], now: datetime) -> int:
    """Deliver every message due at ``now``, one after the other, until none is left (the
    ``outbox.deliver`` job of ``fidele worker --once``; the running worker delivers through the
    concurrent loop of :mod:`fidele.outbox.delivery`). Each is claimed just before its attempt,
    as nothing renews the claims here. Returns how many were sent."""
    load_everything()  # every channel's sender, whatever this process imported before
    sent = 0
    while claimed := claim_due(factory, now, 1):
        sent += record(factory, [(claimed[0], attempt(factory, claimed[0]))], now)
    return sent


def claim_due(factory: sessionmaker[Session], now: datetime, limit: int) -> list[OutboxMessage]:
    """Take up to ``limit`` due messages for this process for :data:`LEASE` (own transaction);
    they come back detached, loaded, for :func:`attempt`."""
    with transaction(factory) as session:
        return OutboxRepository(session).claim_due(now, limit, LEASE)


def renew_claims(factory: sessionmaker[Session], ids: list[int], now: datetime) -> None:
    """Extend this process's claims on messages whose attempt is still running."""
    with transaction(factory) as session:
        OutboxRepository(session).renew(ids, now + LEASE)


def attempt(factory: sessionmaker[Session], msg: OutboxMessage) -> str | None:
    """Run the channel's sender on a claimed message; the failure as text, or None when sent.
    The sender reads what it needs in a read-only transaction: on SQLite it must not hold the
    write lock through an HTTP call."""
    send = senders.get(msg.channel)
    try:
        if send is None:
            raise LookupError(f"no sender for channel {msg.channel!r}")
        with _reading(factory) as session:
            send(session, msg)
    except Exception as exc:  # any failure of a sender is a failed attempt, retried later
        return f"{type(exc).__name__}: {exc}"[:2000]
    return None


def record(factory: sessionmaker[Session], outcomes: list[Outcome], now: datetime) -> int:
    """Write the outcomes of attempts in one transaction: sent, or retried after a backoff, or
    ``dead`` after MAX_ATTEMPTS. A crash between an attempt and this leaves the message claimed
    until its lease ends, then it is attempted again: delivery is at least once, and receivers
    deduplicate on the message id. Returns how many were sent."""
    # a sent message keeps only a redacted payload (no spendable code, no address), so a read
    # of the table after delivery leaks neither
    sent = [(msg.id, redact(msg.payload)) for msg, error in outcomes if error is None]
    with transaction(factory) as session:
        repo = OutboxRepository(session)
        repo.mark_sent(sent, now)
        for msg, error in outcomes:
            if error is not None:
                _failed(repo, msg, error, now)
    return len(sent)


def _failed(repo: OutboxRepository, msg: OutboxMessage, error: str, now: datetime) -> None:
    attempts = msg.attempts + 1
    dead = attempts >= MAX_ATTEMPTS
    retry_at = msg.next_attempt_at if dead else now + backoff(attempts)
    repo.mark_failed(msg.id, attempts=attempts, error=error, dead=dead, retry_at=retry_at)
    log.warning("outbox %s attempt %s failed: %s", msg.id, attempts, error)


@contextmanager
def _reading(factory: sessionmaker[Session]) -> Iterator[Session]:
    session = factory()
    try:
        session.connection(execution_options={READONLY: True})
        yield session
    finally:
        session.rollback()
        session.close()


def purge_finished(session: Session, now: datetime, retention: timedelta) -> int:
    """Delete sent messages sent, and dead ones created, more than ``retention`` ago; returns
    how many. Their dedup keys go with them: every producer is idempotent upstream too (a
    card, lot or coupon is created once), so nothing is queued again after the purge."""
    return OutboxRepository(session).delete_finished_before(now - retention)
