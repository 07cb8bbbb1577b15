from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.events.models import Event

EVENT = {
    "type": "newsletter_subscribed",
    "customer_id": "c9",
    "occurred_at": "2026-05-30T08:00:00+02:00",
    "properties": {"list": "weekly"},
}


def test_event_is_logged_once_per_key(api: TestClient, session: Session) -> None:
    r = api.post("/v1/events", json=EVENT, headers={"Idempotency-Key": "evt-1"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["occurred_at"] == "2026-05-30T06:00:00Z"
    assert body["received_at"] == "2026-06-01T12:00:00Z" and body["source"] == "api"
    again = api.post("/v1/events", json=EVENT, headers={"Idempotency-Key": "evt-1"})
    assert again.status_code == 200 and again.json() == body
    rows = session.execute(select(Event).where(Event.type == "newsletter_subscribed")).all()
    assert len(rows) == 1
    assert api.get("/v1/customers/c9").status_code == 200


def test_same_key_other_body_is_409(api: TestClient) -> None:
    api.post("/v1/events", json=EVENT, headers={"Idempotency-Key": "evt-1"})
    other = {**EVENT, "properties": {"list": "daily"}}
    r = api.post("/v1/events", json=other, headers={"Idempotency-Key": "evt-1"})
    assert r.status_code == 409


def test_key_header_is_required_and_type_checked(api: TestClient) -> None:
    r = api.post("/v1/events", json=EVENT)
    assert r.status_code == 422
    assert any("idempotency-key" in f["field"].lower() for f in r.json()["fields"])
    r = api.post(
        "/v1/events", json={**EVENT, "type": "Has Spaces"}, headers={"Idempotency-Key": "x"}
    )
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "body.type"


def test_custom_types_are_accepted(api: TestClient) -> None:
    r = api.post(
        "/v1/events", json={**EVENT, "type": "store_visit"}, headers={"Idempotency-Key": "v1"}
    )
    assert r.status_code == 201


def test_every_input_lands_in_the_log(api: TestClient, session: Session) -> None:
    from tests.fixtures.factories import order_body

    api.put("/v1/customers/c1", json={"email": "x@example.com"})
    api.post("/v1/orders", json=order_body())
    api.post("/v1/orders/o-1/status", json={"status": "delivered"})
    api.post("/v1/orders/o-1/refunds", json={"id": "r1", "amount": 100})
    types = session.execute(select(Event.type).order_by(Event.id)).scalars().all()
    assert types == ["customer.upserted", "order.placed", "order.delivered", "order.refunded"]
