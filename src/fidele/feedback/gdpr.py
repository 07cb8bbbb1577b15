"""Feedback's part of a person's GDPR export and erasure: their survey answers and reviews.
Erasure blanks the free texts (comments, form texts, review texts) here and in their
feedback events; scores and ratings stay, so results and averages do not move."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.gdpr import ERASED, Erasure, eraser, exporter, scrub
from fidele.customers.models import Customer
from fidele.events.repository import EventRepository
from fidele.feedback import domain, siblings
from fidele.feedback.repository import AnswerRepository, ReviewRepository, SurveyRepository

TEXT_KEYS = frozenset({"comment", "text", "answers"})


@exporter("feedback")
def export_feedback(session: Session, customer: Customer, now: datetime) -> dict[str, Any]:
    surveys = {s.id: s.code for s in SurveyRepository(session).of_merchant(customer.merchant_id)}
    return {
        "survey_answers": [
            {
                "survey": surveys.get(a.survey_id),
                "occasion": a.occasion,
                "score": a.score,
                "answers": a.answers,
                "answered_at": a.answered_at.isoformat(),
                "updated_at": a.updated_at.isoformat(),
            }
            for a in AnswerRepository(session).of_customer(customer.id)
        ],
        "reviews": [
            {
                "product_id": r.product_id,
                "rating": r.rating,
                "text": r.text,
                "posted_at": r.posted_at.isoformat(),
            }
            for r in ReviewRepository(session).of_customer(customer.id)
        ],
    }


@eraser
def erase_feedback(session: Session, erasure: Erasure) -> None:
    customer_id = erasure.customer.id
    for a in AnswerRepository(session).of_customer(customer_id):
        a.comment = ERASED if a.comment else None
        a.answers = {k: (ERASED if isinstance(v, str) else v) for k, v in a.answers.items()}
    for r in ReviewRepository(session).of_customer(customer_id):
        r.text = ERASED if r.text else None
    kinds = {*domain.ANSWER_EVENTS, domain.REVIEW_POSTED}
    for e in EventRepository(session).for_customer(customer_id):
        if e.type in kinds:
            e.payload = scrub(e.payload, TEXT_KEYS)


siblings("gdpr")  # complaints_gdpr, delivery_gdpr
