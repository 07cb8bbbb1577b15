"""Keeps consents in step with the customer profile's ``email_marketing`` flag: a shop that
still sends ``consent.email_marketing`` in ``PUT /v1/customers/{id}`` (or an importer) grants or
withdraws the ``newsletter`` and ``lifecycle`` topics by email, as the migration did for the
flags already stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fidele.events import domain as ev
from fidele.events.bus import on_event
from fidele.events.models import Event
from fidele.messaging import conversions
from fidele.messaging.consent import FLAG_TOPICS, set_consent
from fidele.orders.models import Order


@on_event(ev.CUSTOMER_UPSERTED)
def sync_email_marketing(session: Session, event: Event, now: datetime) -> None:
    change = (event.payload or {}).get("email_marketing")
    if not isinstance(change, dict) or event.customer_id is None:
        return
    at = datetime.fromisoformat(change["at"]) if change.get("at") else now
    for topic in FLAG_TOPICS:
        set_consent(
            session,
            merchant_id=event.merchant_id,
            customer_id=event.customer_id,
            topic=topic,
            channel="email",
            granted=bool(change.get("value")),
            source=change.get("source") or "email_marketing",
            now=at,
        )


@on_event(ev.ORDER_PLACED)
def attribute_conversion(session: Session, event: Event, now: datetime) -> None:
    """Credit the order to the message the customer last clicked or opened, if any."""
    order = None if event.order_id is None else session.get(Order, event.order_id)
    if order is not None:
        conversions.attribute(session, order)
