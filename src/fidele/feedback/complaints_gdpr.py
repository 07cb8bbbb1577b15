"""Complaints' part of a person's GDPR export and erasure. Erasure blanks what the customer
and the merchant wrote (message, notes, resolution) and closes what was open; the rows stay,
without personal data, so the complaint figures keep counting them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.gdpr import Erasure, eraser, exporter
from fidele.customers.models import Customer
from fidele.feedback import complaints_domain as domain
from fidele.feedback.complaints_repository import ComplaintRepository

ERASED = "[erased]"


@exporter("complaints")
def export_complaints(session: Session, customer: Customer, now: datetime) -> list[dict[str, Any]]:
    repo = ComplaintRepository(session)
    return [
        {
            "id": c.id,
            "category": c.category,
            "message": c.message,
            "channel": c.channel,
            "status": c.status,
            "opened_at": c.opened_at.isoformat(),
            "closed_at": c.closed_at.isoformat() if c.closed_at else None,
            "resolution": c.resolution,
            "gesture": c.gesture_kind,
            "notes": [n.body for n in repo.notes(c.id)],
        }
        for c in repo.of_customer(customer.id)
    ]


@eraser
def erase_complaints(session: Session, erasure: Erasure) -> None:
    repo = ComplaintRepository(session)
    for c in repo.of_customer(erasure.customer.id):
        c.message, c.resolution = ERASED, None
        if c.status in domain.OPEN_STATUSES:
            c.status, c.closed_at = "rejected", erasure.now
        c.updated_at = erasure.now
        for note in repo.notes(c.id):
            note.body, note.author = ERASED, None
    session.flush()
