"""Issue #12 item 7: expired points. A read is as of now, before the expiry job books them,
and a refund takes back the order's points as they are now: what the lot still holds, never
its expired points, and its spent points only as the programme's ``clawback`` setting says."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from fidele.kit.clock import FrozenClock
from fidele.ledger import service as ledger
from fidele.loyalty import audit, rewards, service
from fidele.loyalty.replay import catch_up_all, replay
from tests.fixtures.factories import order_body
from tests.loyalty.conftest import Shop
from tests.loyalty.test_service import reward


def scale(clawback: str = "debt") -> dict[str, Any]:
    """Available at once, expiring after a month, 1 point per euro, no tiers or bonus."""
    settings = {"points_per_unit": 1, "pending_days": 0, "expiry_months": 1}
    return {"settings": {**settings, "clawback": clawback}, "tiers": {"levels": []}}


def redeem(shop: Shop, cost: int, key: str) -> None:
    rw = reward(shop, cost)
    rewards.redeem(shop.session, shop.caller, shop.customer(), rw.id, key, shop.clock.now())


def consistent(shop: Shop) -> None:
    assert ledger.verify(shop.session).ok
    assert audit.verify(shop.session) == []


def test_refund_after_expiry_takes_nothing_and_leaves_no_debt(shop: Shop) -> None:
    shop.rules(scale())
    shop.order("o1", amount=10_000)
    shop.order("o2", amount=4_000, customer="c1")
    shop.clock.advance(days=20)
    shop.order("o3", amount=3_000)  # 30 points still valid when o1's expire
    shop.clock.advance(days=20)  # o1's and o2's 140 points expired; no job has run
    shop.refund("o1", "r1")
    s = shop.summary()
    assert (s["available"], s["debt"], s["expired"]) == (30, 0, 0)  # o3's points untouched
    assert s["lifetime_earned"] == 70  # o1's 100 are no longer earned
    consistent(shop)


def test_refund_after_partial_spending_makes_the_spent_part_a_debt(shop: Shop) -> None:
    shop.rules(scale())
    shop.order("o1", amount=10_000)
    redeem(shop, 60, "k1")
    shop.refund("o1", "r1", 5_000)  # 50 to take back: the 40 left, then 10 spent
    assert (shop.summary()["available"], shop.summary()["debt"]) == (0, 10)
    shop.refund("o1", "r2")  # the other 50: all spent
    s = shop.summary()
    assert (s["available"], s["debt"], s["lifetime_spent"]) == (0, 60, 60)
    consistent(shop)


def test_spent_and_expired_parts_of_one_refund(shop: Shop) -> None:
    shop.rules(scale())
    shop.order("o1", amount=10_000)
    redeem(shop, 30, "k1")
    shop.clock.advance(days=40)  # the 70 left expire
    shop.refund("o1", "r1")
    s = shop.summary()
    assert (s["available"], s["debt"]) == (0, 30)  # only what was spent is owed
    consistent(shop)


def test_forgiving_programme_keeps_no_debt(shop: Shop) -> None:
    shop.rules(scale("forgive"))
    shop.order("o1", amount=10_000)
    shop.order("o2", amount=2_000)
    redeem(shop, 90, "k1")  # 90 of o1's lot (it expires first... and was placed first)
    shop.refund("o1", "r1")
    s = shop.summary()
    assert (s["available"], s["debt"]) == (20, 0)  # o1's 10 left go back; o2's 20 stay
    consistent(shop)


@pytest.mark.parametrize(("setting", "available", "debt"), [("debt", 0, 60), ("negative", -60, 60)])
def test_spent_points_owed_per_setting(shop: Shop, setting: str, available: int, debt: int) -> None:
    shop.rules(scale(setting))
    shop.order("o1", amount=10_000)
    redeem(shop, 60, "k1")
    shop.refund("o1", "r1")
    s = shop.summary()
    assert (s["available"], s["debt"]) == (available, debt)


def test_replay_splits_refunds_as_live_did(shop: Shop) -> None:
    shop.rules(scale())
    shop.order("o1", amount=10_000)
    shop.order("o2", amount=5_000)
    redeem(shop, 120, "k1")  # o1's 100 and 20 of o2's
    shop.clock.advance(days=40)  # o2's 30 left expire
    shop.refund("o2", "r1", 2_500)  # 25: 20 spent, 5 of the expired
    shop.refund("o2", "r2")  # 25 more: all expired
    shop.refund("o1", "r3")  # 100 spent
    before = shop.summary()
    assert (before["available"], before["debt"]) == (0, 120)
    programme = shop.tenant.programme_id
    catch_up_all(shop.session, shop.clock.now(), programme_id=programme)
    replay(shop.session, programme, shop.clock.now())
    shop.session.expire_all()
    assert shop.summary() == before
    consistent(shop)


def test_a_read_is_as_of_now_before_the_job_books_expiry(shop: Shop) -> None:
    shop.rules(scale())
    shop.order("o1", amount=10_000)
    shop.clock.advance(days=20)
    shop.order("o2", amount=2_000)
    shop.clock.advance(days=15)  # o1's lot expired, no job has run
    s = shop.summary()
    assert (s["available"], s["expired"]) == (20, 100)
    assert s["expiring"] == {"30": 20, "60": 20, "90": 20}
    assert service.available_points(shop.session, shop.customer(), shop.clock.now()) == 20
    catch_up_all(shop.session, shop.clock.now())  # the job books it: the same figures
    after = shop.summary()
    assert (after["available"], after["expired"]) == (20, 0)
    consistent(shop)


def test_get_loyalty_over_http_after_expiry(api: TestClient, clock: FrozenClock) -> None:
    r = api.put(
        "/v1/loyalty/rules",
        json=scale(),
    )
    assert r.status_code in (200, 201), r.text
    lines = [{"product_id": "p1", "category": "apparel", "quantity": 1, "unit_price": 10_000}]
    body = order_body("o1", "c1", placed_at=clock.now().isoformat(), lines=lines)
    assert api.post("/v1/orders", json=body).status_code == 201
    assert api.get("/v1/customers/c1/loyalty").json()["available"] == 100
    clock.advance(days=31)
    s = api.get("/v1/customers/c1/loyalty").json()
    assert (s["available"], s["expired"], s["expiring"]["30"]) == (0, 100, 0)
    reward_id = api.post(
        "/v1/rewards", json={"name": "R", "points_cost": 10, "kind": "custom", "value": 0}
    ).json()["id"]
    refused = api.post(
        "/v1/customers/c1/redemptions",
        json={"reward_id": reward_id},
        headers={"Idempotency-Key": "late"},
    )
    assert refused.status_code == 409, refused.text
