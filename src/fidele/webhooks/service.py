"""Outgoing webhooks: endpoints per merchant, messages queued in the outbox (same
transaction as the change), POSTed by the ``webhook`` sender with an HMAC-SHA256 signature.
A non-2xx answer or a network error raises, and the outbox retries with backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.errors import NotFound
from fidele.kit import cache
from fidele.kit.cache import ProcessCache
from fidele.outbox import service as outbox
from fidele.outbox.models import OutboxMessage
from fidele.settings import get_settings
from fidele.tenancy import service as tenancy
from fidele.tenancy.models import Merchant
from fidele.webhooks import domain
from fidele.webhooks.models import WebhookEndpoint

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_http = threading.local()  # the client of each delivery thread (``client``)
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


# What a delivery needs of its endpoint, per process, for ROUTING_TTL_SECONDS as the routes:
# read for a whole claimed batch in one query (``prepare``), then from memory. An endpoint
# deactivated, or a merchant's secret rotated, through this process applies at once; through
# another process (the API while a worker delivers), within ROUTING_TTL_SECONDS.
@dataclass(frozen=True)
class Destination:
    url: str
    active: bool
    secret: str = field(repr=False)


_destinations: ProcessCache[Destination] = ProcessCache(
    "webhook_destinations",
    ROUTING_TTL_SECONDS,
    lambda objects: any(isinstance(o, WebhookEndpoint | Merchant) for o in objects),
)


def destinations(session: Session, endpoint_ids: Sequence[int]) -> dict[int, Destination]:
    """The endpoints ``endpoint_ids`` with their merchants' secrets, from the cache when fresh,
    the others in two queries whatever their number; removed endpoints are absent."""

    def load(ids: list[Any]) -> dict[Any, Destination]:
        rows = session.execute(
            select(
                WebhookEndpoint.id,
                WebhookEndpoint.url,
                WebhookEndpoint.active,
                WebhookEndpoint.merchant_id,
            ).where(WebhookEndpoint.id.in_(ids))
        ).all()
        secrets = tenancy.webhook_secrets(
            session,
            sorted({row.merchant_id for row in rows}),
            server_secret["value"] or get_settings().secret_key,
        )
        return {
            row.id: Destination(row.url, row.active, secrets[row.merchant_id])
            for row in rows
            if row.merchant_id in secrets
        }

    found = _destinations.get_many(session, endpoint_ids, load)
    return {int(k): v for k, v in found.items()}  # type: ignore[call-overload]


@outbox.preparer("webhook")
def prepare(session: Session, msgs: list[OutboxMessage]) -> None:
    """Read the endpoints of a claimed batch in one go (the outbox calls this per batch)."""
    destinations(session, [msg.payload["endpoint_id"] for msg in msgs])


# The verdict of the address check, per URL, for TARGET_TTL_SECONDS: a batch to one endpoint
# resolves its name once, not once per message. The POST still goes to the address that was
# checked (``Target.url``), so a name rebound to a private address meanwhile reaches nothing
# private; it is refused once the verdict expires. Refusals are not kept (a refused message
# waits its backoff anyway).
TARGET_TTL_SECONDS = 5.0
_targets: dict[tuple[str, bool], tuple[float, domain.Target]] = {}


def target(url: str, *, allow_private: bool) -> domain.Target:
    """``domain.check_url(url)``, remembered for TARGET_TTL_SECONDS."""
    key = (url, allow_private)
    entry = _targets.get(key)
    if entry is not None and entry[0] > cache.monotonic():
        return entry[1]
    checked = domain.check_url(url, allow_private=allow_private)
    if len(_targets) > 10_000:  # expired verdicts of endpoints long gone
        _targets.clear()
    _targets[key] = (cache.monotonic() + TARGET_TTL_SECONDS, checked)
    return checked


def forget_targets() -> None:
    _targets.clear()


def send(session: Session, msg: OutboxMessage) -> None:
    """POST the message to its endpoint (the ``webhook`` sender, see ``webhooks.senders``).
    ``X-Fidele-Delivery`` is the outbox row's id: the same on every retry of one message, so a
    receiver deduplicates on it (delivery is at least once)."""
    endpoint_id = msg.payload["endpoint_id"]
    dest = destinations(session, [endpoint_id]).get(endpoint_id)
    if dest is None or not dest.active:
        return  # endpoint removed or deactivated: nothing to deliver
    body = json.dumps(msg.payload["body"], sort_keys=True, separators=(",", ":")).encode()
    # Checked again at delivery (not only at registration), after DNS resolution, and sent to
    # the address that was checked.
    checked = target(dest.url, allow_private=get_settings().private_webhooks_allowed)
    response = client().post(
        checked.url,
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Fidele-Signature": sign(dest.secret, body),
            "X-Fidele-Topic": msg.topic,
            "X-Fidele-Delivery": str(msg.id),
            "Host": checked.host,
        },
        extensions=checked.extensions,
    )
    response.raise_for_status()


def client() -> httpx.Client:
    """The calling thread's HTTP client, its keep-alive connections reused across the
    deliveries of that thread. One per delivery thread rather than one shared: a shared pool
    costs a lock round per request that the threads contend for; a thread sends one request
    at a time, so its few connections are for alternating endpoints."""
    found: httpx.Client | None = getattr(_http, "client", None)
    if found is None:
        limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
        found = _http.client = httpx.Client(timeout=TIMEOUT, limits=limits)
    return found
