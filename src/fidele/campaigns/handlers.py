"""Every event may enroll its customer in a flow, end an enrollment on its goal or end a
wait for it (in the event's own transaction)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fidele.campaigns import triggers
from fidele.events.bus import on_event
from fidele.events.models import Event


@on_event("*")
def flows_on_event(session: Session, event: Event, now: datetime) -> None:
    triggers.on_event(session, event, now)
