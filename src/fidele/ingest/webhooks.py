"""Shop webhooks: ``POST /v1/webhooks/shopify/{merchant_id}`` and ``.../woocommerce/...``.

No API key: the HMAC signature of the raw body authenticates the call (see
:mod:`fidele.ingest.connectors.signing`). A missing or bad signature is a 401 and nothing is
stored; a verified payload goes through the same services as the API, in one transaction."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from sqlalchemy.orm import Session

from fidele.deps import NowDep, OneHopRoute, SessionDep, SettingsDep
from fidele.errors import InvalidInput, Unauthorized
from fidele.ingest.connectors import service, signing
from fidele.ingest.connectors.service import WebhookResult
from fidele.kit.schemas import has_nul
from fidele.tenancy.models import Merchant
from fidele.tenancy.repository import MerchantRepository

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=OneHopRoute)
MerchantPath = Annotated[int, Path(ge=1, le=2**62, description="The merchant's id in fidele")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or bad signature (nothing stored)"},
    404: {"description": "The order a refund or a delivery refers to is unknown"},
    422: {"description": "The payload does not map onto a valid order/customer/refund"},
}


async def raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


def _verified(
    session: Session,
    merchant_id: int,
    platform: str,
    body: bytes,
    sig: str | None,
    server_secret: str,
) -> Merchant:
    merchant = MerchantRepository(session).get(merchant_id)
    secrets = signing.secrets_for(session, merchant, platform, server_secret) if merchant else []
    # An unknown merchant answers like a bad signature, so ids cannot be probed.
    if merchant is None or not signing.matches(secrets, body, sig):
        raise Unauthorized("missing or invalid webhook signature")
    return merchant


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("the body is not JSON", field="body") from exc
    if not isinstance(payload, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    if has_nul(payload):
        raise InvalidInput("text must not contain NUL (\\u0000) characters", field="body")
    return payload


@router.post("/shopify/{merchant_id}", response_model=WebhookResult, responses=RESPONSES)
def shopify_webhook(
    merchant_id: MerchantPath,
    body: RawBody,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    x_shopify_hmac_sha256: Annotated[str | None, Header()] = None,
    x_shopify_topic: Annotated[str, Header()] = "",
) -> WebhookResult:
    """Shopify ``orders/create``, ``orders/updated``, ``orders/paid``, ``orders/cancelled``,
    ``orders/fulfilled``, ``refunds/create``, ``customers/create``, and for the delivery
    ``fulfillments/create``, ``fulfillments/update``, ``fulfillment_events/create``; other
    topics are acknowledged and ignored."""
    merchant = _verified(
        session, merchant_id, "shopify", body, x_shopify_hmac_sha256, settings.secret_key
    )
    return service.shopify_webhook(session, merchant, x_shopify_topic, _json(body), now)


@router.post("/woocommerce/{merchant_id}", response_model=WebhookResult, responses=RESPONSES)
def woocommerce_webhook(
    merchant_id: MerchantPath,
    body: RawBody,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    x_wc_webhook_signature: Annotated[str | None, Header()] = None,
    x_wc_webhook_topic: Annotated[str, Header()] = "",
) -> WebhookResult:
    """WooCommerce ``order.created``, ``order.updated``, ``customer.created``, in any API
    version a webhook can be set to (REST v1, v2, v3, Legacy v3). The unsigned ping WooCommerce
    sends when a webhook is saved (form body ``webhook_id=N``) answers 200."""
    if x_wc_webhook_signature is None and body.startswith(b"webhook_id="):
        return WebhookResult(status="ping")
    merchant = _verified(
        session, merchant_id, "woocommerce", body, x_wc_webhook_signature, settings.secret_key
    )
    return service.woocommerce_webhook(session, merchant, x_wc_webhook_topic, _json(body), now)
