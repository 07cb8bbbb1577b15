"""Delivery experience: promised and actual dates from order attributes, the API and
``order.delivered``; a late delivery gives exactly one apology gesture, within the budget;
the delivery KPIs against a hand count."""

from __future__ import annotations

from datetime import UTC, datetime

from fidele.feedback import delivery_service
from fidele.feedback.complaints_models import RecoveryGesture
from fidele.feedback.delivery_models import OrderDelivery
from fidele.promotions.models import Coupon
from tests.feedback.complaints_shop import customer, events_of, order


def _deliver(api, oid, at):  # type: ignore[no-untyped-def]
    r = api.post(f"/v1/orders/{oid}/status", json={"status": "delivered", "occurred_at": at})
    assert r.status_code == 200, r.text


def test_a_late_delivery_gives_exactly_one_apology(api, tenant, session, clock):
    customer(api)
    order(
        api,
        "o-1",
        attributes={"promised_delivery_at": "2026-05-04T18:00:00+02:00", "carrier": "Colissimo"},
    )
    _deliver(api, "o-1", "2026-05-08T10:00:00Z")  # 4 days late
    late = events_of(session, tenant.merchant_id, "order.delivered_late")
    assert len(late) == 1
    payload = late[0].payload
    assert (payload["days_late"], payload["carrier"]) == (4, "Colissimo")
    assert payload["gesture"]["kind"] == "coupon" and payload["gesture"]["value"] == 500
    shown = api.get("/v1/orders/o-1/delivery").json()
    assert shown["days_late"] == 4 and shown["gesture"]["code"] == payload["gesture"]["code"]
    # a retried status, a new delivery date, the daily job: nothing more
    _deliver(api, "o-1", "2026-05-08T10:00:00Z")
    r = api.put("/v1/orders/o-1/delivery", json={"delivered_at": "2026-05-09T10:00:00Z"})
    assert r.status_code == 200 and r.json()["days_late"] == 4
    assert delivery_service.check_due(session, clock.now()) == 0
    session.commit()
    assert len(events_of(session, tenant.merchant_id, "order.delivered_late")) == 1
    assert session.query(Coupon).filter_by(origin="recovery").count() == 1
    assert session.query(RecoveryGesture).count() == 1


def test_two_days_late_is_late_without_a_gesture_and_on_time_is_quiet(api, tenant, session):
    customer(api)
    order(api, "o-1")
    order(api, "o-2")
    r = api.put("/v1/orders/o-1/delivery", json={"promised_at": "2026-05-04T12:00:00Z"})
    assert r.status_code == 200 and r.json()["days_late"] is None
    r = api.put("/v1/orders/o-1/delivery", json={"delivered_at": "2026-05-06T09:00:00Z"})
    assert r.json()["days_late"] == 2 and r.json()["gesture"] is None
    r = api.put(
        "/v1/orders/o-2/delivery",
        json={"promised_at": "2026-05-04T12:00:00Z", "delivered_at": "2026-05-04T08:00:00Z"},
    )
    assert r.json()["days_late"] == 0
    late = events_of(session, tenant.merchant_id, "order.delivered_late")
    assert [(e.payload["order_id"], e.payload["gesture"]) for e in late] == [("o-1", None)]


def test_the_apology_stays_within_the_budget(api, tenant, session):
    customer(api)
    api.put(
        "/v1/complaints/sla",
        json={
            "monthly_budget": 800,
            "late_delivery_rule": {"min_days_late": 3, "kind": "coupon", "value": 500},
        },
    )
    for oid in ("o-1", "o-2"):
        order(api, oid, attributes={"promised_delivery_at": "2026-05-04T12:00:00Z"})
        _deliver(api, oid, "2026-05-10T12:00:00Z")
    late = events_of(session, tenant.merchant_id, "order.delivered_late")
    assert [e.payload["gesture"] is not None for e in late] == [True, False]
    assert "budget" in late[1].payload["gesture_refused"]
    assert session.query(RecoveryGesture).count() == 1


def test_a_promise_known_after_delivery(api, tenant, session):
    customer(api)
    order(api, "o-1")
    _deliver(api, "o-1", "2026-05-09T10:00:00Z")  # no promise yet: nothing judged
    assert api.get("/v1/orders/o-1/delivery").json()["days_late"] is None
    r = api.put("/v1/orders/o-1/delivery", json={"promised_at": "2026-05-05T10:00:00Z"})
    assert r.json()["days_late"] == 4 and r.json()["gesture"]["kind"] == "coupon"
    assert len(events_of(session, tenant.merchant_id, "order.delivered_late")) == 1


def test_bad_delivery_input(api):
    customer(api)
    order(api, "o-1", placed_at="2026-05-01T10:00:00Z")
    r = api.put("/v1/orders/o-1/delivery", json={"delivered_at": "2026-04-01T10:00:00Z"})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "delivered_at"
    r = api.put("/v1/orders/o-1/delivery", json={"promised_at": "2026-05-04"})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "body.promised_at"
    assert api.put("/v1/orders/nope/delivery", json={}).status_code == 404


def test_kpis_against_a_hand_count(api, session, clock):
    for ext in ("a", "b", "c", "d"):
        customer(api, ext)
    promised = "2026-05-04T12:00:00Z"
    rows = [  # order, customer, delivered, carrier
        ("o-a", "a", "2026-05-04T09:00:00Z", "DHL"),  # on time, orders again
        ("o-b", "b", "2026-05-03T09:00:00Z", "DHL"),  # on time
        ("o-c", "c", "2026-05-05T09:00:00Z", "DHL"),  # 1 day late, orders again
        ("o-d", "d", "2026-05-08T09:00:00Z", None),  # 4 days late
    ]
    for oid, ext, delivered, carrier in rows:
        order(api, oid, ext)
        body = {"promised_at": promised, "delivered_at": delivered}
        if carrier:
            body["carrier"] = carrier
        assert api.put(f"/v1/orders/{oid}/delivery", json=body).status_code == 200
    order(api, "o-a2", "a", placed_at="2026-06-01T10:00:00Z")
    order(api, "o-c2", "c", placed_at="2026-07-01T10:00:00Z")
    clock.set(datetime(2026, 9, 1, tzinfo=UTC))
    k = api.get("/v1/delivery/kpis").json()
    assert (k["delivered"], k["on_time"], k["late"], k["on_time_rate"]) == (4, 2, 2, 0.5)
    assert k["average_delay_days"] == 1.25 and k["average_days_late_when_late"] == 2.5
    assert k["by_carrier"]["DHL"]["on_time_rate"] == 0.6667
    assert k["by_carrier"]["unknown"]["late"] == 1
    assert k["repeat"]["on_time"] == {"n": 2, "repeated": 1, "rate": 0.5}
    assert k["repeat"]["late"] == {"n": 2, "repeated": 1, "rate": 0.5}
    # a window not over yet does not count
    clock.set(datetime(2026, 5, 20, tzinfo=UTC))
    assert api.get("/v1/delivery/kpis").json()["repeat"]["late"]["n"] == 0
    assert session.query(OrderDelivery).count() == 4


def test_tenant_isolation(api, client, session, clock):
    from tests.fixtures.factories import make_tenant

    customer(api)
    order(api, "o-1", attributes={"promised_delivery_at": "2026-05-04T12:00:00Z"})
    _deliver(api, "o-1", "2026-05-09T12:00:00Z")
    other = make_tenant(session, clock.now(), name="Shop B")
    session.commit()
    headers = {"Authorization": f"Bearer {other.key}"}
    assert client.get("/v1/orders/o-1/delivery", headers=headers).status_code == 404
    r = client.put("/v1/orders/o-1/delivery", json={"carrier": "X"}, headers=headers)
    assert r.status_code == 404
    assert client.get("/v1/delivery/kpis", headers=headers).json()["delivered"] == 0
    assert api.get("/v1/delivery/kpis").json()["late"] == 1


def test_a_late_delivery_learnt_long_after_counts_without_a_gesture(api, tenant, session, clock):
    """An import of last winter's orders: late, logged and counted, no apology coupon today."""
    customer(api)
    order(api, "o-old", placed_at="2026-01-02T10:00:00Z")
    r = api.put(
        "/v1/orders/o-old/delivery",
        json={"promised_at": "2026-01-05T12:00:00Z", "delivered_at": "2026-01-10T12:00:00Z"},
    )
    assert r.status_code == 200 and r.json()["days_late"] == 5 and r.json()["gesture"] is None
    (late,) = events_of(session, tenant.merchant_id, "order.delivered_late")
    assert late.payload["gesture"] is None
    assert "no automatic gesture" in late.payload["gesture_refused"]
    assert session.query(RecoveryGesture).count() == 0
