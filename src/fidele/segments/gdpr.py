"""The segments domain's part of a person's GDPR export and erasure: which segments they are
in. Erasure drops their memberships and pending re-evaluation (the ``segment.*`` events in
the log hold no personal data: segment id and name)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.gdpr import Erasure, eraser, exporter
from fidele.customers.models import Customer
from fidele.segments.repository import SegmentRepository


@exporter("segments")
def export_segments(session: Session, customer: Customer, now: datetime) -> list[dict[str, Any]]:
    return SegmentRepository(session).memberships_of(customer.id)


@eraser
def erase_segments(session: Session, erasure: Erasure) -> None:
    left = SegmentRepository(session).forget_customer(erasure.customer.id)
    for segment_id in left:
        SegmentRepository(session).bump_count(segment_id, -1)
