"""Payment status, line identity and recorded discrepancies through the orders API."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fidele.events.domain import payload_hash
from fidele.orders.schemas import OrderIn
from fidele.orders.service import canonical
from tests.fixtures.factories import order_body

VARIANTS = [
    {
        "product_id": "shirt",
        "line_id": f"l-{size}",
        "variant_id": size,
        "quantity": 1,
        "unit_price": 6000,
    }
    for size in ("S", "M", "L")
]


def test_a_refund_names_one_line_among_variants_of_a_product(api: TestClient) -> None:
    assert api.post("/v1/orders", json=order_body(lines=VARIANTS)).status_code == 201
    r = api.post(
        "/v1/orders/o-1/refunds", json={"id": "r1", "lines": [{"line_id": "l-M", "quantity": 1}]}
    )
    assert r.status_code == 201, r.text
    assert r.json()["lines"] == [
        {"line": 1, "product_id": "shirt", "quantity": 1, "line_id": "l-M"}
    ]
    lines = api.get("/v1/orders/o-1").json()["lines"]
    assert [(ln["line_id"], ln["variant_id"], ln["refunded_quantity"]) for ln in lines] == [
        ("l-S", "S", 0),
        ("l-M", "M", 1),
        ("l-L", "L", 0),
    ]
    again = api.post(
        "/v1/orders/o-1/refunds", json={"id": "r2", "lines": [{"line_id": "l-M", "quantity": 1}]}
    )
    assert again.status_code == 422 and "l-M" in again.json()["detail"]


def test_lines_need_distinct_ids(api: TestClient) -> None:
    lines = [VARIANTS[0], {**VARIANTS[1], "line_id": "l-S"}]
    assert api.post("/v1/orders", json=order_body(lines=lines)).status_code == 422


def test_a_pending_order_is_paid_through_the_status_endpoint(api: TestClient) -> None:
    body = api.post("/v1/orders", json=order_body(payment_status="pending")).json()
    assert (body["payment_status"], body["paid_at"], body["loyalty"]) == ("pending", None, None)
    r = api.post(
        "/v1/orders/o-1/status", json={"status": "paid", "occurred_at": "2026-01-08T10:00:00Z"}
    )
    assert r.status_code == 200, r.text
    paid = r.json()
    assert (paid["payment_status"], paid["paid_at"], paid["status"]) == (
        "paid",
        "2026-01-08T10:00:00Z",
        "placed",
    )
    assert paid["loyalty"]["earned"] == 30 + 50


def test_tax_inside_prices_is_stored_and_the_total_adds_up_without_it(api: TestClient) -> None:
    lines = [{"product_id": "p", "quantity": 1, "unit_price": 8910, "tax": 810}]
    r = api.post("/v1/orders", json=order_body(lines=lines, tax=810, prices_include_tax=True))
    assert r.status_code == 201, r.text
    assert (r.json()["tax"], r.json()["total"], r.json()["lines"][0]["tax"]) == (810, 8910, 810)
    assert r.json()["loyalty"]["rules"][0] == {"rule": "base", "points": 81}


def test_an_adjustment_keeps_the_total_and_is_counted_per_source(api: TestClient) -> None:
    body = order_body(adjustment=250)
    body["total"] += 250
    assert api.post("/v1/orders", json=body).json()["adjustment"] == 250
    api.post("/v1/orders", json=order_body("o-2"))
    assert api.get("/v1/connectors/discrepancies").json() == [
        {"source": "api", "orders": 1, "adjustment_abs_total": 250}
    ]


def test_orders_sent_without_the_new_fields_hash_as_before(api: TestClient) -> None:
    """Bodies recorded before payment, tax inclusion and line ids existed keep their hash, so
    their retries after an upgrade are replays, not conflicts."""
    body = order_body()
    data = OrderIn(**body)
    before = data.model_dump(
        mode="json",
        exclude={"prices_include_tax", "adjustment", "payment_status", "paid_at"},
    )
    for line in before["lines"]:
        for key in ("line_id", "variant_id", "tax"):
            del line[key]
    assert payload_hash(canonical(data)) == payload_hash(before)
