"""The outbox's part of a person's erasure: queued and kept messages about them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from fidele.customers.gdpr import ERASED, Erasure, contains, eraser, scrub
from fidele.outbox.domain import PERSONAL_KEYS, SECRET_KEYS
from fidele.outbox.repository import OutboxRepository


@eraser
def erase_messages(session: Session, erasure: Erasure) -> None:
    """Messages naming the person (their address or their id) are redacted; an email to them
    not yet sent is cancelled (``dead``), since it could only carry what was erased."""
    customer = erasure.customer
    needles = erasure.emails | {erasure.old_external_id.strip().lower()}
    replace = {erasure.old_external_id: customer.external_id} | dict.fromkeys(
        erasure.emails, ERASED
    )
    for msg in OutboxRepository(session).of_programme(customer.programme_id, customer.merchant_id):
        if not contains(msg.payload, needles):
            continue
        if msg.status == "pending" and msg.channel == "email":
            msg.status, msg.last_error = "dead", "recipient erased"
        msg.payload = scrub(msg.payload, PERSONAL_KEYS | SECRET_KEYS, replace)
