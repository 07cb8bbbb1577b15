from __future__ import annotations

from fastapi.testclient import TestClient

from tests.fixtures.factories import order_body


def test_create_then_get(api: TestClient) -> None:
    r = api.post("/v1/orders", json=order_body())
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["id"], body["customer_id"], body["total"]) == ("o-1", "c1", 3000)
    assert body["placed_at"] == "2026-01-05T09:00:00Z"
    assert body["status"] == "placed" and body["refunded_total"] == 0
    assert api.get("/v1/orders/o-1").json() == body
    # the unknown customer was created (guest checkout)
    assert api.get("/v1/customers/c1").status_code == 200


def test_replay_same_body_returns_first_result(api: TestClient) -> None:
    first = api.post("/v1/orders", json=order_body())
    again = api.post("/v1/orders", json=order_body())
    assert again.status_code == 200
    assert again.json() == first.json()
    listed = api.get("/v1/orders").json()["items"]
    assert [o["id"] for o in listed] == ["o-1"]


def test_same_instant_in_another_zone_is_the_same_body(api: TestClient) -> None:
    api.post("/v1/orders", json=order_body())
    r = api.post("/v1/orders", json=order_body(placed_at="2026-01-05T09:00:00Z"))
    assert r.status_code == 200


def test_different_body_under_existing_id_is_409(api: TestClient) -> None:
    api.post("/v1/orders", json=order_body())
    r = api.post("/v1/orders", json=order_body(shipping=500))
    assert r.status_code == 409
    assert r.json()["error"] == "idempotency_conflict"
    assert api.get("/v1/orders/o-1").json()["shipping"] == 0


def test_total_must_add_up(api: TestClient) -> None:
    body = order_body()
    body["total"] = 2999
    r = api.post("/v1/orders", json=body)
    assert r.status_code == 422
    assert "does not add up" in r.text
    assert api.get("/v1/orders/o-1").status_code == 404
    assert api.get("/v1/customers/c1").status_code == 404  # nothing half-written


def test_discounts_shipping_and_tax_in_total(api: TestClient) -> None:
    body = order_body(shipping=490, discounts=300)
    body["tax"] = 100
    body["total"] += 100
    r = api.post("/v1/orders", json=body)
    assert r.status_code == 201, r.text
    lines = r.json()["lines"]
    assert sum(ln["discount"] for ln in lines) == 300


def test_naive_datetime_is_422_naming_the_field(api: TestClient) -> None:
    r = api.post("/v1/orders", json=order_body(placed_at="2026-01-05T10:00:00"))
    assert r.status_code == 422
    assert any(f["field"] == "body.placed_at" for f in r.json()["fields"])


def test_unknown_currency_is_422(api: TestClient) -> None:
    r = api.post("/v1/orders", json=order_body(currency="XXY"))
    assert r.status_code == 422
    assert any(f["field"] == "body.currency" for f in r.json()["fields"])


def test_bad_line_fields_are_named(api: TestClient) -> None:
    body = order_body()
    body["lines"][0]["quantity"] = 0
    body["lines"][0]["unit_price"] = -1
    fields = {f["field"] for f in api.post("/v1/orders", json=body).json()["fields"]}
    assert {"body.lines.0.quantity", "body.lines.0.unit_price"} <= fields


def test_unknown_field_is_refused(api: TestClient) -> None:
    r = api.post("/v1/orders", json=order_body(totl=3))
    assert r.status_code == 422
    assert any(f["field"] == "body.totl" for f in r.json()["fields"])


def test_body_over_one_mebibyte_is_413(api: TestClient) -> None:
    body = order_body(attributes={"blob": "x" * (1024 * 1024)})
    r = api.post("/v1/orders", json=body)
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"


def test_status_flow_and_illegal_transition(api: TestClient) -> None:
    api.post("/v1/orders", json=order_body())
    r = api.post(
        "/v1/orders/o-1/status", json={"status": "shipped", "occurred_at": "2026-01-06T10:00:00Z"}
    )
    assert r.status_code == 200 and r.json()["status"] == "shipped"
    assert r.json()["shipped_at"] == "2026-01-06T10:00:00Z"
    r = api.post("/v1/orders/o-1/status", json={"status": "delivered"})
    assert r.json()["status"] == "delivered"
    assert api.post("/v1/orders/o-1/status", json={"status": "delivered"}).status_code == 200
    r = api.post("/v1/orders/o-1/status", json={"status": "cancelled"})
    assert r.status_code == 409
    assert api.post("/v1/orders/nope/status", json={"status": "shipped"}).status_code == 404


def test_partial_refund_by_lines_then_rest(api: TestClient) -> None:
    lines = [
        {"product_id": "p1", "name": "A", "quantity": 3, "unit_price": 1000},
        {"product_id": "p2", "name": "B", "quantity": 1, "unit_price": 500},
    ]
    api.post("/v1/orders", json=order_body(lines=lines, discounts=350, shipping=400))
    r = api.post(
        "/v1/orders/o-1/refunds", json={"id": "r1", "lines": [{"product_id": "p1", "quantity": 1}]}
    )
    assert r.status_code == 201, r.text
    # p1 net = 3000 - 300 (its share of 350 over 3000/500) = 2700 -> 900 per unit
    assert r.json()["amount"] == 900
    r = api.post("/v1/orders/o-1/refunds", json={"id": "r2"})
    assert r.json()["amount"] == 3500 + 400 - 350 - 900
    order = api.get("/v1/orders/o-1").json()
    assert order["refunded_total"] == order["total"]
    assert [ln["refunded_quantity"] for ln in order["lines"]] == [3, 1]


def test_refund_more_than_paid_is_409(api: TestClient) -> None:
    # Well-formed, refused by the order's state (what remains paid): a conflict, not a 422.
    api.post("/v1/orders", json=order_body())
    r = api.post("/v1/orders/o-1/refunds", json={"id": "r1", "amount": 3001})
    assert r.status_code == 409
    assert r.json()["fields"][0]["field"] == "amount"
    api.post("/v1/orders/o-1/refunds", json={"id": "r2", "amount": 2000})
    assert api.post("/v1/orders/o-1/refunds", json={"id": "r3", "amount": 1001}).status_code == 409
    r = api.post(
        "/v1/orders/o-1/refunds", json={"id": "r4", "lines": [{"product_id": "p1", "quantity": 3}]}
    )
    assert r.status_code == 409


def test_refund_is_idempotent_on_its_id(api: TestClient) -> None:
    api.post("/v1/orders", json=order_body())
    first = api.post("/v1/orders/o-1/refunds", json={"id": "r1", "amount": 1000})
    again = api.post("/v1/orders/o-1/refunds", json={"id": "r1", "amount": 1000})
    assert again.status_code == 200 and again.json() == first.json()
    assert api.get("/v1/orders/o-1").json()["refunded_total"] == 1000
    assert api.post("/v1/orders/o-1/refunds", json={"id": "r1", "amount": 999}).status_code == 409


def test_cancelled_order_cannot_be_refunded(api: TestClient) -> None:
    api.post("/v1/orders", json=order_body())
    api.post("/v1/orders/o-1/status", json={"status": "cancelled"})
    assert api.post("/v1/orders/o-1/refunds", json={"id": "r1"}).status_code == 409


def test_list_pagination_and_updated_since(api: TestClient, clock) -> None:  # type: ignore[no-untyped-def]
    for i in range(5):
        api.post("/v1/orders", json=order_body(id=f"o-{i}", customer_id=f"c{i}"))
        clock.advance(minutes=1)
    page1 = api.get("/v1/orders", params={"limit": 2}).json()
    assert [o["id"] for o in page1["items"]] == ["o-0", "o-1"]
    page2 = api.get("/v1/orders", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    assert [o["id"] for o in page2["items"]] == ["o-2", "o-3"]
    page3 = api.get("/v1/orders", params={"limit": 2, "cursor": page2["next_cursor"]}).json()
    assert [o["id"] for o in page3["items"]] == ["o-4"] and page3["next_cursor"] is None
    since = api.get("/v1/orders", params={"updated_since": "2026-06-01T12:03:00Z"}).json()
    assert [o["id"] for o in since["items"]] == ["o-3", "o-4"]
    assert api.get("/v1/orders", params={"cursor": "!!"}).status_code == 422
