"""Outgoing webhooks: endpoints per merchant, messages queued in the outbox (same
transaction as the change), POSTed by the ``webhook`` sender with an HMAC-SHA256 signature.
A non-2xx answer or a network error raises, and the outbox retries with backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.errors import NotFound
from fidele.kit.cache import ProcessCache
from fidele.outbox import service as outbox
from fidele.outbox.models import OutboxMessage
from fidele.settings import get_settings
from fidele.tenancy import service as tenancy
from fidele.webhooks import domain
from fidele.webhooks.models import WebhookEndpoint

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# One pooled client per process, shared by the delivery threads.
_http: dict[str, httpx.Client] = {}
server_secret = {"value": None}  # tests and apps may pin the server secret here


def create(
    session: Session,
    *,
    merchant_id: int,
    url: str,
    topics: list[str],
    now: datetime,
    allow_private: bool = False,
) -> WebhookEndpoint:
    """Register an endpoint; a URL that is not public http(s) is refused (422 naming ``url``)
    unless ``allow_private`` (see :mod:`fidele.webhooks.domain`)."""
    domain.check_url(url, allow_private=allow_private)
    row = WebhookEndpoint(
        merchant_id=merchant_id, url=url, topics=topics, active=True, created_at=now
    )
    session.add(row)
    session.flush()
    return row


def endpoints(session: Session, merchant_id: int) -> Sequence[WebhookEndpoint]:
    stmt = select(WebhookEndpoint).where(
        WebhookEndpoint.merchant_id == merchant_id, WebhookEndpoint.active.is_(True)
    )
    return session.execute(stmt.order_by(WebhookEndpoint.id)).scalars().all()


def deactivate(session: Session, *, merchant_id: int, endpoint_id: int) -> None:
    row = session.get(WebhookEndpoint, endpoint_id)
    if row is None or row.merchant_id != merchant_id:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    row.active = False


# The subscriptions every points change, tier change and redemption consults: per process,
# for ROUTING_TTL_SECONDS. A change through this process applies at once; one made through
# another process (a second worker) within that time.
ROUTING_TTL_SECONDS = 2.0
Route = tuple[int, frozenset[str]]  # endpoint id, its topics (empty: all)
_routes: ProcessCache[tuple[Route, ...]] = ProcessCache(
    "webhook_routes",
    ROUTING_TTL_SECONDS,
    lambda objects: any(isinstance(o, WebhookEndpoint) for o in objects),
)


def routes(session: Session, merchant_id: int) -> tuple[Route, ...]:
    """The merchant's active endpoints and their topics, from the cache when fresh."""
    return _routes.get(
        session,
        merchant_id,
        lambda: tuple(
            (ep.id, frozenset(ep.topics or ())) for ep in endpoints(session, merchant_id)
        ),
    )


def publish(
    session: Session,
    *,
    programme_id: int,
    merchant_id: int,
    topic: str,
    payload: dict[str, Any],
    dedup_key: str,
    now: datetime,
) -> int:
    """Queue ``payload`` for each of the merchant's endpoints subscribed to ``topic``."""
    count = 0
    for endpoint_id, topics in routes(session, merchant_id):
        if topics and topic not in topics:
            continue
        body = {"topic": topic, "created_at": now.isoformat(), "data": payload}
        outbox.enqueue(
            session,
            programme_id=programme_id,
            merchant_id=merchant_id,
            channel="webhook",
            topic=topic,
            dedup_key=f"{dedup_key}:ep{endpoint_id}",
            payload={"endpoint_id": endpoint_id, "body": body},
            now=now,
        )
        count += 1
    return count


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(session: Session, msg: OutboxMessage) -> None:
    """POST the message to its endpoint (the ``webhook`` sender, see ``webhooks.senders``).
    ``X-Fidele-Delivery`` is the outbox row's id: the same on every retry of one message, so a
    receiver deduplicates on it (delivery is at least once)."""
    ep = session.get(WebhookEndpoint, msg.payload["endpoint_id"])
    if ep is None or not ep.active:
        return  # endpoint removed: nothing to deliver
    merchant = tenancy.get_merchant(session, ep.merchant_id)
    secret = tenancy.merchant_webhook_secret(
        merchant, server_secret["value"] or get_settings().secret_key
    )
    body = json.dumps(msg.payload["body"], sort_keys=True, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Fidele-Signature": sign(secret, body),
        "X-Fidele-Topic": msg.topic,
        "X-Fidele-Delivery": str(msg.id),
    }
    # Checked again now, after DNS resolution, and sent to the address that was checked.
    target = domain.check_url(ep.url, allow_private=get_settings().private_webhooks_allowed)
    response = client().post(
        target.url,
        content=body,
        headers={**headers, "Host": target.host},
        extensions=target.extensions,
    )
    response.raise_for_status()


def client() -> httpx.Client:
    """The process's HTTP client: keep-alive connections reused across deliveries, at most
    ``outbox_concurrency`` of them (the delivery pool never needs more)."""
    if "client" not in _http:
        size = get_settings().outbox_concurrency
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        _http.setdefault("client", httpx.Client(timeout=TIMEOUT, limits=limits))
    return _http["client"]
