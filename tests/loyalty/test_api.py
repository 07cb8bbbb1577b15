from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from fidele.kit.clock import FrozenClock
from tests.fixtures.factories import Tenant, make_tenant, order_body

NOW = "2026-06-01T12:00:00Z"


def order(api: TestClient, oid: str = "o-1", amount: int = 10_000, customer: str = "c1") -> dict:
    lines = [{"product_id": "p1", "category": "apparel", "quantity": 1, "unit_price": amount}]
    r = api.post("/v1/orders", json=order_body(oid, customer, placed_at=NOW, lines=lines))
    assert r.status_code == 201, r.text
    return r.json()


def credit(api: TestClient, points: int, key: str = "adj-1", customer: str = "c1"):  # noqa: ANN201
    return api.post(
        f"/v1/customers/{customer}/points/adjustments",
        json={"points": points, "reason": "goodwill"},
        headers={"Idempotency-Key": key},
    )


def make_reward(api: TestClient, cost: int = 50, **kw: object) -> int:
    r = api.post(
        "/v1/rewards",
        json={"name": "5 € off", "points_cost": cost, "kind": "amount_off", "value": 500, **kw},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def test_order_returns_pending_points(api: TestClient) -> None:
    body = order(api)
    assert body["loyalty"]["pending"] == 150  # 100 + first-order 50
    assert body["loyalty"]["rules"] == [
        {"rule": "base", "points": 100},
        {"rule": "first-order", "points": 50},
    ]
    s = api.get("/v1/customers/c1/loyalty").json()
    assert (s["pending"], s["available"], s["tier"]["name"]) == (150, 0, "Bronze")
    assert s["tier"]["next"] == {
        "name": "Silver",
        "metric": "points",
        "threshold": 500,
        "progress": 150,
        "remaining": 350,
    }


def test_redeem_cancel_and_errors(api: TestClient) -> None:
    order(api)
    assert credit(api, 100).status_code == 201
    rid = make_reward(api, 60, stock=1)
    headers = {"Idempotency-Key": "red-1"}
    r = api.post("/v1/customers/c1/redemptions", json={"reward_id": rid}, headers=headers)
    assert r.status_code == 201, r.text
    red = r.json()
    assert red["code"].startswith("RW-")
    replay = api.post("/v1/customers/c1/redemptions", json={"reward_id": rid}, headers=headers)
    assert (replay.status_code, replay.json()["code"]) == (200, red["code"])
    out = api.post(
        "/v1/customers/c1/redemptions",
        json={"reward_id": rid},
        headers={"Idempotency-Key": "red-2"},
    )
    assert (out.status_code, out.json().get("reason")) == (409, "out_of_stock"), out.text
    poor = api.post(
        "/v1/customers/c1/redemptions",
        json={"reward_id": make_reward(api, 500)},
        headers={"Idempotency-Key": "red-3"},
    )
    assert poor.status_code == 409
    assert (poor.json()["error"], poor.json()["balance"]) == ("insufficient_points", 40)
    missing = api.post(
        "/v1/customers/c1/redemptions",
        json={"reward_id": 999_999},
        headers={"Idempotency-Key": "red-4"},
    )
    assert missing.status_code == 404
    c = api.post(f"/v1/redemptions/{red['id']}/cancel")
    assert (c.status_code, c.json()["status"], c.json()["voucher_status"]) == (
        200,
        "cancelled",
        "cancelled",
    )
    assert api.get("/v1/customers/c1/loyalty").json()["available"] == 100


def test_adjustments_need_admin_and_never_go_negative(
    api: TestClient, session: Session, clock: FrozenClock, client: TestClient
) -> None:
    order(api)
    assert credit(api, -1).status_code == 409
    assert credit(api, 30, key="a2").json()["available"] == 30
    assert credit(api, 30, key="a2").json()["available"] == 30  # same key: once
    writer = make_tenant(session, clock.now(), name="W", scopes="read,write")
    session.commit()
    r = client.post(
        "/v1/customers/c1/points/adjustments",
        json={"points": 1, "reason": "x"},
        headers={"Idempotency-Key": "z", "Authorization": f"Bearer {writer.key}"},
    )
    assert r.status_code == 403


def test_other_merchants_ids_answer_404(
    api: TestClient, session: Session, clock: FrozenClock, client: TestClient
) -> None:
    order(api)
    credit(api, 100)
    red = api.post(
        "/v1/customers/c1/redemptions",
        json={"reward_id": make_reward(api)},
        headers={"Idempotency-Key": "k"},
    ).json()
    other = make_tenant(session, clock.now(), name="Other")
    session.commit()
    auth = {"Authorization": f"Bearer {other.key}"}
    assert client.get("/v1/customers/c1/loyalty", headers=auth).status_code == 404
    assert client.post(f"/v1/redemptions/{red['id']}/cancel", headers=auth).status_code == 404


def test_ledger_statement_paginates(api: TestClient) -> None:
    order(api)
    credit(api, 10, key="a")
    credit(api, 5, key="b")
    page = api.get("/v1/customers/c1/ledger?limit=2").json()
    assert [i["points"] for i in page["items"]] == [150, 10]
    rest = api.get(f"/v1/customers/c1/ledger?limit=2&cursor={page['next_cursor']}").json()
    assert [(i["points"], i["reason"]) for i in rest["items"]] == [(5, "adjustment")]


def test_rules_edit_validation_and_simulate(api: TestClient) -> None:
    rules = api.get("/v1/loyalty/rules").json()
    rules["rules"].append(
        {"id": "shoes", "type": "multiplier", "multiplier_bp": 30_000, "categories": ["shoes"]}
    )
    assert api.put("/v1/loyalty/rules", json=rules).status_code == 200
    bad = api.put("/v1/loyalty/rules", json={"settings": {"base": "gross"}})
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "settings.base"
    sim = api.post(
        "/v1/loyalty/simulate",
        json={
            "order": {
                "currency": "EUR",
                "lines": [
                    {"product_id": "s", "category": "shoes", "quantity": 1, "unit_price": 2000}
                ],
            }
        },
    ).json()
    assert sim == {
        "points": 110,
        "rules": [
            {"rule": "base", "points": 20},
            {"rule": "shoes", "points": 40},
            {"rule": "first-order", "points": 50},
        ],
    }
    ev = api.post("/v1/loyalty/simulate", json={"event": {"type": "newsletter_subscribed"}})
    assert ev.json() == {"points": 10, "rules": [{"rule": "newsletter", "points": 10}]}
    assert api.post("/v1/loyalty/simulate", json={}).status_code == 422


@pytest.mark.parametrize("field", ["stock", "per_customer_limit"])
def test_reward_counts_beyond_32_bits_name_their_field(api: TestClient, field: str) -> None:
    body = {"name": "Mug", "points_cost": 100, "kind": "custom"}
    r = api.post("/v1/rewards", json={**body, field: 2**31})
    assert r.status_code == 422, r.text
    assert r.json()["fields"][0]["field"] == f"body.{field}"
    assert api.post("/v1/rewards", json={**body, field: 2**31 - 1}).status_code == 201


def test_rewards_list_and_programme_reports(api: TestClient, tenant: Tenant) -> None:
    make_reward(api, 10, tiers=["Gold"])
    assert [r["points_cost"] for r in api.get("/v1/rewards").json()] == [10]
    assert (
        api.post("/v1/rewards", json={"name": "x", "points_cost": 0, "kind": "custom"}).status_code
        == 422
    )
    order(api)
    liab = api.get("/v1/programme/liability").json()
    assert (liab["points"], liab["value"], liab["currency"]) == (150, 750, "EUR")
    st = api.get(
        "/v1/programme/settlement",
        params={"from": "2026-01-01T00:00:00Z", "to": "2026-12-31T00:00:00Z"},
    ).json()
    assert st["total"] == 0
    assert st["lines"][0]["issued"] == 150
