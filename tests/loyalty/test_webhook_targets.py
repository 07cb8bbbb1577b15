"""Outgoing webhooks reach public addresses only (no request forgery towards loopback, the
private network or the cloud metadata service), checked at registration and again at delivery
after DNS resolution, unless the operator allows private addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fidele.kit.clock import FrozenClock
from fidele.outbox.models import OutboxMessage
from fidele.outbox.service import deliver_due
from fidele.settings import Settings, get_settings
from fidele.webhooks import domain
from fidele.webhooks import service as webhooks
from tests.fixtures.factories import order_body
from tests.loyalty.test_webhooks import (  # noqa: F401 (fixtures)
    Receiver,
    private_allowed,
    receiver,
)

PUBLIC = "93.184.216.34"


@pytest.fixture
def worker_private(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The delivering process with private addresses refused (production's default)."""
    monkeypatch.setenv("FIDELE_WEBHOOKS_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _resolving(monkeypatch: pytest.MonkeyPatch, *addresses: str) -> list[str]:
    """Make every name resolve to ``addresses``; returns the names looked up."""
    asked: list[str] = []

    def fake(host: str, port: int) -> list[str]:
        asked.append(host)
        return list(addresses)

    monkeypatch.setattr(domain, "resolve", fake)
    webhooks.forget_targets()  # verdicts a delivery remembered from the previous answers
    return asked


class TestRegistration:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1/",
            "http://127.0.0.1:8000/internal-admin",
            "http://10.0.0.1/",
            "http://192.168.1.10/hook",
            "http://172.16.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://localhost/",
            "http://localhost:8000/hook",
        ],
    )
    def test_non_public_is_refused(self, api: TestClient, url: str) -> None:
        r = api.post("/v1/webhooks/endpoints", json={"url": url})
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "unsafe_webhook_url"
        assert [f["field"] for f in r.json()["fields"]] == ["url"]
        assert api.get("/v1/webhooks/endpoints").json() == []

    def test_public_name_resolving_to_loopback_is_refused(
        self, api: TestClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        asked = _resolving(monkeypatch, PUBLIC, "127.0.0.1")  # one bad address is enough
        r = api.post("/v1/webhooks/endpoints", json={"url": "https://hooks.example.com/x"})
        assert r.status_code == 422, r.text
        assert asked == ["hooks.example.com"]

    def test_public_is_accepted(self, api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
        _resolving(monkeypatch, PUBLIC)
        r = api.post("/v1/webhooks/endpoints", json={"url": "https://hooks.example.com/x"})
        assert r.status_code == 201, r.text

    def test_allowed_by_the_operator(self, api: TestClient, settings: Settings) -> None:
        settings.webhooks_allow_private = True
        r = api.post("/v1/webhooks/endpoints", json={"url": "http://127.0.0.1:9/x"})
        assert r.status_code == 201, r.text

    def test_default_is_allowed_in_development_only(self) -> None:
        assert Settings(env="development").private_webhooks_allowed
        assert not Settings(env="test").private_webhooks_allowed
        assert not Settings(env="production", secret_key="s" * 32).private_webhooks_allowed
        assert Settings(env="production", secret_key="s" * 32, webhooks_allow_private=True)


class TestDelivery:
    def test_rebinding_to_loopback_is_refused_at_delivery(
        self,
        api: TestClient,
        factory: sessionmaker[Session],
        clock: FrozenClock,
        receiver: tuple[Receiver, str],  # noqa: F811
        settings: Settings,
        monkeypatch: pytest.MonkeyPatch,
        worker_private: None,
    ) -> None:
        """Public when registered, 127.0.0.1 when delivered: nothing reaches the receiver."""
        rec, url = receiver
        settings.webhooks_allow_private = False
        port = url.split(":")[2].split("/")[0]
        _resolving(monkeypatch, PUBLIC)
        hook = f"http://hooks.example.com:{port}/hook"
        assert api.post("/v1/webhooks/endpoints", json={"url": hook}).status_code == 201
        api.post("/v1/orders", json=order_body(placed_at="2026-06-01T12:00:00Z"))
        _resolving(monkeypatch, "127.0.0.1")
        assert deliver_due(factory, clock.now()) == 0
        assert rec.calls == []
        with factory() as s:
            msg = s.query(OutboxMessage).filter_by(channel="webhook").one()
            assert msg.status != "sent"
            assert "loopback, private or reserved" in (msg.last_error or "")

    def test_delivery_connects_to_the_checked_address(
        self,
        api: TestClient,
        factory: sessionmaker[Session],
        clock: FrozenClock,
        receiver: tuple[Receiver, str],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """With private addresses allowed, a name is resolved once, the POST goes to that
        address, and the name stays in the Host header."""
        rec, url = receiver
        port = url.split(":")[2].split("/")[0]
        asked = _resolving(monkeypatch, "127.0.0.1")
        hook = f"http://hooks.example.com:{port}/hook"
        assert api.post("/v1/webhooks/endpoints", json={"url": hook}).status_code == 201
        api.post("/v1/orders", json=order_body(placed_at="2026-06-01T12:00:00Z"))
        assert deliver_due(factory, clock.now()) == 1
        headers, _ = rec.calls[-1]
        assert headers["Host"] == f"hooks.example.com:{port}"
        assert asked == ["hooks.example.com", "hooks.example.com"]  # registration, delivery


class TestCheckUrl:
    @pytest.mark.parametrize(
        ("address", "public"),
        [
            ("8.8.8.8", True),
            ("2606:4700:4700::1111", True),
            ("127.0.0.1", False),
            ("10.1.2.3", False),
            ("169.254.169.254", False),
            ("224.0.0.1", False),
            ("240.0.0.1", False),
            ("255.255.255.255", False),
            ("::", False),
            ("::ffff:10.0.0.1", False),
            ("::ffff:8.8.8.8", True),
            ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
            ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
            ("ff02::1", False),
        ],
    )
    def test_is_public_address(self, address: str, public: bool) -> None:
        assert domain.is_public_address(ipaddress.ip_address(address)) is public

    def test_https_keeps_the_name_for_tls(self) -> None:
        target = domain.check_url(
            "https://user:pw@hooks.example.com/x?a=1",
            allow_private=False,
            resolver=lambda host, port: ["2606:4700:4700::1111"],
        )
        assert target.url == "https://user:pw@[2606:4700:4700::1111]/x?a=1"
        assert target.host == "hooks.example.com"
        assert target.extensions == {"sni_hostname": "hooks.example.com"}

    @pytest.mark.parametrize(
        "url", ["ftp://hooks.example.com/", "file:///etc/passwd", "http:///x", "gopher://h/"]
    )
    def test_other_schemes_are_refused(self, url: str) -> None:
        with pytest.raises(domain.UnsafeWebhookUrl):
            domain.check_url(url, allow_private=True, resolver=lambda h, p: [PUBLIC])

    def test_unresolvable_is_refused(self) -> None:
        def fail(host: str, port: int) -> list[str]:
            raise OSError("Name or service not known")

        with pytest.raises(domain.UnsafeWebhookUrl) as exc:
            domain.check_url("http://nowhere.invalid/", allow_private=True, resolver=fail)
        assert exc.value.extra["fields"][0]["field"] == "url"
