"""The schema and the server agree, case by case (the classes the schemathesis run found)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.fixtures.factories import order_body


def _event(api: TestClient, key: str) -> int:
    body = {"type": "visit", "customer_id": "c1", "occurred_at": "2026-05-01T10:00:00Z"}
    return api.post("/v1/events", json=body, headers={"Idempotency-Key": key}).status_code


def test_idempotency_key_length_is_what_the_schema_says_on_every_database(
    api: TestClient,
) -> None:
    schema = api.get("/openapi.json").json()
    [header] = [
        p for p in schema["paths"]["/v1/events"]["post"]["parameters"] if p["in"] == "header"
    ]
    longest = header["schema"]["maxLength"]
    assert _event(api, "k" * longest) == 201  # stored with its prefix, it still fits
    assert _event(api, "k" * (longest + 1)) == 422
    assert _event(api, "k" * 255) == 422


def test_non_utf8_body_is_a_422_in_the_error_shape(api: TestClient) -> None:
    for body in (b'{"amount": "\xc3\x28"}', b"\x8f\x99\xd7"):
        r = api.post("/v1/gift-cards", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "validation_error"
        assert r.json()["fields"][0]["field"].startswith("body")


def test_numbers_are_not_date_times(api: TestClient) -> None:
    for path in ("/v1/customers", "/v1/orders"):
        r = api.get(path, params={"updated_since": "0.5"})
        assert r.status_code == 422, (path, r.text)
        assert r.json()["fields"][0]["field"] == "query.updated_since"
    assert api.get("/v1/customers", params={"updated_since": "2026-01-01T00:00:00Z"}).is_success
    r = api.post(
        "/v1/events",
        json={"type": "visit", "customer_id": "c1", "occurred_at": 0},
        headers={"Idempotency-Key": "n1"},
    )
    assert r.status_code == 422


def test_405_lists_every_method_of_the_path(api: TestClient) -> None:
    r = api.options("/v1/customers/c1")
    assert r.status_code == 405
    assert set(r.headers["Allow"].split(", ")) == {"GET", "PUT", "DELETE"}
    assert r.json()["error"] == "method_not_allowed"
    r = api.get("/v1/coupons/batches")  # not taken for GET /v1/coupons/{coupon_id}
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert api.get("/v1/coupons/9223372036854775808").status_code == 422
    assert api.get("/v1/coupons/12345").status_code == 404
    r = api.get("/v1/checkout/evaluate")  # not a session id
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert api.get("/v1/checkout/" + "ab" * 16).status_code == 404


def test_rules_the_schema_states_are_refused_and_documented(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()["components"]["schemas"]
    assert "000" not in schema["GiftCardIn"]["properties"]["currency"]["enum"]
    r = api.post("/v1/gift-cards", json={"amount": 100, "currency": "000"})
    assert r.status_code == 422
    r = api.post("/v1/coupons", json={"kind": "amount_off", "value": 0})
    assert r.status_code == 422
    assert any("if" in rule for rule in schema["CouponIn"]["allOf"])
    api.post("/v1/orders", json=order_body())
    r = api.post(
        "/v1/orders/o-1/refunds",
        json={"id": "r1", "amount": 100, "lines": [{"product_id": "p1", "quantity": 1}]},
    )
    assert r.status_code == 422
    assert schema["RefundIn"]["allOf"][0]["not"]["required"] == ["amount", "lines"]


def test_booleans_are_not_integers_nor_the_reverse(api: TestClient) -> None:
    r = api.post("/v1/orders", json=order_body(shipping=False))
    assert r.status_code == 422 and "shipping" in r.text
    r = api.put("/v1/customers/c1", json={"consent": {"email_marketing": 1}})
    assert r.status_code == 422
    r = api.post("/v1/orders", json=order_body(total=1e16))
    assert r.status_code == 422


def test_state_dependent_refusals_are_409(api: TestClient) -> None:
    api.post("/v1/orders", json=order_body())
    r = api.post("/v1/orders/o-1/refunds", json={"id": "r1", "amount": 999_999})
    assert r.status_code == 409 and r.json()["fields"][0]["field"] == "amount"
