"""Messaging's part of a person's GDPR export and erasure: consents, the send ledger, the
suppression of their address."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.gdpr import ERASED, Erasure, eraser, exporter
from fidele.customers.models import Customer
from fidele.kit.schemas import iso
from fidele.messaging.repository import ConsentRepository, SendRepository, SuppressionRepository


@exporter("messaging")
def export_messaging(session: Session, customer: Customer, now: datetime) -> dict[str, Any]:
    """Consents with their time and source, and every message decided for the person."""
    return {
        "consents": [
            {
                "topic": c.topic,
                "channel": c.channel,
                "granted": c.granted,
                "at": iso(c.at),
                "source": c.source,
            }
            for c in ConsentRepository(session).of_customer(customer.merchant_id, customer.id)
        ],
        "messages": [
            {
                "id": s.id,
                "topic": s.topic,
                "channel": s.channel,
                "status": s.status,
                "reason": s.reason,
                "created_at": iso(s.created_at),
                "sent_at": iso(s.sent_at),
            }
            for s in SendRepository(session).of_customer(customer.id)
        ],
    }


@eraser
def erase_messaging(session: Session, erasure: Erasure) -> None:
    """The ledger keeps its rows (stats stay right) without the address or the personal
    context; a message not yet sent is cancelled; consents are withdrawn (an erased person is
    sent nothing); the suppression row of the address is deleted: it names the address, and
    the customer row that could receive mail no longer has one."""
    customer = erasure.customer
    for row in SendRepository(session).of_customer(customer.id):
        row.context, row.to_address = {}, (ERASED if row.to_address else None)
        if row.status == "queued":
            row.status, row.reason = "skipped", "erased"
    for c in ConsentRepository(session).of_customer(customer.merchant_id, customer.id):
        c.granted, c.source, c.at = False, "erased", erasure.now
    repo = SuppressionRepository(session)
    for address in erasure.emails:
        found = repo.find(customer.merchant_id, "email", address)
        if found is not None:
            session.delete(found)
    session.flush()


from fidele.messaging import measure_gdpr  # noqa: E402, F401  (opens, clicks, conversions)
