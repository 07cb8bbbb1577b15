"""Helpers of the complaints and delivery tests: customers and orders through the API."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.events.models import Event
from tests.fixtures.factories import order_body


def customer(api: TestClient, ext: str = "c1") -> None:
    r = api.put(f"/v1/customers/{ext}", json={"email": f"{ext}@example.com", "first_name": ext})
    assert r.status_code in (200, 201), r.text


def order(
    api: TestClient, oid: str, ext: str = "c1", placed_at: str = "2026-05-01T10:00:00Z", **kw: Any
) -> None:
    r = api.post("/v1/orders", json=order_body(oid, ext, placed_at=placed_at, **kw))
    assert r.status_code == 201, r.text


def complain(api: TestClient, ext: str = "c1", key: str | None = None, **kw: Any) -> dict[str, Any]:
    body = {"customer_id": ext, "category": "damaged", "message": "broken mug", "channel": "email"}
    headers = {"Idempotency-Key": key} if key else {}
    r = api.post("/v1/complaints", json={**body, **kw}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def move(api: TestClient, cid: int, status: str, **kw: Any) -> Any:
    return api.patch(f"/v1/complaints/{cid}", json={"status": status, **kw})


def events_of(session: Session, merchant_id: int, type_: str) -> list[Event]:
    session.expire_all()
    return list(
        session.scalars(
            select(Event)
            .where(Event.merchant_id == merchant_id, Event.type == type_)
            .order_by(Event.id)
        )
    )
