"""Every event may enroll its customer in a flow, end an enrollment on its goal or end a
wait for it (in the event's own transaction)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from fidele.campaigns import triggers
from fidele.events.bus import before_batch, on_event
from fidele.events.models import Event


@on_event("*")
def flows_on_event(session: Session, event: Event, now: datetime) -> None:
    triggers.on_event(session, event, now)


@before_batch
def prefetch_enrollments(
    session: Session, events: Sequence[Event], now: datetime
) -> Callable[[], None] | None:
    """A batch of events (segments announce hundreds of entries at once): the active
    enrollments of its customers read and locked in one query, not one per event."""
    return triggers.prefetch(session, events)
