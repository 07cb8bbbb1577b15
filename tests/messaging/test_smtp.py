"""Delivery over real SMTP (aiosmtpd on loopback), the webhook channel, the throttle."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from email import message_from_bytes
from email.policy import default
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from fidele.kit.clock import FrozenClock
from fidele.messaging import delivery, service
from fidele.messaging.models import MessageSend
from fidele.settings import Settings
from fidele.tenancy import service as tenancy
from tests.conftest import SECRET, T0
from tests.messaging.conftest import make_customer, make_template


def _settings(sink) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(env="test", secret_key=SECRET, smtp_url=sink.url, smtp_timeout_seconds=5)


def _queue(session, tenant, n=1, topic="lifecycle"):  # type: ignore[no-untyped-def]
    make_template(session, tenant)
    service.put_policy(session, tenant.merchant_id, {"caps": {}}, T0)
    ids = []
    for i in range(n):
        c = make_customer(session, tenant, f"c{i}")
        out = service.send(
            session,
            merchant_id=tenant.merchant_id,
            customer_id=c.id,
            template="hello",
            topic=topic,
            key=f"k{i}",
            now=T0,
        )
        assert out.status == "queued"
        ids.append(out.send_id)
    session.commit()
    return ids


def _row(session, send_id):  # type: ignore[no-untyped-def]
    row = session.get(MessageSend, send_id)
    session.refresh(row)
    return row


def test_sent_over_smtp_once_with_headers(session, factory, tenant, sink):
    ids = _queue(session, tenant, 3)
    sent = delivery.deliver_due(factory, FrozenClock(T0), settings=_settings(sink))
    assert sent == 3, [
        (r.status, r.reason, r.last_error) for r in map(lambda i: _row(session, i), ids)
    ]
    assert len(sink.messages) == 3
    msgs = [message_from_bytes(m, policy=default) for m in sink.messages]
    assert sorted(m["Message-ID"] for m in msgs) == sorted(_row(session, i).message_id for i in ids)
    assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in msgs)
    assert delivery.deliver_due(factory, FrozenClock(T0), settings=_settings(sink)) == 0
    assert len(sink.messages) == 3


def test_temporary_failure_retries_with_backoff_permanent_is_recorded(
    session, factory, tenant, sink
):
    ids = _queue(session, tenant, 2)
    sink.refuse = {
        "c0@example.com": "451 4.3.0 try later",
        "c1@example.com": "550 5.1.1 no such user",
    }
    clock = FrozenClock(T0)
    assert delivery.deliver_due(factory, clock, settings=_settings(sink)) == 0
    soft, hard = _row(session, ids[0]), _row(session, ids[1])
    assert (soft.status, soft.attempts, soft.next_attempt_at) == (
        "queued",
        1,
        T0 + timedelta(minutes=1),
    )
    assert "451" in soft.last_error
    assert (hard.status, hard.reason, hard.attempts) == ("failed", "refused", 1)
    sink.refuse = {}
    assert delivery.deliver_due(factory, clock, settings=_settings(sink)) == 0  # not due yet
    clock.set(T0 + timedelta(minutes=1))
    assert delivery.deliver_due(factory, clock, settings=_settings(sink)) == 1
    assert (_row(session, ids[0]).status, _row(session, ids[0]).attempts) == ("sent", 2)
    assert len(sink.messages) == 1


def test_smtp_down_is_temporary(session, factory, tenant):
    ids = _queue(session, tenant, 1)
    from tests.fixtures.console import free_port

    down = Settings(env="test", secret_key=SECRET, smtp_url=f"smtp://127.0.0.1:{free_port()}")
    assert delivery.deliver_due(factory, FrozenClock(T0), settings=down) == 0
    row = _row(session, ids[0])
    assert (row.status, row.attempts) == ("queued", 1) and "connection" in row.last_error


def test_smtp_url_parsing():
    from fidele.messaging.transports import SmtpConfig

    c = SmtpConfig.parse("smtp://us%40er:p%3Ass@mail.example:2525?starttls=true", 5)
    assert (c.host, c.port, c.user, c.password, c.starttls, c.tls) == (
        "mail.example",
        2525,
        "us@er",
        "p:ss",
        True,
        False,
    )
    assert SmtpConfig.parse("smtps://h", 5).port == 465
    with pytest.raises(ValueError, match="smtp://"):
        SmtpConfig.parse("http://h", 5)


def test_webhook_channel_is_signed(session, factory, tenant):
    received: list[tuple[dict, bytes]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):  # type: ignore[no-untyped-def]
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        make_template(session, tenant)
        url = f"http://127.0.0.1:{server.server_address[1]}/sms"
        service.put_policy(session, tenant.merchant_id, {"caps": {}, "webhook_url": url}, T0)
        c = make_customer(session, tenant, topics=())
        service.set_consent(
            session,
            merchant_id=tenant.merchant_id,
            customer_id=c.id,
            topic="lifecycle",
            channel="sms",
            granted=True,
            source="t",
            now=T0,
        )
        out = service.send(
            session,
            merchant_id=tenant.merchant_id,
            customer_id=c.id,
            template="hello",
            topic="lifecycle",
            key="sms1",
            now=T0,
            channel="sms",
        )
        assert out.status == "queued"
        session.commit()
        settings = Settings(env="development", secret_key=SECRET)
        assert delivery.deliver_due(factory, FrozenClock(T0), settings=settings) == 1
    finally:
        server.shutdown()
    headers, body = received[0]
    merchant = tenancy.get_merchant(session, tenant.merchant_id)
    secret = tenancy.merchant_webhook_secret(merchant, SECRET)
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Fidele-Signature"] == expected
    assert headers["X-Fidele-Delivery"] == str(out.send_id)
    data = json.loads(body)
    assert (data["channel"], data["subject"], data["customer"]["id"]) == ("sms", "Hello C1", "c1")


def test_throttle_books_slots_per_merchant(session, factory, tenant):
    ids = _queue(session, tenant, 30)
    service.put_policy(session, tenant.merchant_id, {"caps": {}, "rate_per_second": 20}, T0)
    session.commit()
    claims = delivery.claim(factory, T0, 100, timedelta(minutes=5))
    # 20 a second: the claim books the next second (21 slots, 0 to 1.0 s), the rest waits
    assert len(claims) == 21
    assert [round(c.delay, 3) for c in claims[:3]] == [0.0, 0.05, 0.1]
    assert round(claims[-1].delay, 3) == 1.0
    # a second claim at the same instant (another worker) continues after those slots
    more = delivery.claim(factory, T0, 100, timedelta(minutes=5))
    assert more == []  # the next slot is more than a second ahead
    later = delivery.claim(factory, T0 + timedelta(seconds=1), 100, timedelta(minutes=5))
    assert round(later[0].delay, 3) == 0.05 and len(later) == 9 and len(ids) == 30
