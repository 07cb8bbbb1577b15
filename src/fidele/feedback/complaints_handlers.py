"""Event subscriptions of complaints: a detractor's answer with a comment opens a complaint."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.events.bus import on_event
from fidele.events.models import Event
from fidele.feedback import complaints_service as service
from fidele.feedback.complaints_repository import ComplaintRepository
from fidele.feedback.complaints_schemas import ComplaintIn
from fidele.orders.models import Order

DETRACTOR_MAX = 6  # NPS: 0-6 is a detractor


def detractor_comment(payload: dict[str, object]) -> str | None:
    """The comment of a dissatisfied answer, if it has one: the survey's own verdict
    (``detractor_comment``: an NPS of 0-6 or a CSAT of 1-2 with a comment) when the event
    carries it, else an NPS score of 6 or less with a comment."""
    comment = payload.get("comment")
    if not isinstance(comment, str) or not comment.strip():
        return None
    verdict = payload.get("detractor_comment")
    if isinstance(verdict, bool):
        return comment.strip()[:10_000] if verdict else None
    score = payload.get("score")
    if payload.get("kind", "nps") != "nps":
        return None
    if isinstance(score, bool) or not isinstance(score, int) or score > DETRACTOR_MAX:
        return None
    return comment.strip()[:10_000]


# ``survey_answered`` (the vocabulary's type: a first answer), ``survey.answer_updated`` (a
# changed answer: a passive who becomes a detractor) and ``survey.answered`` (the webhook's
# spelling, should a shop record it itself).
@on_event("survey_answered", "survey.answer_updated", "survey.answered")
def open_on_detractor(session: Session, event: Event, now: datetime) -> None:
    """One complaint per answer (``answer_id``; per event without one): a changed answer
    whose complaint exists opens nothing more, and never fails the answer."""
    payload = event.payload or {}
    comment = detractor_comment(payload)
    if comment is None or event.customer_id is None:
        return
    answer = payload.get("answer_id")
    ref = f"survey_answer:{answer}" if isinstance(answer, int) else f"survey:{event.id}"
    if ComplaintRepository(session).by_source_ref(event.merchant_id, ref) is not None:
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
    service.open_complaint(session, caller, data, now, source="survey", source_ref=ref)
