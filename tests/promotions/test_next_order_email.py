"""The next-order coupon is emailed through the outbox, once, to a customer who accepts it."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.outbox.models import OutboxMessage
from tests.fixtures.factories import order_body

TOPIC = "next_order_coupon.issued"


def _mails(session: Session) -> list[OutboxMessage]:
    rows = session.execute(select(OutboxMessage).where(OutboxMessage.topic == TOPIC))
    return list(rows.scalars())


def _deliver(api: TestClient, order_id: str, customer: str) -> None:
    assert api.post("/v1/orders", json=order_body(order_id, customer)).status_code == 201
    r = api.post(f"/v1/orders/{order_id}/status", json={"status": "delivered"})
    assert r.status_code == 200, r.text


def test_coupon_is_emailed_once_with_its_text_and_ladder(api: TestClient, session: Session) -> None:
    api.put("/v1/promotions/settings", json={"next_order": {"enabled": True}})
    consent = {"email_marketing": True}
    api.put("/v1/customers/c1", json={"email": "ana@example.com", "consent": consent})
    _deliver(api, "o-1", "c1")
    api.post("/v1/orders/o-1/status", json={"status": "delivered"})  # a replayed delivery
    coupon = api.get("/v1/coupons/next-order/o-1").json()
    [mail] = _mails(session)
    assert mail.channel == "email"
    body = mail.payload
    assert body["to"] == "ana@example.com"
    assert body["code"] == coupon["code"] and body["text"] == coupon["text"]
    assert [step["percent_bp"] for step in body["ladder"]] == [1500, 1000, 500]


def test_no_email_without_consent_or_address_or_when_off(api: TestClient, session: Session) -> None:
    api.put("/v1/promotions/settings", json={"next_order": {"enabled": True}})
    api.put("/v1/customers/c1", json={"email": "ana@example.com"})  # no marketing consent
    _deliver(api, "o-1", "c1")
    _deliver(api, "o-2", "c2")  # no address at all
    consent = {"email_marketing": True}
    api.put("/v1/customers/c3", json={"email": "bob@example.com", "consent": consent})
    api.put("/v1/promotions/settings", json={"next_order": {"enabled": True, "email": False}})
    _deliver(api, "o-3", "c3")
    assert _mails(session) == []
    assert all(api.get(f"/v1/coupons/next-order/o-{i}").status_code == 200 for i in (1, 2, 3))
