"""Messaging's HTTP API: consents (under /v1/customers), templates, preview, policy, the
delivery-notification (DSN) webhook, and the unauthenticated unsubscribe links."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from fidele.customers import service as customers
from fidele.deps import ERRORS, NowDep, OneHopRoute, ReadCaller, SessionDep, WriteCaller
from fidele.kit.schemas import ExternalId
from fidele.messaging import consent
from fidele.messaging.schemas import ConsentIn, ConsentOut

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
