from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from fidele.customers import service as customers
from fidele.deps import ERRORS, NowDep, OneHopRoute, SessionDep, WriteCaller
from fidele.events import service
from fidele.events.schemas import EventIn, EventOut

router = APIRouter(prefix="/v1/events", tags=["events"], responses=ERRORS, route_class=OneHopRoute)
# Stored with this prefix in a 255-character column: the schema allows what fits, so a key of
# 252-255 characters is a 422 naming the header on every database, not a PostgreSQL error.
KEY_PREFIX = "api:"
IdempotencyKey = Annotated[
    str, Header(alias="Idempotency-Key", min_length=1, max_length=255 - len(KEY_PREFIX))
]


@router.post(
    "",
    response_model=EventOut,
    status_code=201,
    responses={
        200: {"description": "Replay of the same key and body"},
        409: {"description": "Same Idempotency-Key, different body"},
    },
)
def post_event(
    body: EventIn,
    caller: WriteCaller,
    session: SessionDep,
    now: NowDep,
    response: Response,
    idempotency_key: IdempotencyKey,
) -> EventOut:
    customer = customers.get_or_create(session, caller, body.customer_id, now, source="api")
    event, created = service.record(
        session,
        caller,
        type=body.type,
        occurred_at=body.occurred_at,
        now=now,
        source="api",
        payload=body.model_dump(mode="json"),
        customer_id=customer.id,
        idempotency_key=f"{KEY_PREFIX}{idempotency_key}",
    )
    response.status_code = 201 if created else 200
    return EventOut(
        id=event.id,
        type=event.type,
        customer_id=body.customer_id,
        occurred_at=event.occurred_at,
        received_at=event.received_at,
        source=event.source,
        properties=event.payload.get("properties", {}),
    )
