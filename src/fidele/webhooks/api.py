from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import Field, HttpUrl

from fidele.deps import ERRORS, AdminCaller, NowDep, OneHopRoute, SessionDep, SettingsDep
from fidele.kit.schemas import Id, InputModel, OutputModel, UtcDatetime
from fidele.webhooks import service

router = APIRouter(
    prefix="/v1/webhooks/endpoints", tags=["webhooks"], responses=ERRORS, route_class=OneHopRoute
)
TOPICS = (
    "loyalty.points_earned",
    "loyalty.tier_changed",
    "loyalty.reward_redeemed",
    "loyalty.points_expiring",
    "review.posted",
    "survey.answered",
    "complaints.digest",
)


class EndpointIn(InputModel):
    url: HttpUrl
    topics: list[str] = Field(
        default_factory=list, description=f"any of {', '.join(TOPICS)}; empty for all"
    )


class EndpointOut(OutputModel):
    id: int
    url: str
    topics: list[str]
    created_at: UtcDatetime


@router.post("", response_model=EndpointOut, status_code=201)
def create(
    body: EndpointIn,
    caller: AdminCaller,
    session: SessionDep,
    now: NowDep,
    settings: SettingsDep,
) -> Any:
    """Register an endpoint; deliveries are signed with the merchant's webhook secret
    (``X-Fidele-Signature: sha256=<hex HMAC-SHA256 of the body>``). The URL must reach a public
    address (422 ``unsafe_webhook_url`` otherwise) unless FIDELE_WEBHOOKS_ALLOW_PRIVATE."""
    return service.create(
        session,
        merchant_id=caller.merchant_id,
        url=str(body.url),
        topics=body.topics,
        now=now,
        allow_private=settings.private_webhooks_allowed,
    )


@router.get("", response_model=list[EndpointOut])
def list_endpoints(caller: AdminCaller, session: SessionDep) -> Any:
    return service.endpoints(session, caller.merchant_id)


@router.delete("/{endpoint_id}", status_code=204, responses={404: {}})
def delete(endpoint_id: Id, caller: AdminCaller, session: SessionDep) -> Response:
    service.deactivate(session, merchant_id=caller.merchant_id, endpoint_id=endpoint_id)
    return Response(status_code=204)
