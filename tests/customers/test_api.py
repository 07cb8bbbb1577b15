from __future__ import annotations

from fastapi.testclient import TestClient

from tests.fixtures.factories import order_body

FULL = {
    "email": "Ana.Martin+shop@Example.com",
    "first_name": "Ana",
    "last_name": "Martin",
    "birthday": "1990-05-17",
    "locale": "fr-FR",
    "country": "fr",
    "timezone": "Europe/Paris",
    "consent": {"email_marketing": True, "source": "checkout"},
    "attributes": {"vip": True},
}


def test_put_creates_then_updates_only_given_fields(api: TestClient) -> None:
    r = api.put("/v1/customers/c1", json=FULL)
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["id"] == "c1" and c["country"] == "FR" and c["birthday"] == "1990-05-17"
    assert c["consent"]["email_marketing"] is True
    assert c["consent"]["email_marketing_at"] == "2026-06-01T12:00:00Z"
    assert c["consent"]["email_marketing_source"] == "checkout"
    r = api.put("/v1/customers/c1", json={"first_name": "Anna"})
    assert r.status_code == 200
    c2 = r.json()
    assert c2["first_name"] == "Anna" and c2["email"] == FULL["email"]
    assert api.get("/v1/customers/c1").json() == c2


def test_put_is_idempotent(api: TestClient) -> None:
    api.put("/v1/customers/c1", json=FULL)
    first = api.get("/v1/customers/c1").json()
    assert api.put("/v1/customers/c1", json=FULL).json() == first


def test_consent_withdrawal_is_recorded(api: TestClient, clock) -> None:  # type: ignore[no-untyped-def]
    api.put("/v1/customers/c1", json=FULL)
    clock.advance(days=3)
    c = api.put(
        "/v1/customers/c1",
        json={"consent": {"email_marketing": False, "source": "unsubscribe_link"}},
    ).json()
    assert c["consent"]["email_marketing"] is False
    assert c["consent"]["email_marketing_at"] == "2026-06-04T12:00:00Z"


def test_bad_fields_are_named(api: TestClient) -> None:
    r = api.put(
        "/v1/customers/c1",
        json={"email": "nope", "timezone": "Mars/Base", "birthday": "1990-13-01", "country": "FRA"},
    )
    assert r.status_code == 422
    fields = {f["field"] for f in r.json()["fields"]}
    assert fields == {"body.email", "body.timezone", "body.birthday", "body.country"}


def test_unknown_customer_is_404(api: TestClient) -> None:
    r = api.get("/v1/customers/nobody")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_list_with_cursor(api: TestClient) -> None:
    for i in range(3):
        api.put(f"/v1/customers/c{i}", json={"first_name": f"N{i}"})
    p1 = api.get("/v1/customers", params={"limit": 2}).json()
    p2 = api.get("/v1/customers", params={"limit": 2, "cursor": p1["next_cursor"]}).json()
    assert [c["id"] for c in p1["items"] + p2["items"]] == ["c0", "c1", "c2"]


def test_export_holds_profile_orders_and_events(api: TestClient) -> None:
    api.put("/v1/customers/c1", json=FULL)
    api.post("/v1/orders", json=order_body())
    api.post(
        "/v1/events",
        headers={"Idempotency-Key": "k1"},
        json={
            "type": "review_posted",
            "customer_id": "c1",
            "occurred_at": "2026-05-01T10:00:00Z",
            "properties": {"stars": 5},
        },
    )
    data = api.get("/v1/customers/c1/export").json()
    assert data["customer"]["email"] == FULL["email"]
    assert [o["id"] for o in data["orders"]] == ["o-1"]
    types = [e["type"] for e in data["events"]]
    assert "customer.upserted" in types and "order.placed" in types and "review_posted" in types


def test_erase_blanks_personal_data_and_keeps_totals(api: TestClient, session) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from fidele.customers.models import Customer
    from fidele.events.models import Event
    from fidele.orders.models import Order

    api.put("/v1/customers/c1", json=FULL)
    api.post("/v1/orders", json=order_body(email="ana@example.com"))
    assert api.delete("/v1/customers/c1").status_code == 204
    assert api.get("/v1/customers/c1").status_code == 404
    assert api.get("/v1/customers/c1/export").status_code == 404
    row = session.execute(select(Customer)).scalar_one()
    assert row.email is None and row.first_name is None and row.birthday is None
    assert row.external_id.startswith("erased-") and row.erased_at is not None
    # the order stays (anonymised through its customer) so revenue totals are unchanged
    assert session.execute(select(func.sum(Order.total))).scalar_one() == 3000
    payloads = [e.payload for e in session.execute(select(Event)).scalars()]
    assert "Ana.Martin" not in str(payloads) and "ana@example.com" not in str(payloads)
    # the order still references the (anonymised) customer, not the old id
    assert api.get("/v1/orders/o-1").json()["customer_id"] == row.external_id
