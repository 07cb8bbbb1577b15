"""HTTP endpoints of surveys and reviews, and the customer's pages behind their signed links
(``/s/{token}``, ``/r/{token}``: no API key, the token is the authority)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

import fidele.feedback.templating  # noqa: F401  (survey_link/review_link in message templates)
from fidele.customers import service as customers
from fidele.deps import (
    ERRORS,
    NowDep,
    OneHopRoute,
    ReadCaller,
    SessionDep,
    WriteCaller,
)
from fidele.errors import NotFound
from fidele.feedback import links, pages, service
from fidele.feedback.schemas import (
    LinkIn,
    LinkOut,
    ResultsOut,
    ReviewLinkIn,
    ReviewOut,
    SurveyIn,
    SurveyOut,
)
from fidele.kit.pagination import Cursor, Page, decode_cursor, encode_cursor
from fidele.kit.schemas import Id, UtcDatetime
from fidele.settings import get_settings

# Links are signed and checked with the process's settings (``get_settings()``), as messaging
# does for its unsubscribe links: a link made while rendering a message (no request there)
# opens the page of the same server.
router = APIRouter(tags=["feedback"], responses=ERRORS, route_class=OneHopRoute)
NOT_FOUND = {404: {"description": "No such survey (or segment, customer, order) here"}}
EXPORT_MAX = 10_000


@router.post(
    "/v1/surveys",
    response_model=SurveyOut,
    status_code=201,
    responses={409: {"description": "A survey with that code exists"}},
)
def create_survey(body: SurveyIn, caller: WriteCaller, session: SessionDep, now: NowDep) -> Any:
    """Define an NPS (0-10 + why), CSAT (1-5 + why) or short form (choice, scale, free text)
    survey, in French and/or English."""
    return service.create_survey(
        session,
        caller.merchant_id,
        code=body.code,
        kind=body.kind,
        title=body.title.texts() if body.title else None,
        question=body.question.texts() if body.question else None,
        questions=[q.definition() for q in body.questions],
        link_days=body.link_days,
        now=now,
    )


@router.get("/v1/surveys", response_model=list[SurveyOut])
def list_surveys(caller: ReadCaller, session: SessionDep) -> Any:
    return service.surveys(session, caller.merchant_id)


@router.get("/v1/surveys/{survey_id}", response_model=SurveyOut, responses=NOT_FOUND)
def get_survey(survey_id: Id, caller: ReadCaller, session: SessionDep) -> Any:
    return service.get_survey(session, caller.merchant_id, survey_id)


@router.get("/v1/surveys/{survey_id}/results", response_model=ResultsOut, responses=NOT_FOUND)
def survey_results(
    survey_id: Id,
    caller: ReadCaller,
    session: SessionDep,
    segment_id: Annotated[Id | None, Query(description="Only the segment's customers")] = None,
) -> Any:
    """Answer count, NPS (promoters, passives, detractors) or CSAT (average, share satisfied)
    and their trend by month (in the merchant's timezone), counts per question, the latest
    free-text answers."""
    return service.results(session, caller.merchant_id, survey_id, segment_id=segment_id)


@router.post(
    "/v1/surveys/{survey_id}/links", response_model=LinkOut, status_code=201, responses=NOT_FOUND
)
def create_survey_link(
    survey_id: Id,
    body: LinkIn,
    caller: WriteCaller,
    session: SessionDep,
    now: NowDep,
) -> Any:
    """A signed link for one customer and occasion (one answer per occasion), to put in an
    email of the shop's own."""
    survey = service.get_survey(session, caller.merchant_id, survey_id)
    customer = customers.get(session, caller, body.customer_id)
    url, expires = service.survey_link(
        survey,
        customer,
        body.occasion,
        now,
        secret=get_settings().secret_key,
        public_url=get_settings().public_url,
        days=body.days,
    )
    return LinkOut(url=url, expires_at=expires)


@router.post("/v1/reviews/links", response_model=LinkOut, status_code=201, responses=NOT_FOUND)
def create_review_link(
    body: ReviewLinkIn, caller: WriteCaller, session: SessionDep, now: NowDep
) -> Any:
    """A signed link to review the products of one of the customer's orders."""
    customer = customers.get(session, caller, body.customer_id)
    order = service.order_of(session, caller.merchant_id, body.order_id)
    if order.customer_id != customer.id:
        raise NotFound(f"order {body.order_id!r} is not customer {body.customer_id!r}'s")
    url, expires = service.review_link(
        order,
        now,
        secret=get_settings().secret_key,
        public_url=get_settings().public_url,
        days=body.days,
    )
    return LinkOut(url=url, expires_at=expires)


@router.get(
    "/v1/reviews",
    response_model=Page[ReviewOut],
    responses={200: {"content": {"text/csv": {}}, "description": "JSON page or CSV"}},
)
def export_reviews(
    caller: ReadCaller,
    session: SessionDep,
    fmt: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
    since: Annotated[UtcDatetime | None, Query(description="Edited at or after")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=EXPORT_MAX)] = 500,
) -> Any:
    """The reviews for the shop to publish, oldest first: a JSON page, or CSV (the next
    page's cursor in the ``X-Next-Cursor`` header)."""
    rows = service.export_reviews(
        session, caller.merchant_id, after_id=decode_cursor(cursor), limit=limit, since=since
    )
    nxt = encode_cursor(rows[-1]["id"]) if len(rows) == limit else None
    if fmt == "json":
        return Page[ReviewOut](items=[ReviewOut(**r) for r in rows], next_cursor=nxt)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(ReviewOut.model_fields), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {
                **r,
                "posted_at": r["posted_at"].isoformat(),
                "updated_at": r["updated_at"].isoformat(),
            }
        )
    headers = {"X-Next-Cursor": nxt} if nxt else {}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


# --- the customer's pages ------------------------------------------------------------------

Token = Annotated[str, Path(max_length=2000, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")]
Lang = Annotated[str | None, Query(pattern="^(en|fr)$")]


async def _form(request: Request) -> dict[str, list[str]]:
    body = (await request.body())[:50_000]
    return parse_qs(body.decode("utf-8", errors="replace"))


FormBody = Annotated[dict[str, list[str]], Depends(_form)]


def _refused(exc: links.LinkRefused, request: Request, lang: str | None) -> HTMLResponse:
    chosen = pages.lang_of(lang, None, request.headers.get("accept-language", ""))
    return HTMLResponse(pages.refused(exc.reason, chosen), status_code=exc.status)


def _survey_page(
    opened: service.OpenSurvey, token: str, lang: str, *, values: Any = None, **kw: Any
) -> str:
    saved = opened.answer.answers if opened.answer is not None else {}
    return pages.survey(
        action=f"{links.SURVEY_PATH}{token}?lang={lang}",
        title=opened.survey.title,
        questions=opened.survey.questions,
        values=saved if values is None else values,
        lang=lang,
        **kw,
    )


@router.get("/s/{token}", response_class=HTMLResponse, include_in_schema=False)
def survey_page(
    token: Token,
    session: SessionDep,
    now: NowDep,
    request: Request,
    lang: Lang = None,
) -> HTMLResponse:
    """The survey of a signed link, with the answer already given (opening changes
    nothing: mail scanners follow links)."""
    try:
        opened = service.open_survey(session, token, now, secret=get_settings().secret_key)
    except links.LinkRefused as exc:
        return _refused(exc, request, lang)
    chosen = pages.lang_of(lang, opened.customer.locale, request.headers.get("accept-language", ""))
    return HTMLResponse(_survey_page(opened, token, chosen))


@router.post("/s/{token}", response_class=HTMLResponse, include_in_schema=False)
def survey_answer(
    token: Token,
    form: FormBody,
    session: SessionDep,
    now: NowDep,
    request: Request,
    lang: Lang = None,
) -> HTMLResponse:
    """The survey form's plain POST: saved (or updated), then the page again with a thank
    you; 422 with the answers marked when one is missing or not valid."""
    accept = request.headers.get("accept-language", "")
    try:
        opened = service.open_survey(session, token, now, secret=get_settings().secret_key)
        chosen = pages.lang_of(lang, opened.customer.locale, accept)
        opened, parsed, _ = service.answer(session, opened, form, chosen, now)
    except links.LinkRefused as exc:
        return _refused(exc, request, lang)
    if parsed.errors:
        values = {k[2:]: v[0] for k, v in form.items() if k.startswith("q_") and v}
        html = _survey_page(opened, token, chosen, values=values, errors=parsed.errors)
        return HTMLResponse(html, status_code=422)
    return HTMLResponse(_survey_page(opened, token, chosen, saved=True))


def _review_page(opened: service.OpenReview, token: str, lang: str, saved: bool) -> str:
    return pages.reviews(
        action=f"{links.REVIEW_PATH}{token}?lang={lang}",
        order=opened.order.external_id,
        products=opened.products,
        existing=opened.reviews,
        lang=lang,
        saved=saved,
    )


@router.get("/r/{token}", response_class=HTMLResponse, include_in_schema=False)
def review_page(
    token: Token,
    session: SessionDep,
    now: NowDep,
    request: Request,
    lang: Lang = None,
) -> HTMLResponse:
    """The order's products to rate, with the reviews already posted."""
    try:
        opened = service.open_review(session, token, now, secret=get_settings().secret_key)
    except links.LinkRefused as exc:
        return _refused(exc, request, lang)
    chosen = pages.lang_of(lang, opened.customer.locale, request.headers.get("accept-language", ""))
    return HTMLResponse(_review_page(opened, token, chosen, saved=False))


@router.post("/r/{token}", response_class=HTMLResponse, include_in_schema=False)
def review_post(
    token: Token,
    form: FormBody,
    session: SessionDep,
    now: NowDep,
    request: Request,
    lang: Lang = None,
) -> HTMLResponse:
    accept = request.headers.get("accept-language", "")
    try:
        opened = service.open_review(session, token, now, secret=get_settings().secret_key)
        chosen = pages.lang_of(lang, opened.customer.locale, accept)
        opened, _ = service.post_reviews(session, opened, form, chosen, now)
    except links.LinkRefused as exc:
        return _refused(exc, request, lang)
    return HTMLResponse(_review_page(opened, token, chosen, saved=True))
