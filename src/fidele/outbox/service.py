"""Queue messages in the caller's transaction; deliver them later through pluggable senders.

A sender for a channel is registered with :func:`sender`; it raises to signal a failed
attempt (retried with backoff, then marked ``dead`` after ``MAX_ATTEMPTS``). A channel may also
register a :func:`preparer`, called once per claimed batch before its attempts, to read in one
query what the batch's senders will need (the webhook channel warms its endpoint cache)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fidele.db.session import read_only, transaction
from fidele.kit.plugins import load_everything
from fidele.kit.repository import insert_or_twin
from fidele.outbox.domain import MAX_ATTEMPTS, backoff, redact
from fidele.outbox.models import OutboxMessage
from fidele.outbox.repository import OutboxRepository

log = logging.getLogger("fidele.outbox")
Sender = Callable[[Session, OutboxMessage], None]
senders: dict[str, Sender] = {}
Preparer = Callable[[Session, list[OutboxMessage]], None]
preparers: dict[str, Preparer] = {}
# A claim is short and renewed every LEASE / 3 while its attempt runs (DeliveryLoop): a message
# claimed by a worker that died is attempted again by another within LEASE.
LEASE = timedelta(seconds=15)


def sender(channel: str) -> Callable[[Sender], Sender]:
    def register(fn: Sender) -> Sender:
        senders[channel] = fn
        return fn

    return register


def preparer(channel: str) -> Callable[[Preparer], Preparer]:
    def register(fn: Preparer) -> Preparer:
        preparers[channel] = fn
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
    reader = read_only(factory)
    sent = 0
    while claimed := claim_due(factory, now, 1):
        sent += record(factory, [(claimed[0], attempt(reader, claimed[0]))], now)
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


def prepare(reader: sessionmaker[Session], claimed: list[OutboxMessage]) -> None:
    """Let each channel's :func:`preparer` read what its senders will need for ``claimed``,
    in one read-only session. A failure is logged only: each sender reads for itself then."""
    by_channel: dict[str, list[OutboxMessage]] = {}
    for msg in claimed:
        if msg.channel in preparers:
            by_channel.setdefault(msg.channel, []).append(msg)
    if not by_channel:
        return
    try:
        with _reading(reader) as session:
            for channel, msgs in by_channel.items():
                preparers[channel](session, msgs)
    except Exception:
        log.exception("outbox preparation of %s messages failed", len(claimed))


def attempt(reader: sessionmaker[Session], msg: OutboxMessage) -> str | None:
    """Run the channel's sender on a claimed message; the failure as text, or None when sent.
    ``reader`` is a :func:`~fidele.db.session.read_only` factory: the sender reads what it
    needs, if anything (its cache may hold it all), in a transaction that only reads: on SQLite
    it must not hold the write lock through an HTTP call. A session that runs no query takes
    no connection."""
    send = senders.get(msg.channel)
    try:
        if send is None:
            raise LookupError(f"no sender for channel {msg.channel!r}")
        with _reading(reader) as session:
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
    # (None: nothing to redact, the payload stays as it is)
    sent = [(msg.id, _redacted(msg.payload)) for msg, error in outcomes if error is None]
    with transaction(factory) as session:
        repo = OutboxRepository(session)
        repo.mark_sent(sent, now)
        for msg, error in outcomes:
            if error is not None:
                _failed(repo, msg, error, now)
    return len(sent)


def _redacted(payload: dict[str, Any]) -> dict[str, Any] | None:
    redacted = redact(payload)
    return None if redacted == payload else redacted


def _failed(repo: OutboxRepository, msg: OutboxMessage, error: str, now: datetime) -> None:
    attempts = msg.attempts + 1
    dead = attempts >= MAX_ATTEMPTS
    retry_at = msg.next_attempt_at if dead else now + backoff(attempts)
    repo.mark_failed(msg.id, attempts=attempts, error=error, dead=dead, retry_at=retry_at)
    log.warning("outbox %s attempt %s failed: %s", msg.id, attempts, error)


@contextmanager
def _reading(reader: sessionmaker[Session]) -> Iterator[Session]:
    session = reader()
    try:
        yield session
    finally:
        session.close()  # rolls back what it read, if it read anything


def purge_finished(session: Session, now: datetime, retention: timedelta) -> int:
    """Delete sent messages sent, and dead ones created, more than ``retention`` ago; returns
    how many. Their dedup keys go with them: every producer is idempotent upstream too (a
    card, lot or coupon is created once), so nothing is queued again after the purge."""
    return OutboxRepository(session).delete_finished_before(now - retention)
