"""What a delivery reads is read once per claimed batch and kept per process for a few seconds:
the endpoints and their merchants' secrets (one query for the batch) and the verdict of the
address check (one DNS resolution per endpoint URL). A change made through this process applies
at once; one made elsewhere (another process) once the cache expires; the POST always goes to
the address that was checked."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session, sessionmaker

from fidele.kit import cache
from fidele.kit.clock import FrozenClock
from fidele.kit.plugins import load_everything
from fidele.outbox import service as outbox
from fidele.outbox.models import OutboxMessage
from fidele.settings import get_settings
from fidele.tenancy import domain as tenancy_domain
from fidele.webhooks import domain
from fidele.webhooks import service as webhooks
from tests.conftest import SECRET
from tests.fixtures.factories import Tenant

PUBLIC = "93.184.216.34"


class Receiver:
    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.port = 0

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A loopback receiver; the delivering process allows private addresses unless a test says
    otherwise; the address verdicts of earlier tests are forgotten."""
    monkeypatch.setenv("FIDELE_WEBHOOKS_ALLOW_PRIVATE", "true")
    get_settings.cache_clear()
    webhooks.forget_targets()
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rec.calls.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    webhooks.server_secret["value"] = SECRET
    yield rec
    webhooks.server_secret["value"] = None
    webhooks.forget_targets()
    server.shutdown()
    get_settings.cache_clear()


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The caches' clock, moved by appending seconds to the returned list."""
    real = cache.monotonic
    offset = [0.0]
    monkeypatch.setattr(cache, "monotonic", lambda: real() + sum(offset))
    return offset


def _endpoint(session: Session, tenant: Tenant, url: str) -> int:
    row = webhooks.create(
        session,
        merchant_id=tenant.merchant_id,
        url=url,
        topics=[],
        now=FrozenClock().now(),
        allow_private=True,
    )
    session.commit()
    return row.id


def _publish(session: Session, tenant: Tenant, clock: FrozenClock, n: int, tag: str) -> None:
    for i in range(n):
        webhooks.publish(
            session,
            programme_id=tenant.programme_id,
            merchant_id=tenant.merchant_id,
            topic="loyalty.points_earned",
            payload={"member_id": i, "points": 10 * i, "order_id": f"{tag}-{i}"},
            dedup_key=f"{tag}:{i}",
            now=clock.now(),
        )
    session.commit()


def _deliver(factory: sessionmaker[Session], clock: FrozenClock) -> list[OutboxMessage]:
    """One batch as the delivery loop runs it: claim, prepare, attempt each, record."""
    load_everything()  # the webhook sender, as every process kind registers it
    claimed = outbox.claim_due(factory, clock.now(), 100)
    outbox.prepare(factory, claimed)
    outcomes = [(msg, outbox.attempt(factory, msg)) for msg in claimed]
    outbox.record(factory, outcomes, clock.now())
    return claimed


class Queries:
    def __init__(self, session: Session) -> None:
        self.statements: list[str] = []
        self.conn = session.connection()
        event.listen(self.conn, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.statements.append(statement)

    def reading(self, table: str) -> list[str]:
        return [
            s for s in self.statements if s.lstrip().upper().startswith("SELECT") and table in s
        ]

    def close(self) -> None:
        event.remove(self.conn, "before_cursor_execute", self._seen)


def test_a_batch_reads_its_endpoints_in_one_query(
    session: Session,
    factory: sessionmaker[Session],
    tenant: Tenant,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    ids = [_endpoint(session, tenant, receiver.url(path=f"/hook{i}")) for i in range(3)]
    _publish(session, tenant, clock, 4, "a")
    queries = Queries(session)
    try:
        claimed = _deliver(factory, clock)
    finally:
        queries.close()
    assert len(claimed) == 12 and len(receiver.calls) == 12
    # one query for the endpoints of the batch, one for their merchants' secrets
    assert len(queries.reading("webhook_endpoints")) == 1
    assert len(queries.reading("merchants")) == 1
    secret = tenancy_domain.webhook_secret(SECRET, tenant.merchant_id, _salt(session, tenant))
    assert secret == tenant.webhook_secret
    for headers, body in receiver.calls:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Fidele-Signature"] == expected
    assert sorted({h["X-Fidele-Delivery"] for h, _ in receiver.calls}) == sorted(
        str(m.id) for m in claimed
    )
    assert {m.payload["endpoint_id"] for m in claimed} == set(ids)
    with factory() as s:
        assert {m.status for m in s.query(OutboxMessage)} == {"sent"}


def _salt(session: Session, tenant: Tenant) -> str:
    return str(
        session.execute(
            text("SELECT webhook_salt FROM merchants WHERE id = :id"), {"id": tenant.merchant_id}
        ).scalar_one()
    )


def test_the_next_batch_reads_nothing_while_the_cache_is_fresh(
    session: Session,
    factory: sessionmaker[Session],
    tenant: Tenant,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    _endpoint(session, tenant, receiver.url())
    _publish(session, tenant, clock, 2, "a")
    _deliver(factory, clock)
    _publish(session, tenant, clock, 3, "b")
    queries = Queries(session)
    try:
        assert len(_deliver(factory, clock)) == 3
    finally:
        queries.close()
    assert queries.reading("webhook_endpoints") == [] and queries.reading("merchants") == []
    assert len(receiver.calls) == 5


def test_an_endpoint_deactivated_in_this_process_stops_at_once(
    session: Session,
    factory: sessionmaker[Session],
    tenant: Tenant,
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    endpoint_id = _endpoint(session, tenant, receiver.url())
    _publish(session, tenant, clock, 1, "a")
    _deliver(factory, clock)  # the endpoint is cached now
    _publish(session, tenant, clock, 2, "b")
    webhooks.deactivate(session, merchant_id=tenant.merchant_id, endpoint_id=endpoint_id)
    session.commit()
    assert len(_deliver(factory, clock)) == 2
    assert len(receiver.calls) == 1  # the two queued before the deactivation are not POSTed


def test_changes_made_by_another_process_apply_within_the_ttl(
    session: Session,
    factory: sessionmaker[Session],
    connection: Any,
    tenant: Tenant,
    clock: FrozenClock,
    receiver: Receiver,
    later: list[float],
) -> None:
    """Another process (the API, a CLI) rotates the merchant's salt, then deactivates the
    endpoint: not seen through the cache, so seen once it expires (ROUTING_TTL_SECONDS)."""
    endpoint_id = _endpoint(session, tenant, receiver.url())
    _publish(session, tenant, clock, 1, "a")
    _deliver(factory, clock)
    connection.execute(
        text("UPDATE merchants SET webhook_salt = 'rotated' WHERE id = :id"),
        {"id": tenant.merchant_id},
    )
    _publish(session, tenant, clock, 1, "b")
    _deliver(factory, clock)  # within the TTL: the old secret still signs
    old = tenant.webhook_secret
    headers, body = receiver.calls[-1]
    assert headers["X-Fidele-Signature"] == webhooks.sign(old, body)
    later.append(webhooks.ROUTING_TTL_SECONDS + 0.1)
    _publish(session, tenant, clock, 1, "c")
    _deliver(factory, clock)
    new = tenancy_domain.webhook_secret(SECRET, tenant.merchant_id, "rotated")
    headers, body = receiver.calls[-1]
    assert headers["X-Fidele-Signature"] == webhooks.sign(new, body) != webhooks.sign(old, body)
    _publish(session, tenant, clock, 2, "d")  # queued while the endpoint is active
    connection.execute(
        text("UPDATE webhook_endpoints SET active = :no WHERE id = :id"),
        {"no": False, "id": endpoint_id},
    )
    later.append(webhooks.ROUTING_TTL_SECONDS + 0.1)
    assert len(_deliver(factory, clock)) == 2
    assert len(receiver.calls) == 3


def test_an_endpoint_url_is_resolved_once_per_ttl_and_rebinding_is_still_refused(
    session: Session,
    factory: sessionmaker[Session],
    tenant: Tenant,
    clock: FrozenClock,
    receiver: Receiver,
    later: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Production settings (private addresses refused). The name resolves to a public address
    for the first batch (we pin that address to loopback to receive it: the check itself is
    what is under test); later it resolves to loopback, which is refused once the verdict
    expires, and nothing reaches the receiver."""
    monkeypatch.setenv("FIDELE_WEBHOOKS_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    asked: list[str] = []
    answer = [PUBLIC]

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return list(answer)

    monkeypatch.setattr(domain, "resolve", resolve)
    pinned: list[str] = []
    real_post = webhooks.client().post

    def post(url: str, **kwargs: Any) -> Any:  # the checked address, sent to loopback
        pinned.append(url)
        return real_post(url.replace(PUBLIC, "127.0.0.1"), **kwargs)

    monkeypatch.setattr(webhooks.client(), "post", post)
    hook = receiver.url(host="hooks.example.com")
    _endpoint(session, tenant, hook)
    _publish(session, tenant, clock, 5, "a")
    assert len(_deliver(factory, clock)) == 5
    assert asked == ["hooks.example.com"] * 2  # registration; five deliveries, one resolution
    assert len(receiver.calls) == 5
    assert pinned == [f"http://{PUBLIC}:{receiver.port}/hook"] * 5
    assert {h["Host"] for h, _ in receiver.calls} == {f"hooks.example.com:{receiver.port}"}
    answer[:] = ["127.0.0.1"]  # rebound
    later.append(webhooks.TARGET_TTL_SECONDS + 0.1)
    _publish(session, tenant, clock, 2, "b")
    _deliver(factory, clock)
    assert asked == ["hooks.example.com"] * 4  # each refused attempt resolves again
    assert len(receiver.calls) == 5
    with factory() as s:
        refused = s.query(OutboxMessage).filter(OutboxMessage.status == "pending").all()
        assert len(refused) == 2
        assert all("loopback, private or reserved" in (m.last_error or "") for m in refused)
