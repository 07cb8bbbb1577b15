"""HTTP endpoints of complaints, their settings and measurement, and the helpdesk webhook."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from fidele.deps import (
    ERRORS,
    NowDep,
    OneHopRoute,
    ReadCaller,
    SessionDep,
    SettingsDep,
    WriteCaller,
)
from fidele.errors import InvalidInput, Unauthorized
from fidele.feedback import complaints_domain as domain
from fidele.feedback import complaints_service as service
from fidele.feedback import complaints_stats as stats
from fidele.feedback.complaints_models import Complaint
from fidele.feedback.complaints_repository import ComplaintRepository
from fidele.feedback.complaints_schemas import (
    ComplaintIn,
    ComplaintOut,
    ComplaintPatch,
    ComplaintSettingsIn,
    ComplaintSettingsOut,
    HelpdeskTicketIn,
    NoteIn,
    NoteOut,
    Status,
)
from fidele.ingest.connectors import signing
from fidele.ingest.webhooks import MerchantPath, RawBody, _json
from fidele.kit.pagination import MAX_LIMIT, Cursor, Page, decode_cursor, encode_cursor
from fidele.kit.schemas import Id, UtcDatetime
from fidele.tenancy.repository import MerchantRepository
from fidele.tenancy.service import merchant_webhook_secret

router = APIRouter(tags=["complaints"], responses=ERRORS, route_class=OneHopRoute)
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]
NOT_FOUND = {404: {"description": "No such complaint for this merchant"}}
CONFLICT = {409: {"description": "Not a transition the status allows; `fields` names it"}}


def outs(
    session: Session, rows: Sequence[Complaint], now: datetime, *, notes: bool = False
) -> list[ComplaintOut]:
    repo = ComplaintRepository(session)
    customers, orders = repo.external_ids(rows)
    return [
        ComplaintOut(
            id=r.id,
            customer_id=customers.get(r.customer_id, ""),
            order_id=orders.get(r.order_id) if r.order_id is not None else None,
            category=r.category,
            message=r.message,
            channel=r.channel,
            source=r.source,
            status=r.status,
            assignee_id=r.assignee_id,
            opened_at=r.opened_at,
            first_response_due=r.first_response_due,
            resolution_due=r.resolution_due,
            first_response_at=r.first_response_at,
            closed_at=r.closed_at,
            first_response_breached=domain.breached(r.first_response_due, r.first_response_at, now),
            resolution_breached=domain.breached(r.resolution_due, r.closed_at, now),
            resolution=r.resolution,
            gesture={"kind": r.gesture_kind, "value": r.gesture_value} if r.gesture_kind else None,
            notes=[
                NoteOut(id=n.id, author=n.author, body=n.body, created_at=n.created_at)
                for n in repo.notes(r.id)
            ]
            if notes
            else [],
        )
        for r in rows
    ]


@router.post(
    "/v1/complaints",
    response_model=ComplaintOut,
    status_code=201,
    responses={409: {"description": "Same Idempotency-Key, different body"}},
)
def open_complaint(
    body: ComplaintIn,
    caller: WriteCaller,
    session: SessionDep,
    now: NowDep,
    response: Response,
    key: IdemKey = None,
) -> ComplaintOut:
    """Open a complaint (201; a retry with the same ``Idempotency-Key`` and body: 200 and the
    first one). Due times follow the category's SLA on the merchant's business hours; the
    customer's marketing messages pause until their last open complaint is closed."""
    row, created = service.open_complaint(
        session, caller, body, now, source_ref=f"key:{key}" if key else None
    )
    response.status_code = 201 if created else 200
    return outs(session, [row], now)[0]


@router.get("/v1/complaints", response_model=Page[ComplaintOut])
def list_complaints(
    caller: ReadCaller,
    session: SessionDep,
    now: NowDep,
    status: Status | None = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Page[ComplaintOut]:
    rows = ComplaintRepository(session).listing(
        caller.merchant_id, status=status, after_id=decode_cursor(cursor), limit=limit
    )
    nxt = encode_cursor(rows[-1].id) if len(rows) == limit else None
    return Page[ComplaintOut](items=outs(session, rows, now), next_cursor=nxt)


@router.get("/v1/complaints/overdue", response_model=list[ComplaintOut])
def overdue(caller: ReadCaller, session: SessionDep, now: NowDep) -> list[ComplaintOut]:
    """Open complaints past their first-response or resolution due time, soonest due first."""
    return outs(session, service.overdue(session, caller, now), now)


@router.get("/v1/complaints/sla", response_model=ComplaintSettingsOut)
def get_settings(caller: ReadCaller, session: SessionDep, now: NowDep) -> Any:
    """SLA per category (business hours), business hours, timezone, the monthly recovery
    budget and what it spent this month, the late-delivery rule: defaults filled in."""
    return service.settings_view(session, caller, now)


@router.put("/v1/complaints/sla", response_model=ComplaintSettingsOut)
def put_settings(
    body: ComplaintSettingsIn, caller: WriteCaller, session: SessionDep, now: NowDep
) -> Any:
    """Set any of the settings (absent keys keep their value). Complaints already open keep
    the due times they were opened with."""
    return service.put_settings(
        session, caller, body.model_dump(mode="json", exclude_none=True), now
    )


@router.get("/v1/complaints/stats")
def get_stats(
    caller: ReadCaller,
    session: SessionDep,
    now: NowDep,
    since: Annotated[UtcDatetime | None, Query()] = None,
) -> dict[str, Any]:
    """Complaint rate per 100 orders, time to first response and to resolution (hours),
    SLA breaches, and the retention of complainants (repeat rate 90 and 180 days after
    resolution, by gesture and resolution time) against customers without a complaint."""
    return stats.stats(session, caller, now, since=since)


@router.get("/v1/complaints/{complaint_id:int}", response_model=ComplaintOut, responses=NOT_FOUND)
def show(complaint_id: Id, caller: ReadCaller, session: SessionDep, now: NowDep) -> ComplaintOut:
    row = service.get(session, caller, complaint_id)
    return outs(session, [row], now, notes=True)[0]


@router.patch(
    "/v1/complaints/{complaint_id:int}",
    response_model=ComplaintOut,
    responses={**NOT_FOUND, **CONFLICT},
)
def patch(
    complaint_id: Id, body: ComplaintPatch, caller: WriteCaller, session: SessionDep, now: NowDep
) -> ComplaintOut:
    """Assign, move the status (open -> in_progress -> resolved | rejected), record the
    resolution and, with ``"status": "resolved"``, grant a gesture within the month's
    recovery budget (422 naming ``gesture.value`` beyond it)."""
    row = service.update(session, caller, complaint_id, body, now)
    return outs(session, [row], now, notes=True)[0]


@router.post(
    "/v1/complaints/{complaint_id:int}/notes",
    response_model=NoteOut,
    status_code=201,
    responses=NOT_FOUND,
)
def add_note(
    complaint_id: Id, body: NoteIn, caller: WriteCaller, session: SessionDep, now: NowDep
) -> NoteOut:
    """A note; the first note (or status change) is the complaint's first response."""
    n = service.add_note(session, caller, complaint_id, body.body, body.author, now)
    return NoteOut(id=n.id, author=n.author, body=n.body, created_at=n.created_at)


@router.post(
    "/v1/webhooks/helpdesk/{merchant_id}",
    response_model=ComplaintOut,
    status_code=201,
    tags=["webhooks"],
    responses={
        401: {"description": "Missing or bad signature (nothing stored)"},
        409: {"description": "The ticket was sent before with a different body"},
    },
)
def helpdesk_webhook(
    merchant_id: MerchantPath,
    body: RawBody,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    response: Response,
    x_fidele_signature: Annotated[str | None, Header()] = None,
) -> ComplaintOut:
    """A helpdesk ticket as a complaint, in the generic JSON shape ``HelpdeskTicketIn``,
    signed like the shop webhooks: ``X-Fidele-Signature: base64(HMAC-SHA256(merchant's
    webhook secret, raw body))``. One complaint per ``ticket_id`` (a redelivery: 200)."""
    merchant = MerchantRepository(session).get(merchant_id)
    secrets = [merchant_webhook_secret(merchant, settings.secret_key)] if merchant else []
    if merchant is None or not signing.matches(secrets, body, x_fidele_signature):
        raise Unauthorized("missing or invalid webhook signature")
    ticket = _ticket(_json(body))
    caller = service.system_caller(merchant.id, merchant.programme_id)
    data = ComplaintIn(**ticket.model_dump(exclude={"ticket_id", "occurred_at"}))
    row, created = service.open_complaint(
        session, caller, data, now, source="helpdesk", source_ref=f"ticket:{ticket.ticket_id}"
    )
    response.status_code = 201 if created else 200
    return outs(session, [row], now)[0]


def _ticket(payload: dict[str, Any]) -> HelpdeskTicketIn:
    """The ticket, or a 422 naming each bad field (as a request body's errors do)."""
    try:
        return HelpdeskTicketIn.model_validate(payload)
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        names = ", ".join(f["field"] for f in fields)
        raise InvalidInput(f"invalid ticket: {names}", fields=fields) from None
