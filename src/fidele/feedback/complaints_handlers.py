"""Event subscriptions of complaints: a detractor's answer with a comment opens a complaint."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.events.bus import on_event
from fidele.events.models import Event
from fidele.feedback import complaints_service as service
from fidele.feedback.complaints_schemas import ComplaintIn
from fidele.orders.models import Order

DETRACTOR_MAX = 6  # NPS: 0-6 is a detractor


def detractor_comment(payload: dict[str, object]) -> str | None:
    """The comment of an NPS answer of 6 or less, if it has one (a CSAT answer, ``scale``
    ``csat``, is not an NPS score and opens nothing)."""
    score, comment = payload.get("score"), payload.get("comment")
    if payload.get("kind", payload.get("survey_kind", "nps")) != "nps":
        return None
    if isinstance(score, bool) or not isinstance(score, int) or score > DETRACTOR_MAX:
        return None
    if not isinstance(comment, str) or not comment.strip():
        return None
    return comment.strip()[:10_000]


# "survey.answered" as the brief names it; "survey_answered" as the events vocabulary does.
@on_event("survey.answered", "survey_answered")
def open_on_detractor(session: Session, event: Event, now: datetime) -> None:
    comment = detractor_comment(event.payload or {})
    if comment is None or event.customer_id is None:
        return
    customer = session.get(Customer, event.customer_id)
    if customer is None or customer.erased_at is not None:
        return
    order = session.get(Order, event.order_id) if event.order_id is not None else None
    data = ComplaintIn(
        customer_id=customer.external_id,
        order_id=order.external_id if order is not None else None,
        category="service",
        message=comment,
        channel="survey",
    )
    caller = service.system_caller(event.merchant_id, event.programme_id)
    service.open_complaint(
        session, caller, data, now, source="survey", source_ref=f"survey:{event.id}"
    )
