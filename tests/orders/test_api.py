from __future__ import annotations

from fastapi.testclient import TestClient

from tests.fixtures.factories import order_body


def test_create_then_get(api: TestClient) -> None:
    r = api.post("/v1/orders", json=order_body())
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] == "o-1" and body["customer_id"] == "c1" and body["total"] == 3000
    assert body["placed_at"] == "2026-01-05T09:00:00Z"
    assert api.get("/v1/orders/o-1").json() == body
    # the unknown customer was created (guest checkout)
    assert api.get("/v1/customers/c1").status_code == 200
