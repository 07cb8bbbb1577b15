"""Messaging's HTTP API: consents (under /v1/customers), templates, preview, policy, the
delivery-notification (DSN) webhook, and the unauthenticated unsubscribe links."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from fidele.customers import service as customers
from fidele.deps import (
    ERRORS,
    NowDep,
    OneHopRoute,
    ReadCaller,
    SessionDep,
    WriteCaller,
)
from fidele.errors import InvalidInput
from fidele.kit.pagination import MAX_LIMIT, Cursor, Page, decode_cursor, encode_cursor
from fidele.kit.schemas import ExternalId, Id
from fidele.messaging import consent, delivery, domain, pages, service
from fidele.messaging.models import SEND_STATUSES
from fidele.messaging.repository import SendRepository, TemplateRepository
from fidele.messaging.schemas import (
    ConsentIn,
    ConsentOut,
    DeliveryEventsIn,
    DeliveryEventsOut,
    PolicyIn,
    PolicyOut,
    PreviewIn,
    PreviewOut,
    SendOut,
    TemplateIn,
    TemplateOut,
    TemplateUpdate,
)
from fidele.settings import get_settings

router = APIRouter(tags=["messaging"], responses=ERRORS, route_class=OneHopRoute)
CustomerPath = Annotated[ExternalId, Path(description="The shop's own customer id")]


@router.put("/v1/customers/{external_id}/consent", response_model=ConsentOut, responses={404: {}})
def put_consent(
    external_id: CustomerPath,
    body: ConsentIn,
    caller: WriteCaller,
    session: SessionDep,
    now: NowDep,
) -> ConsentOut:
    """Grant or withdraw one topic on one channel, effective at once (a queued message is
    checked again just before it goes)."""
    customer = customers.get(session, caller, external_id)
    row = consent.set_consent(
        session,
        merchant_id=caller.merchant_id,
        customer_id=customer.id,
        topic=body.topic,
        channel=body.channel,
        granted=body.granted,
        source=body.source,
        now=now,
    )
    return ConsentOut.model_validate(row)


@router.get(
    "/v1/customers/{external_id}/consent", response_model=list[ConsentOut], responses={404: {}}
)
def get_consents(
    external_id: CustomerPath, caller: ReadCaller, session: SessionDep
) -> list[ConsentOut]:
    """Every consent recorded for the customer (no row for a topic: not consented)."""
    customer = customers.get(session, caller, external_id)
    rows = consent.consents_of(session, caller.merchant_id, customer.id)
    return [ConsentOut.model_validate(r) for r in rows]


# --- templates ----------------------------------------------------------------------------


@router.post(
    "/v1/messages/templates",
    response_model=TemplateOut,
    status_code=201,
    responses={409: {"description": "A template of that name exists"}},
)
def create_template(
    body: TemplateIn, caller: WriteCaller, session: SessionDep, now: NowDep
) -> TemplateOut:
    """A template: Jinja2 subject/html/text per locale. Refused with 422 naming
    ``variants.<locale>.<part>`` and the line when a part does not compile or (strict) uses
    a name that is not in the context (see ``fidele.messaging.context``) nor declared in
    ``variables``."""
    row = service.create_template(
        session,
        merchant_id=caller.merchant_id,
        name=body.name,
        topic=body.topic,
        channel=body.channel,
        strict=body.strict,
        variables=list(body.variables),
        variants={k: v.model_dump(exclude_none=True) for k, v in body.variants.items()},
        now=now,
    )
    return TemplateOut.model_validate(row)


@router.get("/v1/messages/templates", response_model=Page[TemplateOut])
def list_templates(
    caller: ReadCaller,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Page[TemplateOut]:
    rows = TemplateRepository(session).page(
        caller.merchant_id, after_id=decode_cursor(cursor), limit=limit
    )
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return Page[TemplateOut](items=[TemplateOut.model_validate(r) for r in rows], next_cursor=nxt)


@router.get("/v1/messages/templates/{template_id}", response_model=TemplateOut, responses={404: {}})
def get_template(
    template_id: Annotated[Id, Path()], caller: ReadCaller, session: SessionDep
) -> TemplateOut:
    return TemplateOut.model_validate(
        service.get_template(session, caller.merchant_id, template_id)
    )


@router.put("/v1/messages/templates/{template_id}", response_model=TemplateOut, responses={404: {}})
def put_template(
    template_id: Annotated[Id, Path()],
    body: TemplateUpdate,
    caller: WriteCaller,
    session: SessionDep,
    now: NowDep,
) -> TemplateOut:
    """Change a template (checked as on creation); its version goes up, and messages not yet
    sent are rendered with the new version."""
    changes = body.model_dump(exclude_unset=True)
    if body.variants is not None:
        changes["variants"] = {k: v.model_dump(exclude_none=True) for k, v in body.variants.items()}
    row = service.update_template(
        session, merchant_id=caller.merchant_id, template_id=template_id, changes=changes, now=now
    )
    return TemplateOut.model_validate(row)


@router.post("/v1/messages/preview", response_model=PreviewOut, responses={404: {}})
def preview(body: PreviewIn, caller: ReadCaller, session: SessionDep, now: NowDep) -> PreviewOut:
    """Render ``template`` for a real customer (the shop's id) as it would be sent now,
    without sending nor writing anything."""
    customer = customers.get(session, caller, body.customer_id)
    out = delivery.preview(
        session,
        merchant_id=caller.merchant_id,
        template=body.template,
        customer=customer,
        context=dict(body.context),
        now=now,
    )
    return PreviewOut(
        locale=out.payload.get("locale", ""),
        subject=out.subject,
        html=out.html,
        text=out.text,
        headers={"From": out.sender, "To": out.to, **out.headers},
    )


# --- policy, ledger, delivery notifications -------------------------------------------------


@router.get("/v1/messages/policy", response_model=PolicyOut)
def get_policy(caller: ReadCaller, session: SessionDep) -> PolicyOut:
    """The merchant's sending policy with fidele's defaults filled in: caps per channel
    (rules AND-ed), quiet hours, what each topic does over the cap, throttle, locale."""
    return PolicyOut(**domain.policy_document(service.get_policy(session, caller.merchant_id)))


@router.put("/v1/messages/policy", response_model=PolicyOut)
def put_policy(body: PolicyIn, caller: WriteCaller, session: SessionDep, now: NowDep) -> PolicyOut:
    """Replace the merchant's policy (absent fields: fidele's defaults)."""
    document = body.model_dump(exclude_none=True)
    if body.timezone is not None and domain.zone(body.timezone, "").key != body.timezone:
        raise InvalidInput(f"unknown time zone {body.timezone!r}", field="timezone")
    if body.webhook_url is not None:
        from fidele.webhooks.domain import check_url

        check_url(body.webhook_url, allow_private=get_settings().private_webhooks_allowed)
    policy = service.put_policy(session, caller.merchant_id, document, now)
    return PolicyOut(**domain.policy_document(policy))


@router.get("/v1/messages/sends", response_model=Page[SendOut], responses={404: {}})
def list_sends(
    caller: ReadCaller,
    session: SessionDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    customer_id: Annotated[ExternalId | None, Query(description="the shop's customer id")] = None,
    status: Annotated[Literal[SEND_STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
) -> Page[SendOut]:
    """The send ledger, oldest first: every message decided, with its status and, when it
    was skipped or failed, why (a customer's journey: ``customer_id``)."""
    internal = None
    if customer_id is not None:
        internal = customers.get(session, caller, customer_id).id
    rows = SendRepository(session).page(
        caller.merchant_id,
        after_id=decode_cursor(cursor),
        limit=limit,
        customer_id=internal,
        status=status,
    )
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return Page[SendOut](items=[SendOut.model_validate(r) for r in rows], next_cursor=nxt)


@router.post("/v1/messages/delivery-events", response_model=DeliveryEventsOut)
def delivery_events(
    body: DeliveryEventsIn, caller: WriteCaller, session: SessionDep, now: NowDep
) -> DeliveryEventsOut:
    """The provider's delivery status notifications (DSN), mapped to
    ``{"events": [{"type", "email", "message_id", "at", "diagnostic"}]}``: hard bounces and
    complaints suppress the address at once, soft bounces past the policy's threshold."""
    recorded, suppressed = service.record_delivery_events(
        session, caller.merchant_id, [e.model_dump() for e in body.events], now
    )
    return DeliveryEventsOut(recorded=recorded, suppressed=suppressed)


# --- unsubscribe (no API key: the signed token is the authority) --------------------------

Token = Annotated[
    str, Path(max_length=200, pattern=r"^[0-9]+\.[0-9]+\.[a-z][a-z0-9_*]{0,49}\.[A-Za-z0-9_-]+$")
]


async def _form(request: Request) -> dict[str, list[str]]:
    body = (await request.body())[:10_000]
    return parse_qs(body.decode("utf-8", errors="replace"))


FormBody = Annotated[dict[str, list[str]], Depends(_form)]


@router.post(
    "/v1/messages/unsubscribe/{token}",
    responses={200: {"content": {"text/html": {}}}, 404: {"description": "Unknown or forged link"}},
    response_class=HTMLResponse,
    openapi_extra={"security": []},
)
def one_click(
    token: Token, form: FormBody, session: SessionDep, now: NowDep, request: Request
) -> HTMLResponse:
    """RFC 8058 one-click unsubscribe (``List-Unsubscribe=One-Click``): the link's topic is
    withdrawn at once, and 200 answers. The preference page's form posts here too (fields
    ``topic`` repeated, or ``leave_all``)."""
    lang = _lang(request)
    if "save" in form or "leave_all" in form:
        topics = service.save_preferences(
            session, token, set(form.get("topic", [])), leave_all="leave_all" in form, now=now
        )
        return HTMLResponse(pages.preferences(token, topics, lang, saved=True))
    topic = service.one_click_unsubscribe(session, token, now)
    return HTMLResponse(pages.unsubscribed(token, topic, lang))


@router.get(
    "/v1/messages/unsubscribe/{token}",
    responses={200: {"content": {"text/html": {}}}, 404: {"description": "Unknown or forged link"}},
    response_class=HTMLResponse,
    openapi_extra={"security": []},
)
def preference_page(token: Token, session: SessionDep, request: Request) -> HTMLResponse:
    """The preference page (French or English, from the customer's locale or the browser):
    tick the topics to keep, or leave everything. Opening it changes nothing (mail scanners
    follow links)."""
    subject, customer = service.token_subject(session, token)
    topics = service.preference_topics(session, customer, subject.topic)
    return HTMLResponse(pages.preferences(token, topics, customer.locale or _lang(request)))


def _lang(request: Request) -> str:
    accept = request.headers.get("accept-language", "")
    return "fr" if accept.lower().startswith("fr") else "en"
