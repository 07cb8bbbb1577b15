"""Appending to the event log, with idempotency, and publishing to subscribed domains."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fidele.errors import IdempotencyConflict
from fidele.events import bus
from fidele.events.domain import payload_hash
from fidele.events.models import Event
from fidele.events.repository import EventRepository
from fidele.tenancy.service import Caller


def record(
    session: Session,
    caller: Caller,
    *,
    type: str,
    occurred_at: datetime,
    now: datetime,
    source: str,
    payload: dict[str, Any],
    customer_id: int | None = None,
    order_id: int | None = None,
    idempotency_key: str | None = None,
    dispatch: bool = True,
) -> tuple[Event, bool]:
    """Append one event; return ``(event, created)``.

    With an idempotency key, a replay of the same payload returns the first event unchanged
    (``created`` False) and a different payload under the same key raises a 409."""
    digest = payload_hash(payload)
    repo = EventRepository(session)
    if idempotency_key is not None:
        existing = repo.by_idempotency_key(caller.merchant_id, idempotency_key)
        if existing is not None:
            if existing.payload_hash != digest:
                raise IdempotencyConflict(
                    f"idempotency key {idempotency_key!r} was used with a different body"
                )
            return existing, False
    if dispatch and customer_id is not None:
        bus.guard_append(session, caller.programme_id, type, customer_id, now)
    event = Event(
        merchant_id=caller.merchant_id,
        programme_id=caller.programme_id,
        customer_id=customer_id,
        order_id=order_id,
        type=type,
        source=source,
        occurred_at=occurred_at,
        received_at=now,
        idempotency_key=idempotency_key,
        payload_hash=digest,
        payload=payload,
    )
    if idempotency_key is None:  # nothing unique to race on: no savepoint (2 round trips)
        repo.add(event)
        if dispatch:
            bus.dispatch(session, event, now)
        return event, True
    try:
        with session.begin_nested():  # a concurrent twin may insert the same key first
            repo.add(event)
    except IntegrityError:
        if idempotency_key is None:
            raise
        twin = repo.by_idempotency_key(caller.merchant_id, idempotency_key)
        if twin is None or twin.payload_hash != digest:
            raise IdempotencyConflict(
                f"idempotency key {idempotency_key!r} was used with a different body"
            ) from None
        return twin, False
    if dispatch:
        bus.dispatch(session, event, now)
    return event, True


def record_many(
    session: Session,
    caller: Caller,
    *,
    type: str,
    now: datetime,
    source: str,
    items: list[tuple[int, dict[str, Any]]],
) -> list[Event]:
    """Append one event of ``type`` per ``(customer_id, payload)`` (no idempotency key) in
    one INSERT, then publish each to the subscribed domains, in order: what :func:`record`
    does for each, in one round trip instead of one per event (segments announce hundreds of
    entries at once)."""
    for customer_id, _ in items:
        bus.guard_append(session, caller.programme_id, type, customer_id, now)
    events = [
        Event(
            merchant_id=caller.merchant_id,
            programme_id=caller.programme_id,
            customer_id=customer_id,
            type=type,
            source=source,
            occurred_at=now,
            received_at=now,
            payload_hash=payload_hash(payload),
            payload=payload,
        )
        for customer_id, payload in items
    ]
    session.add_all(events)
    session.flush()
    bus.dispatch_many(session, events, now)
    return events
