"""Checkout with the real loyalty domain (no fake port): points burned and given back, reward
vouchers typed as codes, points earned by the cart, tier free shipping."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from fidele.events.models import Event
from fidele.kit.clock import FrozenClock
from fidele.promotions import tasks
from tests.fixtures.factories import order_body
from tests.promotions.conftest import by_source, cart


def _points(api: TestClient, customer: str = "c1") -> dict[str, Any]:
    r = api.get(f"/v1/customers/{customer}/loyalty")
    assert r.status_code == 200, r.text
    return r.json()


def _credit(api: TestClient, points: int, key: str = "adj-1") -> None:
    api.put("/v1/customers/c1", json={"email": "c1@example.com"})
    r = api.post(
        "/v1/customers/c1/points/adjustments",
        json={"points": points, "reason": "gift"},
        headers={"Idempotency-Key": key},
    )
    assert r.status_code in (200, 201), r.text


def _evaluate(api: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post("/v1/checkout/evaluate", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_points_burned_at_confirm_and_given_back_on_cancel(api: TestClient) -> None:
    _credit(api, 1000)
    body = _evaluate(api, cart(points=600))
    burned = by_source(body, "points")
    assert len(burned) == 1
    assert burned[0]["amount"] == 3000  # 600 points at the default 500 cents per 100 points
    assert _points(api)["available"] == 1000  # evaluating holds nothing of the points
    r = api.post(f"/v1/checkout/{body['session_id']}/confirm", json={"order_id": "o-9"})
    assert r.status_code == 200, r.text
    assert _points(api)["available"] == 400
    again = api.post(f"/v1/checkout/{body['session_id']}/confirm", json={"order_id": "o-9"})
    assert again.json() == r.json()
    assert _points(api)["available"] == 400


def test_burning_more_points_than_held_is_refused(api: TestClient) -> None:
    _credit(api, 100)
    r = api.post("/v1/checkout/evaluate", json=cart(points=600))
    assert r.status_code in (409, 422), r.text
    assert _points(api)["available"] == 100


def _voucher_of_c1(api: TestClient) -> str:
    """c1 gets 500 points and buys a 5 euro reward voucher with 200 of them."""
    _credit(api, 500)
    reward = api.post(
        "/v1/rewards",
        json={"name": "5 euros", "points_cost": 200, "kind": "amount_off", "value": 500},
    )
    assert reward.status_code == 201, reward.text
    red = api.post(
        "/v1/customers/c1/redemptions",
        json={"reward_id": reward.json()["id"]},
        headers={"Idempotency-Key": "red-1"},
    )
    assert red.status_code in (200, 201), red.text
    return str(red.json()["code"])


def test_reward_voucher_is_a_code_at_checkout_and_single_use(api: TestClient) -> None:
    code = _voucher_of_c1(api)
    assert _points(api)["available"] == 300
    body = _evaluate(api, cart(code))
    applied = by_source(body, "reward")
    assert [d["amount"] for d in applied] == [500]
    assert (
        api.post(f"/v1/checkout/{body['session_id']}/confirm", json={"order_id": "o-1"}).status_code
        == 200
    )
    second = _evaluate(api, cart(code))
    assert by_source(second, "reward") == []
    assert [c["code"] for c in second["rejected_codes"]] == [code]


def test_reward_voucher_of_another_customer_is_refused(api: TestClient) -> None:
    """c1 bought the voucher with points; c2 (and a guest) typing it get ``not_your_code``."""
    code = _voucher_of_c1(api)
    api.put("/v1/customers/c2", json={"email": "c2@example.com"})
    for customer in ("c2", "guest-42"):
        body = _evaluate(api, cart(code, customer=customer))
        assert by_source(body, "reward") == []
        assert body["rejected_codes"] == [
            {
                "code": code,
                "reason": "not_your_code",
                "detail": "the reward was bought by another customer",
            }
        ]
        r = api.post(
            f"/v1/checkout/{body['session_id']}/confirm", json={"order_id": f"o-{customer}"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["discount_total"] == 0
    mine = _evaluate(api, cart(code, customer="c1"))  # still the buyer's, unused
    assert [d["amount"] for d in by_source(mine, "reward")] == [500]


def test_points_earned_match_the_loyalty_simulation(api: TestClient) -> None:
    api.put("/v1/customers/c1", json={"email": "c1@example.com"})
    body = _evaluate(api, cart())
    order = {
        "id": "sim",
        "customer_id": "c1",
        "placed_at": "2026-06-01T12:00:00Z",
        "currency": "EUR",
        "lines": cart()["lines"],
        "shipping": 500,
        "discounts": 0,
        "total": 5000 + 500,
    }
    sim = api.post("/v1/loyalty/simulate", json={"order": order})
    assert sim.status_code == 200, sim.text
    assert body["points_earned"] == sim.json()["points"] > 0


def test_referrer_rewarded_in_points_after_the_return_window(
    api: TestClient, session: Session, clock: FrozenClock
) -> None:
    settings = {"referral": {"reward_kind": "points", "reward_value": 250}}
    assert api.put("/v1/promotions/settings", json=settings).status_code == 200
    api.put("/v1/customers/c1", json={"email": "ana@example.com"})
    code = api.get("/v1/referrals/customers/c1").json()["code"]
    body = order_body("o-2", "c2", attributes={"referral_code": code})
    assert api.post("/v1/orders", json=body).status_code == 201
    api.post("/v1/orders/o-2/status", json={"status": "delivered"})
    clock.advance(days=13)
    assert tasks.release_rewards(session, clock.now()) == 0  # the window is not over
    clock.advance(days=2)
    assert tasks.release_rewards(session, clock.now()) == 1
    assert tasks.release_rewards(session, clock.now()) == 0  # once
    session.commit()
    assert _points(api)["available"] == 250
    [line] = api.get("/v1/customers/c1/ledger").json()["items"]
    event = session.get(Event, int(line["source"].removeprefix("adjustment:")))
    assert event is not None and event.type == "loyalty.adjustment"
    assert event.payload == {"points": 250, "reason": "referral.reward"}  # in the log: replayable
    assert api.get("/v1/referrals/customers/c1").json()["stats"]["rewarded"] == 1
