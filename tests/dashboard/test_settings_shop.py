"""``/settings/shop`` through the test client on SQLite and PostgreSQL: webhooks (the
webhooks service, its URL check), connectors (platform secrets stored encrypted, fidele's
secret rotated and shown once), and the locale, currency and timezone every page then
follows."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.dashboard.models import DashboardActivity
from fidele.db.session import transaction
from fidele.demo.service import DemoShop
from fidele.events.models import ConnectorSecret
from fidele.kit.clock import FrozenClock
from fidele.loyalty import reports
from fidele.outbox.models import OutboxMessage
from fidele.tenancy import service as tenancy
from fidele.tenancy.models import Programme
from fidele.webhooks import domain as webhook_domain
from fidele.webhooks import service as webhooks
from fidele.webhooks.models import WebhookEndpoint
from tests.conftest import SECRET
from tests.dashboard.conftest import HTML, login, make_user, post
from tests.dashboard.test_pages import text_of


def test_webhook_endpoints_are_added_listed_and_disabled(
    admin: TestClient, session: Session, shop: DemoShop, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = {"hooks.example": ["93.184.216.34"], "127.0.0.1": ["127.0.0.1"]}
    monkeypatch.setattr(webhook_domain, "resolve", lambda host, port: public[host])
    page = admin.get("/settings/shop", headers=HTML)
    assert page.status_code == 200 and "No webhook endpoints" in page.text
    # the webhooks service's URL check: no private address (FIDELE_WEBHOOKS_ALLOW_PRIVATE off)
    post(admin, "/settings/shop/webhooks", "/settings/shop", {"url": "http://127.0.0.1/x"})
    assert "resolves to a loopback" in admin.get("/settings/shop").text
    assert session.execute(select(func.count()).select_from(WebhookEndpoint)).scalar() == 0
    data = {"url": "https://hooks.example/fidele", "topic_loyalty.tier_changed": "1"}
    assert post(admin, "/settings/shop/webhooks", "/settings/shop", data).status_code == 303  # type: ignore[attr-defined]
    (row,) = webhooks.endpoints(session, shop.merchant_id)
    assert (row.url, row.topics) == ("https://hooks.example/fidele", ["loyalty.tier_changed"])
    listing = admin.get("/settings/shop").text
    assert "https://hooks.example/fidele" in text_of(listing, f"endpoint-{row.id}")
    assert "loyalty.tier_changed" in text_of(listing, f"endpoint-{row.id}")
    gone = post(admin, f"/settings/shop/webhooks/{row.id}/disable", "/settings/shop", {})
    assert gone.status_code == 303  # type: ignore[attr-defined]
    session.expire_all()
    assert [e.id for e in webhooks.endpoints(session, shop.merchant_id)] == []
    assert "webhook.disabled" in admin.get("/activity").text


def test_recent_deliveries_show_the_outbox_status(
    admin: TestClient, factory: sessionmaker[Session], shop: DemoShop, clock: FrozenClock
) -> None:
    with transaction(factory) as s:
        s.add(
            OutboxMessage(
                programme_id=shop.programme_id,
                merchant_id=shop.merchant_id,
                channel="webhook",
                topic="loyalty.points_earned",
                dedup_key="dashboard-test-1",
                payload={"endpoint_id": 1, "body": {}},
                status="dead",
                attempts=8,
                next_attempt_at=clock.now(),
                last_error="HTTP 500 from hooks.example",
                created_at=clock.now(),
            )
        )
    table = text_of(admin.get("/settings/shop").text, "deliveries")
    assert "loyalty.points_earned" in table and "failed" in table and "HTTP 500" in table


def test_a_platform_secret_is_stored_encrypted_and_verifies_webhooks(
    admin: TestClient, client: TestClient, session: Session, shop: DemoShop
) -> None:
    done = post(
        admin, "/settings/shop/connectors/shopify", "/settings/shop", {"secret": "shpss_abc123"}
    )
    assert done.status_code == 303  # type: ignore[attr-defined]
    row = session.execute(select(ConnectorSecret)).scalar_one()
    assert row.platform == "shopify" and "shpss_abc123" not in row.encrypted
    page = admin.get("/settings/shop").text
    assert "set on" in text_of(page, "connector-shopify") and "shpss_abc123" not in page
    # a Shopify webhook signed with that secret is accepted, and the status shows it
    body = json.dumps({"id": 991, "email": "new@buyer.test"}).encode()
    sig = base64.b64encode(hmac.new(b"shpss_abc123", body, hashlib.sha256).digest()).decode()
    answer = client.post(
        f"/v1/webhooks/shopify/{shop.merchant_id}",
        content=body,
        headers={"X-Shopify-Hmac-Sha256": sig, "X-Shopify-Topic": "customers/create"},
    )
    assert answer.status_code == 200, answer.text
    status = text_of(admin.get("/settings/shop").text, "connector-shopify")
    assert "not recently" not in status
    bad = post(admin, "/settings/shop/connectors/magento", "/settings/shop", {"secret": "x"})
    assert bad.status_code == 303  # type: ignore[attr-defined]
    assert "platform must be one of" in admin.get("/settings/shop").text
    assert "connector.secret_set" in admin.get("/activity").text


def test_rotating_fidele_s_secret_shows_it_once(
    admin: TestClient, session: Session, shop: DemoShop
) -> None:
    merchant = tenancy.get_merchant(session, shop.merchant_id)
    old = tenancy.merchant_webhook_secret(merchant, SECRET)
    page = post(admin, "/settings/shop/webhook-secret", "/settings/shop", {})
    assert page.status_code == 200  # type: ignore[attr-defined]
    shown = text_of(page.text, "new-secret")  # type: ignore[attr-defined]
    session.expire_all()
    merchant = tenancy.get_merchant(session, shop.merchant_id)
    assert shown == tenancy.merchant_webhook_secret(merchant, SECRET) != old
    assert shown not in admin.get("/settings/shop").text
    assert "webhook.secret_rotated" in admin.get("/activity").text


def test_locale_currency_and_timezone_change_every_page(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    data = {"locale": "de_DE", "currency": "chf", "timezone": "Europe/Zurich"}
    done = post(admin, "/settings/shop/regional", "/settings/shop", data)
    assert done.status_code == 303  # type: ignore[attr-defined]
    programme = session.get(Programme, shop.programme_id)
    session.refresh(programme)
    assert programme is not None and programme.currency == "CHF"
    assert programme.settings["locale"] == "de_DE"
    liability = reports.liability(session, shop.programme_id, clock.now())
    overview = admin.get("/", headers=HTML).text
    points = f"{liability['points']:,}".replace(",", ".")  # German grouping
    assert points in text_of(overview, "kpi-liability")
    assert "CHF" in text_of(admin.get("/settings/shop").text, "regional-example")
    for field, value in (("locale", "xx_YY"), ("currency", "EUROS"), ("timezone", "Mars/Base")):
        post(admin, "/settings/shop/regional", "/settings/shop", {**data, field: value})
        assert f"unknown {field}" in admin.get("/settings/shop").text
    session.refresh(programme)
    assert programme.currency == "CHF"
    assert "shop.regional_changed" in admin.get("/activity").text


def test_a_coalition_member_cannot_change_the_programme_s_locale(
    client: TestClient, factory: sessionmaker[Session], shop: DemoShop, clock: FrozenClock
) -> None:
    with transaction(factory) as s:
        member = tenancy.create_merchant(
            s, name="Partner", now=clock.now(), server_secret=SECRET, programme_id=shop.programme_id
        )
    login(client, make_user(factory, member.merchant_id, "admin", clock.now(), "m@partner.test"))
    assert "its owner changes them" in client.get("/settings/shop").text
    data = {"locale": "de_DE", "currency": "CHF", "timezone": "UTC"}
    assert post(client, "/settings/shop/regional", "/settings/shop", data).status_code == 403  # type: ignore[attr-defined]


def test_read_only_users_see_but_cannot_change(
    reader: TestClient, session: Session, shop: DemoShop
) -> None:
    page = reader.get("/settings/shop").text
    assert 'id="webhook-form"' not in page and 'id="rotate-form"' not in page
    assert 'id="connectors"' in page and 'id="regional"' in page
    for path, data in (
        ("/settings/shop/regional", {"locale": "de_DE", "currency": "CHF", "timezone": "UTC"}),
        ("/settings/shop/webhooks", {"url": "https://hooks.example/x"}),
        ("/settings/shop/connectors/shopify", {"secret": "x"}),
        ("/settings/shop/webhook-secret", {}),
    ):
        assert post(reader, path, "/settings/shop", data).status_code == 403, path  # type: ignore[attr-defined]
    assert session.execute(select(func.count()).select_from(DashboardActivity)).scalar() == 0
