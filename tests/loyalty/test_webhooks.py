from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fidele.kit.clock import FrozenClock
from fidele.outbox.models import OutboxMessage
from fidele.outbox.service import deliver_due
from fidele.settings import Settings, get_settings
from fidele.webhooks import service as webhooks
from tests.conftest import SECRET
from tests.fixtures.factories import Tenant, order_body


class Receiver:
    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.fail = 0


@pytest.fixture
def private_allowed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The operator allows webhooks to private addresses (the receivers here are on loopback):
    for registration (the app's settings) and delivery (the worker's)."""
    settings.webhooks_allow_private = True
    monkeypatch.setenv("FIDELE_WEBHOOKS_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def receiver(private_allowed: None) -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rec.calls.append((dict(self.headers), body))
            status = 500 if rec.fail > 0 else 204
            rec.fail -= 1
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    webhooks.server_secret["value"] = SECRET
    yield rec, f"http://127.0.0.1:{server.server_port}/hook"
    webhooks.server_secret["value"] = None
    server.shutdown()


def test_signed_delivery_with_retry(
    api: TestClient,
    tenant: Tenant,
    factory: sessionmaker[Session],
    clock: FrozenClock,
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    r = api.post("/v1/webhooks/endpoints", json={"url": url, "topics": ["loyalty.points_earned"]})
    assert r.status_code == 201, r.text
    assert [e["url"] for e in api.get("/v1/webhooks/endpoints").json()] == [url]
    api.post("/v1/orders", json=order_body(placed_at="2026-06-01T12:00:00Z"))
    rec.fail = 1
    assert deliver_due(factory, clock.now()) == 0  # 500: retried later
    assert deliver_due(factory, clock.now()) == 0  # not due yet (backoff)
    clock.advance(minutes=1)
    assert deliver_due(factory, clock.now()) == 1
    headers, body = rec.calls[-1]
    expected = (
        "sha256=" + hmac.new(tenant.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    )
    assert headers["X-Fidele-Signature"] == expected
    data = json.loads(body)
    assert (data["topic"], data["data"]["points"]) == ("loyalty.points_earned", 80)
    with factory() as s:
        msgs = s.query(OutboxMessage).filter_by(channel="webhook").all()
        assert [(m.status, m.attempts) for m in msgs] == [("sent", 2)]
    # at least once: the failed try and the retry carry the same id to deduplicate on
    assert [h["X-Fidele-Delivery"] for h, _ in rec.calls] == [str(msgs[0].id)] * 2


def test_endpoint_removal_is_merchant_scoped(api: TestClient, private_allowed: None) -> None:
    ep = api.post("/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/x"}).json()
    assert api.delete("/v1/webhooks/endpoints/999999").status_code == 404
    assert api.delete(f"/v1/webhooks/endpoints/{ep['id']}").status_code == 204
    assert api.get("/v1/webhooks/endpoints").json() == []
