"""The measurement side of a person's GDPR export and erasure: their opens and clicks (deleted
on erasure: the links they followed say what they looked at) and the orders credited to a
message (kept: ids and amounts only, like the orders themselves)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from fidele.customers.gdpr import Erasure, eraser, exporter
from fidele.customers.models import Customer
from fidele.kit.schemas import iso
from fidele.messaging.measure_models import MessageConversion, MessageInteraction


@exporter("message_tracking")
def export_tracking(session: Session, customer: Customer, now: datetime) -> dict[str, Any]:
    interactions = session.scalars(
        select(MessageInteraction)
        .where(MessageInteraction.customer_id == customer.id)
        .order_by(MessageInteraction.id)
    )
    credited = session.scalars(
        select(MessageConversion)
        .where(MessageConversion.customer_id == customer.id)
        .order_by(MessageConversion.id)
    )
    return {
        "opens_and_clicks": [
            {
                "message_id": i.send_id,
                "kind": i.kind,
                "url": i.url or None,
                "count": i.count,
                "first_at": iso(i.first_at),
                "last_at": iso(i.last_at),
            }
            for i in interactions
        ],
        "conversions": [
            {"message_id": c.send_id, "order_id": c.order_id, "touch": c.touch} for c in credited
        ],
    }


@eraser
def erase_tracking(session: Session, erasure: Erasure) -> None:
    session.execute(
        delete(MessageInteraction).where(MessageInteraction.customer_id == erasure.customer.id)
    )
