"""Complaints through the HTTP API: opening (idempotent), bad input naming the field, status
transitions, notes, assignment, SLA due times in the merchant's zone, the overdue list,
tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fidele.dashboard import service as dashboard
from fidele.feedback import complaints_service
from fidele.feedback.complaints_models import Complaint
from tests.conftest import T0
from tests.feedback.complaints_shop import complain, customer, events_of, move, order
from tests.fixtures.factories import make_tenant


def test_open_show_list_and_retry(api, tenant, session):
    customer(api)
    order(api, "o-1")
    made = complain(api, key="k1", order_id="o-1")
    assert made["status"] == "open" and made["order_id"] == "o-1" and made["customer_id"] == "c1"
    # Monday 12:00 UTC, default Mon-Fri 09-18 in UTC: 4 business hours, then 18.
    assert made["first_response_due"] == "2026-06-01T16:00:00Z"
    assert made["resolution_due"] == "2026-06-03T12:00:00Z"
    again = api.post(
        "/v1/complaints",
        json={
            "customer_id": "c1",
            "order_id": "o-1",
            "category": "damaged",
            "message": "broken mug",
            "channel": "email",
        },
        headers={"Idempotency-Key": "k1"},
    )
    assert again.status_code == 200 and again.json()["id"] == made["id"]
    clash = api.post(
        "/v1/complaints",
        json={"customer_id": "c1", "category": "other", "message": "x", "channel": "email"},
        headers={"Idempotency-Key": "k1"},
    )
    assert clash.status_code == 409
    listed = api.get("/v1/complaints?status=open").json()["items"]
    assert [c["id"] for c in listed] == [made["id"]]
    assert api.get("/v1/complaints?status=resolved").json()["items"] == []
    shown = api.get(f"/v1/complaints/{made['id']}").json()
    assert shown["message"] == "broken mug" and shown["notes"] == []
    opened = events_of(session, tenant.merchant_id, "complaint_opened")
    assert len(opened) == 1 and opened[0].payload["complaint_id"] == made["id"]


def _fields(r):  # type: ignore[no-untyped-def]
    return [f["field"] for f in r.json()["fields"]]


def test_bad_input_is_422_naming_the_field(api, tenant):
    customer(api)
    customer(api, "c2")
    order(api, "o-2", "c2")
    base = {"customer_id": "c1", "category": "damaged", "message": "m", "channel": "email"}
    r = api.post("/v1/complaints", json={**base, "category": "rude"})
    assert r.status_code == 422 and _fields(r) == ["body.category"]
    r = api.post("/v1/complaints", json={**base, "message": ""})
    assert r.status_code == 422 and _fields(r) == ["body.message"]
    r = api.post("/v1/complaints", json={**base, "customer_id": "nobody"})
    assert r.status_code == 422 and _fields(r) == ["customer_id"]
    r = api.post("/v1/complaints", json={**base, "order_id": "o-2"})  # another customer's
    assert r.status_code == 422 and _fields(r) == ["order_id"]
    assert api.get("/v1/complaints").json()["items"] == []
    r = api.put("/v1/complaints/sla", json={"business_hours": {"mon": "18:00-09:00"}})
    assert r.status_code == 422 and _fields(r) == ["body.business_hours"]
    r = api.put("/v1/complaints/sla", json={"timezone": "Mars/Olympus"})
    assert r.status_code == 422 and _fields(r) == ["body.timezone"]
    r = api.put("/v1/complaints/sla", json={"sla": {"damaged": {"first_response_hours": 0}}})
    assert r.status_code == 422 and "first_response_hours" in _fields(r)[0]


def test_status_transitions_notes_and_assignment(api, tenant, session, clock):
    customer(api)
    cid = complain(api)["id"]
    r = move(api, cid, "resolved")
    assert r.status_code == 409 and _fields(r) == ["status"]
    clock.set(T0 + timedelta(hours=1))
    r = api.post(
        f"/v1/complaints/{cid}/notes", json={"body": "called the customer", "author": "Ann"}
    )
    assert r.status_code == 201
    user = dashboard.create_user(
        session,
        merchant_id=tenant.merchant_id,
        email="ann@shop.test",
        password="a long password",
        role="marketer",
        now=T0,
    )
    session.commit()
    r = api.patch(f"/v1/complaints/{cid}", json={"assignee_id": user.id, "status": "in_progress"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["assignee_id"] == user.id and body["status"] == "in_progress"
    assert body["first_response_at"] == "2026-06-01T13:00:00Z"  # the note
    assert body["first_response_breached"] is False
    assert [n["body"] for n in body["notes"]] == ["called the customer"]
    assert move(api, cid, "in_progress").status_code == 200  # a retry changes nothing
    r = api.patch(f"/v1/complaints/{cid}", json={"assignee_id": 999999})
    assert r.status_code == 422 and _fields(r) == ["assignee_id"]
    r = api.patch(f"/v1/complaints/{cid}", json={"gesture": {"kind": "coupon", "value": 100}})
    assert r.status_code == 422 and _fields(r) == ["gesture"]
    r = move(api, cid, "resolved", resolution="replaced the mug")
    assert r.status_code == 200 and r.json()["closed_at"] == "2026-06-01T13:00:00Z"
    r = move(api, cid, "in_progress")
    assert r.status_code == 409 and _fields(r) == ["status"]
    resolved = events_of(session, tenant.merchant_id, "complaint.resolved")
    assert len(resolved) == 1
    assert resolved[0].payload["survey_occasion"] == f"complaint:{cid}"
    assert resolved[0].payload["resolution_hours"] == 1.0


def test_sla_in_the_merchants_zone_across_a_weekend(api, clock):
    customer(api)
    r = api.put(
        "/v1/complaints/sla",
        json={
            "timezone": "Europe/Paris",
            "sla": {"refund": {"first_response_hours": 2, "resolution_hours": 10}},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["sla"]["refund"] == {"first_response_hours": 2, "resolution_hours": 10}
    assert r.json()["business_hours"]["fri"] == "09:00-18:00"
    clock.set(datetime(2026, 3, 27, 16, 0, tzinfo=UTC))  # Friday 17:00 CET, DST on Sunday
    c = complain(api, category="refund")
    assert c["first_response_due"] == "2026-03-30T08:00:00Z"  # Monday 10:00 CEST
    assert c["resolution_due"] == "2026-03-30T16:00:00Z"  # 1 + 9: Monday 18:00 CEST


def test_overdue_list(api, clock):
    customer(api)
    first = complain(api)["id"]
    second = complain(api, category="quality")["id"]  # 8 h to first response
    clock.set(T0 + timedelta(hours=5))  # 17:00: the damaged one is past its 16:00
    assert [c["id"] for c in api.get("/v1/complaints/overdue").json()] == [first]
    api.post(f"/v1/complaints/{first}/notes", json={"body": "on it"})
    assert api.get("/v1/complaints/overdue").json() == []
    clock.set(T0 + timedelta(days=1))  # Tuesday 12:00: the quality one is past 8 h
    overdue = api.get("/v1/complaints/overdue").json()
    assert [c["id"] for c in overdue] == [second]
    assert overdue[0]["first_response_breached"] is True


def test_tenant_isolation(api, client, session, clock):
    customer(api)
    cid = complain(api)["id"]
    other = make_tenant(session, clock.now(), name="Shop B")
    session.commit()
    headers = {"Authorization": f"Bearer {other.key}"}
    assert client.get(f"/v1/complaints/{cid}", headers=headers).status_code == 404
    assert (
        client.patch(
            f"/v1/complaints/{cid}", json={"status": "in_progress"}, headers=headers
        ).status_code
        == 404
    )
    assert (
        client.post(f"/v1/complaints/{cid}/notes", json={"body": "x"}, headers=headers).status_code
        == 404
    )
    assert client.get("/v1/complaints", headers=headers).json()["items"] == []
    r = client.post(
        "/v1/complaints",
        json={"customer_id": "c1", "category": "other", "message": "m", "channel": "email"},
        headers=headers,
    )
    assert r.status_code == 422  # shop B has no customer c1
    assert client.get("/v1/complaints/stats", headers=headers).json()["complaints"] == 0


def test_digest_webhook_once_a_day(api, tenant, session, clock):
    from fidele.outbox.models import OutboxMessage
    from fidele.webhooks import service as webhooks

    webhooks.create(
        session,
        merchant_id=tenant.merchant_id,
        url="http://127.0.0.1:9/x",
        allow_private=True,
        topics=["complaints.digest"],
        now=T0,
    )
    session.commit()
    customer(api)
    complain(api)
    complain(api, category="refund")
    clock.set(T0 + timedelta(days=1))
    assert complaints_service.digest(session, clock.now()) == 1
    assert complaints_service.digest(session, clock.now() + timedelta(hours=2)) == 1
    msgs = session.query(OutboxMessage).filter_by(topic="complaints.digest").all()
    assert len(msgs) == 1  # the day's repeat is dropped
    data = msgs[0].payload["body"]["data"]
    assert data["open"] == 2 and data["overdue"] == 2
    assert data["by_category"] == {"damaged": 1, "refund": 1}


def test_gdpr_export_and_erasure(api, session):
    customer(api)
    cid = complain(api, message="my address is 3 rue X")["id"]
    api.post(f"/v1/complaints/{cid}/notes", json={"body": "called at 06 12", "author": "Ann"})
    exported = api.get("/v1/customers/c1/export").json()["complaints"]
    assert exported[0]["message"] == "my address is 3 rue X"
    assert exported[0]["notes"] == ["called at 06 12"]
    assert api.delete("/v1/customers/c1").status_code == 204
    session.expire_all()
    row = session.get(Complaint, cid)
    assert (row.message, row.status) == ("[erased]", "rejected")
    assert api.get("/v1/complaints/stats").json()["complaints"] == 1
