from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.analytics.rfm import DEFAULT_SEGMENTS
from fidele.customers.models import Customer
from fidele.events.models import Event
from fidele.kit.clock import FrozenClock
from fidele.messaging.models import MessageSend
from fidele.segments import membership
from tests.fixtures.factories import make_tenant, order_body

FRENCH_BUYERS = {
    "all": [
        {"field": "customer.country", "op": "eq", "value": "FR"},
        {"field": "orders.count", "op": "gte", "value": 1, "within_days": 365},
    ]
}


def _shop(api: TestClient) -> None:
    for i, country in enumerate(["FR", "FR", "DE", "FR"], start=1):
        assert api.put(f"/v1/customers/c{i}", json={"country": country}).status_code in (200, 201)
    for i in (1, 3, 4):
        body = order_body(f"o{i}", f"c{i}", placed_at="2026-05-20T10:00:00+00:00")
        assert api.post("/v1/orders", json=body).status_code == 201


def test_crud_count_members_and_preview(api: TestClient) -> None:
    _shop(api)
    r = api.post("/v1/segments", json={"name": "French buyers", "rule": FRENCH_BUYERS})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["count"] == 2
    assert made["computed_at"] is not None
    assert made["depends_on"] == ["clock", "customer", "order"]
    got = api.get(f"/v1/segments/{made['id']}").json()
    assert (got["name"], got["count"]) == ("French buyers", 2)

    page = api.get(f"/v1/segments/{made['id']}/customers", params={"limit": 1}).json()
    assert [c["id"] for c in page["items"]] == ["c1"]
    nxt = api.get(
        f"/v1/segments/{made['id']}/customers", params={"limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert [c["id"] for c in nxt["items"]] == ["c4"]

    preview = api.post("/v1/segments/preview", json={"rule": {"not": FRENCH_BUYERS}}).json()
    assert preview["count"] == 2
    assert sorted(c["id"] for c in preview["sample"]) == ["c2", "c3"]

    everyone = {"field": "orders.count", "op": "gte", "value": 0}
    r = api.put(f"/v1/segments/{made['id']}", json={"name": "Everyone", "rule": everyone})
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 4

    listed = api.get("/v1/segments", params={"limit": 500}).json()["items"]
    names = [s["name"] for s in listed]
    assert "Everyone" in names
    assert {s.name for s in DEFAULT_SEGMENTS} <= set(names)  # built-in from the start

    assert api.delete(f"/v1/segments/{made['id']}").status_code == 204
    assert api.get(f"/v1/segments/{made['id']}").status_code == 404


def test_new_segment_appends_entered_events(api: TestClient, session: Session) -> None:
    _shop(api)
    made = api.post("/v1/segments", json={"name": "FR", "rule": FRENCH_BUYERS}).json()
    rows = session.execute(select(Event).where(Event.type == "segment.entered")).scalars().all()
    mine = [e for e in rows if e.payload["segment_id"] == made["id"]]
    assert len(mine) == 2
    assert mine[0].payload == {"segment_id": made["id"], "segment_name": "FR"}


def _error_field(r: Any) -> str:
    assert r.status_code == 422, r.text
    return r.json()["fields"][0]["field"]


def test_bad_rules_name_their_path(api: TestClient) -> None:
    def rule_of(rule: Any) -> Any:
        return api.post("/v1/segments", json={"name": "x", "rule": rule})

    bad_value = {"all": [{"field": "customer.country", "op": "eq", "value": "FR"}] * 2}
    bad_value["all"] = [*bad_value["all"], {"field": "orders.count", "op": "gte", "value": "2"}]
    assert _error_field(rule_of(bad_value)) == "rule.all.2.value"
    unknown = {"any": [{"not": {"field": "orders.colour", "op": "eq", "value": 1}}]}
    assert _error_field(rule_of(unknown)) == "rule.any.0.not.field"
    wrong_op = {"field": "loyalty.member", "op": "gt", "value": True}
    assert _error_field(rule_of(wrong_op)) == "rule.op"
    not_counted = {"field": "customer.country", "op": "eq", "value": "FR", "within_days": 3}
    assert _error_field(rule_of(not_counted)) == "rule.within_days"
    tier = {"field": "loyalty.tier", "op": "in", "value": ["Gold", "Diamond"]}
    r = rule_of(tier)
    assert _error_field(r) == "rule.value.1"
    assert "Diamond" in r.json()["detail"]
    rfm = {"field": "insights.segment", "op": "eq", "value": "Champs"}
    assert _error_field(rule_of(rfm)) == "rule.value"
    between = {"field": "orders.spent", "op": "between", "value": [10, 1]}
    assert _error_field(rule_of(between)) == "rule.value"
    preview = api.post("/v1/segments/preview", json={"rule": {"all": [{"nope": 1}]}})
    assert _error_field(preview) == "rule.all.0"
    assert api.get("/v1/segments", params={"limit": 500}).json()["items"][-1]["name"] != "x"


def test_conflicts(api: TestClient) -> None:
    rule = {"field": "orders.count", "op": "gte", "value": 1}
    assert api.post("/v1/segments", json={"name": "Buyers", "rule": rule}).status_code == 201
    r = api.post("/v1/segments", json={"name": "Buyers", "rule": rule})
    assert r.status_code == 409
    assert r.json()["fields"][0]["field"] == "name"
    builtin = next(
        s for s in api.get("/v1/segments", params={"limit": 500}).json()["items"] if s["builtin"]
    )
    assert api.delete(f"/v1/segments/{builtin['id']}").status_code == 409
    r = api.put(f"/v1/segments/{builtin['id']}", json={"name": "Mine", "rule": rule})
    assert r.status_code == 409


def test_tenant_isolation(
    api: TestClient, client: TestClient, session: Session, clock: FrozenClock
) -> None:
    _shop(api)
    made = api.post("/v1/segments", json={"name": "FR", "rule": FRENCH_BUYERS}).json()
    other = make_tenant(session, clock.now(), name="Shop B")
    session.commit()
    headers = {"Authorization": f"Bearer {other.key}"}
    assert client.get(f"/v1/segments/{made['id']}", headers=headers).status_code == 404
    r = client.get(f"/v1/segments/{made['id']}/customers", headers=headers)
    assert r.status_code == 404
    assert client.delete(f"/v1/segments/{made['id']}", headers=headers).status_code == 404
    theirs = client.get("/v1/segments", params={"limit": 500}, headers=headers).json()["items"]
    assert made["id"] not in [s["id"] for s in theirs]
    assert len(theirs) == len(DEFAULT_SEGMENTS)
    r = client.post("/v1/segments/preview", json={"rule": FRENCH_BUYERS}, headers=headers)
    assert r.json()["count"] == 0  # shop A's customers are not shop B's


def test_fields_catalogue(api: TestClient) -> None:
    fields = {f["name"]: f for f in api.get("/v1/segments/fields").json()}
    assert fields["orders.count"]["within_days"] is True
    assert "between" in fields["orders.spent"]["ops"]
    assert "consent.<topic>.<channel>" in fields


def test_membership_follows_orders(
    api: TestClient, factory: Any, session: Session, clock: FrozenClock
) -> None:
    """An order lands: the customer is re-evaluated in the next membership run and enters."""
    _shop(api)
    made = api.post("/v1/segments", json={"name": "FR", "rule": FRENCH_BUYERS}).json()
    body = order_body("o2", "c2", placed_at="2026-05-30T10:00:00+00:00")
    assert api.post("/v1/orders", json=body).status_code == 201
    assert membership.drain(factory, clock) >= 1
    entered = [
        e
        for e in session.execute(select(Event).where(Event.type == "segment.entered")).scalars()
        if e.payload["segment_id"] == made["id"]
    ]
    assert len(entered) == 3
    assert api.get(f"/v1/segments/{made['id']}").json()["count"] == 3
    # the customer moves abroad: they leave
    assert api.put("/v1/customers/c2", json={"country": "BE"}).status_code == 200
    membership.drain(factory, clock)
    left = session.execute(select(Event).where(Event.type == "segment.left")).scalars().all()
    assert [e.payload["segment_id"] for e in left] == [made["id"]]
    assert api.get(f"/v1/segments/{made['id']}").json()["count"] == 2


def test_messages_of_a_journey(api: TestClient, session: Session, clock: FrozenClock) -> None:
    """``messages.<flow>.received|count|opened|clicked``: the flow named by id, by name or by
    the ready-made journey it was installed from; an unknown flow is a 422 naming the path."""
    now = clock.now()
    fields = {f["name"]: f for f in api.get("/v1/segments/fields").json()}
    assert fields["messages.<flow>.received"]["type"] == "bool"
    assert fields["messages.<flow>.count"]["within_days"] is True
    assert "messages.<flow>.opened" in fields and "messages.<flow>.clicked" in fields
    flow = api.post("/v1/flows/templates/win_back/install").json()["flow"]
    assert api.put("/v1/customers/c1", json={"country": "FR"}).status_code == 201
    assert api.put("/v1/customers/c2", json={"country": "FR"}).status_code == 201

    def count(rule: Any) -> int:
        r = api.post("/v1/segments/preview", json={"rule": rule})
        assert r.status_code == 200, r.text
        return int(r.json()["count"])

    received = {"field": "messages.win_back.received", "op": "eq", "value": True}
    assert count(received) == 0
    c1 = session.execute(select(Customer.id).where(Customer.external_id == "c1")).scalar_one()
    merchant_id = session.execute(select(Customer.merchant_id)).scalars().first()
    for k, (status, days) in enumerate([("sent", 40), ("sent", 3), ("skipped", 1)]):
        at = now - timedelta(days=days)
        session.add(
            MessageSend(
                merchant_id=merchant_id,
                customer_id=c1,
                key=f"t:{k}",
                topic="marketing",
                channel="email",
                flow_id=flow["id"],
                status=status,
                created_at=at,
                sent_at=at if status == "sent" else None,
            )
        )
    session.commit()
    assert count(received) == 1
    assert count({**received, "within_days": 2}) == 0
    by_id = {"field": f"messages.{flow['id']}.count", "op": "eq", "value": 2}
    assert count(by_id) == 1
    assert count({**by_id, "within_days": 7, "value": 1}) == 1
    assert flow["name"] == "win_back"  # by name (the world of the property test: both ways)
    by_name = {"field": f"messages.{flow['name']}.received", "op": "ne", "value": True}
    assert count(by_name) == 1  # c2
    assert count({"field": "messages.win_back.opened", "op": "eq", "value": True}) == 0
    unknown = {
        "all": [
            {"field": "customer.country", "op": "eq", "value": "FR"},
            {"field": "messages.nosuch.received", "op": "eq", "value": True},
        ]
    }
    r = api.post("/v1/segments", json={"name": "x", "rule": unknown})
    assert _error_field(r) == "rule.all.1.field"
    assert "nosuch" in r.json()["detail"]
    bad = {"field": "messages.win_back.sent", "op": "eq", "value": True}
    assert _error_field(api.post("/v1/segments/preview", json={"rule": bad})) == "rule.field"
    wrong = {"field": "messages.win_back.received", "op": "gt", "value": 1}
    assert _error_field(api.post("/v1/segments/preview", json={"rule": wrong})) == "rule.op"
