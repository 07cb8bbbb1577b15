"""Surveys and reviews: definitions, signed links, answers (events), results, exports.

Services never commit: the request, job or command owns the transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.errors import InvalidInput, NotFound, StateConflict
from fidele.events import service as events
from fidele.feedback import domain, links
from fidele.feedback.models import Review, Survey, SurveyAnswer
from fidele.feedback.repository import (
    AnswerRepository,
    OrderReadRepository,
    ReviewRepository,
    SurveyRepository,
)
from fidele.orders.models import Order
from fidele.tenancy.service import Caller

DEFAULT_CODES = ("nps", "csat")
REVIEW_LINK_DAYS = 60
LATEST = 100


# --- definitions --------------------------------------------------------------------------


def create_survey(
    session: Session,
    merchant_id: int,
    *,
    code: str,
    kind: str,
    title: Mapping[str, str] | None,
    question: Mapping[str, str] | None,
    questions: Sequence[Mapping[str, Any]],
    link_days: int,
    now: datetime,
) -> Survey:
    """Save a survey; nps and csat get their two standard questions (``question`` replaces
    the score's wording), a form its own (at least one)."""
    repo = SurveyRepository(session)
    if repo.by_code(merchant_id, code) is not None:
        raise StateConflict(f"a survey with code {code!r} exists", field="code")
    if kind == "form":
        if not questions:
            raise InvalidInput("a form needs at least one question", field="questions")
        domain.check_questions(questions)
        defined = [dict(q) for q in questions]
    else:
        defined = domain.standard_questions(kind, question)
    default_title = domain.DEFAULT_TEXTS.get(kind, {}).get("title", {"en": code, "fr": code})
    survey = Survey(
        merchant_id=merchant_id,
        code=code,
        kind=kind,
        title=dict(title or default_title),
        questions=defined,
        link_days=link_days,
        active=True,
        created_at=now,
        updated_at=now,
    )
    return repo.add(survey)


def ensure_defaults(session: Session, merchant_id: int, now: datetime) -> int:
    """Install the merchant's missing built-in surveys (``nps``, ``csat``), which the
    ready-made journeys link to; how many were created."""
    have = SurveyRepository(session).codes(merchant_id)
    made = 0
    for code in DEFAULT_CODES:
        if code not in have:
            create_survey(
                session,
                merchant_id,
                code=code,
                kind=code,
                title=None,
                question=None,
                questions=(),
                link_days=30,
                now=now,
            )
            made += 1
    return made


def get_survey(session: Session, merchant_id: int, survey_id: int) -> Survey:
    found = SurveyRepository(session).find(merchant_id, survey_id)
    if found is None:
        raise NotFound(f"survey {survey_id} not found")
    return found


def survey_by_code(session: Session, merchant_id: int, code: str) -> Survey:
    found = SurveyRepository(session).by_code(merchant_id, code)
    if found is None:
        raise NotFound(f"no survey with code {code!r}")
    return found


def surveys(session: Session, merchant_id: int) -> Sequence[Survey]:
    return SurveyRepository(session).of_merchant(merchant_id)


# --- links ----------------------------------------------------------------------------------


def survey_link(
    survey: Survey,
    customer: Customer,
    occasion: str,
    now: datetime,
    *,
    secret: str,
    public_url: str,
    days: int | None = None,
) -> tuple[str, datetime]:
    """The signed ``/s/{token}`` URL of ``survey`` for ``customer`` on ``occasion``, and when
    it expires (after the survey's ``link_days`` unless ``days``)."""
    valid = days or survey.link_days
    token = links.survey_token(
        secret,
        merchant_id=customer.merchant_id,
        customer_id=customer.id,
        survey_id=survey.id,
        occasion=occasion,
        now=now,
        days=valid,
    )
    return links.url(public_url, links.SURVEY_PATH, token), links.read_survey(
        secret, token, now
    ).expires_at


def review_link(
    order: Order, now: datetime, *, secret: str, public_url: str, days: int = REVIEW_LINK_DAYS
) -> tuple[str, datetime]:
    token = links.review_token(
        secret,
        merchant_id=order.merchant_id,
        customer_id=order.customer_id,
        order_id=order.id,
        now=now,
        days=days,
    )
    return links.url(public_url, links.REVIEW_PATH, token), links.read_review(
        secret, token, now
    ).expires_at


def _customer(session: Session, merchant_id: int, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None or customer.merchant_id != merchant_id or customer.erased_at is not None:
        raise links.LinkRefused("invalid")
    return customer


@dataclass(frozen=True)
class OpenSurvey:
    link: links.SurveyLink
    survey: Survey
    customer: Customer
    answer: SurveyAnswer | None


def open_survey(session: Session, token: str, now: datetime, *, secret: str) -> OpenSurvey:
    """The survey, customer and current answer a genuine token names; :class:`LinkRefused`
    for a forged or altered token, an expired one, or one naming a survey or customer that is
    not (or no longer) the merchant's."""
    link = links.read_survey(secret, token, now)
    survey = SurveyRepository(session).find(link.merchant_id, link.survey_id)
    if survey is None or not survey.active:
        raise links.LinkRefused("invalid")
    customer = _customer(session, link.merchant_id, link.customer_id)
    answer = AnswerRepository(session).find(survey.id, customer.id, link.occasion)
    return OpenSurvey(link, survey, customer, answer)


# --- answers --------------------------------------------------------------------------------


def answer(
    session: Session,
    opened: OpenSurvey,
    form: Mapping[str, Sequence[str]],
    lang: str,
    now: datetime,
) -> tuple[OpenSurvey, domain.Parsed, bool]:
    """Save the form of a survey link: the first answer of the occasion records
    ``survey_answered``; answering again updates the answer and records
    ``survey.answer_updated``. Nothing is written when a question is wrongly answered (the
    page shows ``Parsed.errors``). ``opened`` is what :func:`open_survey` read from the
    link. Returns the survey with its saved answer, the parsed form and whether the answer
    was new."""
    parsed = domain.parse_answers(opened.survey.questions, form, lang)
    if parsed.errors:
        return opened, parsed, False
    row, created, previous = _save_answer(session, opened, parsed, lang, now)
    _announce(session, opened, row, created, previous, now)
    return OpenSurvey(opened.link, opened.survey, opened.customer, row), parsed, created


def _save_answer(
    session: Session, opened: OpenSurvey, parsed: domain.Parsed, lang: str, now: datetime
) -> tuple[SurveyAnswer, bool, int | None]:
    repo = AnswerRepository(session)
    row = opened.answer
    if row is None:
        row = SurveyAnswer(
            merchant_id=opened.survey.merchant_id,
            survey_id=opened.survey.id,
            customer_id=opened.customer.id,
            occasion=opened.link.occasion,
            score=parsed.score(),
            comment=parsed.comment(),
            answers=parsed.answers,
            locale=lang,
            answered_at=now,
            updated_at=now,
        )
        try:
            with session.begin_nested():  # the same link submitted twice at once
                repo.add(row)
            return row, True, None
        except IntegrityError:
            found = repo.find(opened.survey.id, opened.customer.id, opened.link.occasion)
            if found is None:
                raise
            row = found
    previous = row.score
    row.score, row.comment, row.answers = parsed.score(), parsed.comment(), parsed.answers
    row.locale, row.updated_at = lang, now
    session.flush()
    return row, False, previous


def answer_payload(survey: Survey, row: SurveyAnswer) -> dict[str, Any]:
    """What the survey events and webhooks carry."""
    payload: dict[str, Any] = {
        "survey_id": survey.id,
        "survey": survey.code,
        "kind": survey.kind,
        "occasion": row.occasion,
        "answer_id": row.id,
        "score": row.score,
        "comment": row.comment,
        "answers": row.answers,
        "detractor_comment": domain.detractor_comment(survey.kind, row.score, row.comment),
    }
    if survey.kind == "nps" and row.score is not None:
        payload["nps_group"] = domain.nps_group(row.score)
    return payload


def _announce(
    session: Session,
    opened: OpenSurvey,
    row: SurveyAnswer,
    created: bool,
    previous: int | None,
    now: datetime,
) -> None:
    customer = opened.customer
    caller = Caller(customer.merchant_id, customer.programme_id, None, frozenset())
    payload = answer_payload(opened.survey, row)
    if not created:
        payload["previous_score"] = previous
    events.record(
        session,
        caller,
        type=domain.ANSWERED if created else domain.ANSWER_UPDATED,
        occurred_at=now,
        now=now,
        source="feedback",
        payload=payload,
        customer_id=customer.id,
    )
    _publish(
        session,
        customer,
        domain.WEBHOOK_SURVEY_ANSWERED,
        {**payload, "customer_id": customer.external_id, "answered_at": now.isoformat()},
        f"survey:{row.id}:{now.isoformat()}",
        now,
    )


def _publish(
    session: Session,
    customer: Customer,
    topic: str,
    payload: dict[str, Any],
    dedup: str,
    now: datetime,
) -> None:
    from fidele.webhooks import service as webhooks

    webhooks.publish(
        session,
        programme_id=customer.programme_id,
        merchant_id=customer.merchant_id,
        topic=topic,
        payload=payload,
        dedup_key=f"{topic}:{dedup}",
        now=now,
    )


# --- results --------------------------------------------------------------------------------


def results(
    session: Session, merchant_id: int, survey_id: int, *, segment_id: int | None = None
) -> dict[str, Any]:
    """The survey's results (of the segment's customers now, if ``segment_id``): answer
    count, NPS or CSAT and their trend by month (in the merchant's zone, as complaints count
    it), counts per question, the latest comments."""
    survey = get_survey(session, merchant_id, survey_id)
    if segment_id is not None:
        from fidele.segments import service as segments

        segments.get(session, merchant_id, segment_id)  # 404 for another merchant's
    from fidele.feedback.complaints_service import merchant_zone

    repo = AnswerRepository(session)
    rows = repo.results_rows(survey.id, segment_id)
    tz = merchant_zone(session, merchant_id) if survey.kind != "form" else None
    scored = [(s, at) for s, at, _ in rows if s is not None]
    out: dict[str, Any] = {
        "survey_id": survey.id,
        "code": survey.code,
        "kind": survey.kind,
        "segment_id": segment_id,
        "answers": len(rows),
        "nps": domain.nps(s for s, _ in scored) if survey.kind == "nps" else None,
        "csat": domain.csat(s for s, _ in scored) if survey.kind == "csat" else None,
        "trend": domain.trend(survey.kind, scored, tz) if survey.kind != "form" else [],
        "questions": domain.question_counts(survey.questions, (a for _, _, a in rows)),
        "texts": _texts(survey, repo.latest_with_customers(survey.id, segment_id, LATEST * 5)),
    }
    return out


def _texts(survey: Survey, latest: Sequence[tuple[SurveyAnswer, str]]) -> list[dict[str, Any]]:
    text_ids = [q["id"] for q in survey.questions if q["type"] == "text"]
    out = []
    for row, customer_id in latest:
        for qid in text_ids:
            value = (row.answers or {}).get(qid)
            if value:
                out.append(
                    {
                        "customer_id": customer_id,
                        "question": qid,
                        "text": value,
                        "score": row.score,
                        "occasion": row.occasion,
                        "answered_at": row.updated_at,
                    }
                )
        if len(out) >= LATEST:
            break
    return out[:LATEST]


def latest_answers(session: Session, merchant_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The merchant's latest answers, every survey (the dashboard's feed)."""
    return [
        {
            "survey": code,
            "kind": kind,
            "customer_id": customer_id,
            "score": row.score,
            "comment": row.comment,
            "answered_at": row.updated_at,
        }
        for row, code, kind, customer_id in AnswerRepository(session).latest_of_merchant(
            merchant_id, limit
        )
    ]


def customer_feedback(
    session: Session, merchant_id: int, customer_id: int, limit: int = 50
) -> dict[str, list[dict[str, Any]]]:
    """One customer's latest survey answers and reviews (the customer 360° page)."""
    answers = AnswerRepository(session).latest_of_customer(merchant_id, customer_id, limit)
    reviews = ReviewRepository(session).latest_of_customer(merchant_id, customer_id, limit)
    return {
        "answers": [
            {
                "survey": survey.code,
                "title": survey.title,
                "kind": survey.kind,
                "score": row.score,
                "nps_group": domain.nps_group(row.score)
                if survey.kind == "nps" and row.score is not None
                else None,
                "comment": row.comment,
                "answered_at": row.updated_at,
            }
            for row, survey in answers
        ],
        "reviews": [
            {
                "product_id": row.product_id,
                "product_name": row.product_name,
                "order_id": order_id,
                "rating": row.rating,
                "text": row.text,
                "posted_at": row.posted_at,
            }
            for row, order_id in reviews
        ],
    }


# --- reviews --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenReview:
    link: links.ReviewLink
    order: Order
    customer: Customer
    products: list[tuple[str, str | None]]
    reviews: dict[str, Review]


def open_review(session: Session, token: str, now: datetime, *, secret: str) -> OpenReview:
    """The order, its products and the reviews already posted, of a genuine review token."""
    link = links.read_review(secret, token, now)
    order = session.get(Order, link.order_id)
    if order is None or order.merchant_id != link.merchant_id:
        raise links.LinkRefused("invalid")
    if order.customer_id != link.customer_id:
        raise links.LinkRefused("invalid")
    customer = _customer(session, link.merchant_id, link.customer_id)
    products = OrderReadRepository(session).products(order.id)
    reviews = {r.product_id: r for r in ReviewRepository(session).of_order(order.id)}
    return OpenReview(link, order, customer, products, reviews)


def post_reviews(
    session: Session,
    opened: OpenReview,
    form: Mapping[str, Sequence[str]],
    lang: str,
    now: datetime,
) -> tuple[OpenReview, int]:
    """Save the ratings (``rating_<n>``, 1-5) and texts (``text_<n>``) of the order's n-th
    product. A product's first review records ``review_posted`` (earning by the scale, once
    per product and order) and queues the ``review.posted`` webhook; posting again edits it.
    ``opened`` is what :func:`open_review` read from the link. Returns it with the reviews
    now saved, and how many were new."""
    new = 0
    for n, (product_id, name) in enumerate(opened.products):
        rating = domain.review_rating((form.get(f"rating_{n}") or [""])[0])
        if rating is None:
            continue
        text = (form.get(f"text_{n}") or [""])[0].strip()[: domain.TEXT_MAX] or None
        new += _save_review(session, opened, product_id, name, rating, text, lang, now)
    reviews = {r.product_id: r for r in ReviewRepository(session).of_order(opened.order.id)}
    return OpenReview(opened.link, opened.order, opened.customer, opened.products, reviews), new


def _save_review(
    session: Session,
    opened: OpenReview,
    product_id: str,
    name: str | None,
    rating: int,
    text: str | None,
    lang: str,
    now: datetime,
) -> bool:
    repo = ReviewRepository(session)
    row = opened.reviews.get(product_id) or repo.find(opened.order.id, product_id)
    if row is not None:
        row.rating, row.text, row.locale, row.updated_at = rating, text, lang, now
        session.flush()
        return False
    row = Review(
        merchant_id=opened.order.merchant_id,
        customer_id=opened.customer.id,
        order_id=opened.order.id,
        product_id=product_id,
        product_name=name,
        rating=rating,
        text=text,
        locale=lang,
        posted_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            repo.add(row)
    except IntegrityError:
        twin = repo.find(opened.order.id, product_id)
        if twin is None:
            raise
        twin.rating, twin.text, twin.updated_at = rating, text, now
        return False
    _review_posted(session, opened, row, now)
    return True


def review_out(row: Review, customer_id: str, order_id: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "customer_id": customer_id,
        "order_id": order_id,
        "product_id": row.product_id,
        "product_name": row.product_name,
        "rating": row.rating,
        "text": row.text,
        "locale": row.locale,
        "posted_at": row.posted_at,
        "updated_at": row.updated_at,
    }


def _review_posted(session: Session, opened: OpenReview, row: Review, now: datetime) -> None:
    customer = opened.customer
    caller = Caller(customer.merchant_id, customer.programme_id, None, frozenset())
    payload = {
        "review_id": row.id,
        "order_id": opened.order.external_id,
        "product_id": row.product_id,
        "rating": row.rating,
        "text": row.text,
    }
    events.record(
        session,
        caller,
        type=domain.REVIEW_POSTED,
        occurred_at=now,
        now=now,
        source="feedback",
        payload=payload,
        customer_id=customer.id,
        order_id=opened.order.id,
        idempotency_key=f"review:{row.id}",  # the row is unique per product and order
    )
    body = review_out(row, customer.external_id, opened.order.external_id)
    _publish(
        session,
        customer,
        domain.WEBHOOK_REVIEW_POSTED,
        {**body, "posted_at": now.isoformat(), "updated_at": now.isoformat()},
        str(row.id),
        now,
    )


def export_reviews(
    session: Session,
    merchant_id: int,
    *,
    after_id: int = 0,
    limit: int = 1000,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """The merchant's reviews in id order (edited since ``since``, if given)."""
    rows = ReviewRepository(session).export(
        merchant_id, after_id=after_id, limit=limit, since=since
    )
    return [review_out(r, c, o) for r, c, o in rows]


def order_reviewed(session: Session, order_id: int) -> bool:
    """Whether the customer already reviewed something of that order."""
    return ReviewRepository(session).count_of_order(order_id) > 0


def order_of(session: Session, merchant_id: int, external_id: str) -> Order:
    order = OrderReadRepository(session).by_external_id(merchant_id, external_id)
    if order is None:
        raise NotFound(f"order {external_id!r} not found")
    return order
