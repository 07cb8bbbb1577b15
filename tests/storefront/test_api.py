"""The storefront endpoints through the app: tokens, isolation, CORS, rate limits, redemption."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from fidele.kit.clock import FrozenClock
from fidele.storefront.limits import Limiter
from tests.fixtures.factories import make_tenant
from tests.storefront.conftest import Shop, sign

ENDPOINTS = ("me", "rewards", "history", "referral", "activities")


def _get(shop: Shop, path: str, headers: dict[str, str], **params: Any) -> Any:
    return shop.api.get(f"/storefront/v1/{path}", headers=headers, params=params)


def test_me_equals_the_merchant_api_s_loyalty(shop: Shop) -> None:
    r = _get(shop, "me", shop.as_customer("c1"), merchant=shop.merchant_id)
    assert r.status_code == 200, r.text
    me = r.json()
    loyalty = shop.api.get("/v1/customers/c1/loyalty").json()
    assert me["customer_id"] == "c1"
    assert (
        (me["available"], me["pending"]) == (loyalty["available"], loyalty["pending"]) == (700, 0)
    )
    assert me["tier"]["name"] == "Bronze"
    assert me["tier_text"] == "500 points to reach Silver" or "to reach Silver" in me["tier_text"]
    assert 0 <= me["tier_percent"] <= 100
    fr = _get(shop, "me", shop.as_customer("c1"), lang="fr").json()
    assert "pour atteindre Silver" in fr["tier_text"]


def test_a_customer_s_token_reads_only_that_customer(shop: Shop) -> None:
    for who, points in (("c1", 700), ("c2", 100)):
        r = _get(shop, "me", shop.as_customer(who))
        assert r.json()["customer_id"] == who
        assert r.json()["available"] == points
    assert _get(shop, "me", shop.as_customer("nobody")).status_code == 404


@pytest.mark.parametrize("path", ENDPOINTS)
def test_forged_expired_and_missing_tokens_are_401(shop: Shop, path: str) -> None:
    good = shop.token("c2")
    forged = shop.token("c1").split(".")[0] + "." + good.split(".")[1]  # c1's claims, c2's MAC
    for token in (
        forged,
        shop.token("c1", secret="sfsec_guessed"),
        shop.token("c1", minutes=-1),
        shop.token("c1", minutes=0),
        "not-a-token",
    ):
        r = _get(shop, path, {"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, (token, r.text)
        assert r.json()["error"] == "unauthorized"
    assert _get(shop, path, {}).status_code == 401


def test_a_token_for_another_merchant_is_401(
    shop: Shop, session: Session, clock: FrozenClock
) -> None:
    other = make_tenant(session, clock.now(), name="Shop B")
    session.commit()
    b_secret = shop.api.post(
        "/v1/storefront/secret", headers={"Authorization": f"Bearer {other.key}"}
    ).json()["secret"]
    b_token = shop.token("c1", secret=b_secret, merchant=other.merchant_id)
    # B's valid token, presented on A's widget
    r = _get(shop, "me", {"Authorization": f"Bearer {b_token}"}, merchant=shop.merchant_id)
    assert r.status_code == 401 and "another merchant" in r.json()["detail"]
    # A's merchant id in a token signed with B's secret
    forged = shop.token("c1", secret=b_secret)
    assert _get(shop, "me", {"Authorization": f"Bearer {forged}"}).status_code == 401
    # B has no customer c1: B's own token does not reach A's c1
    assert _get(shop, "me", {"Authorization": f"Bearer {b_token}"}).status_code == 404


def test_rotating_the_secret_retires_the_old_tokens(shop: Shop) -> None:
    old = shop.as_customer("c1")
    assert _get(shop, "me", old).status_code == 200
    new = shop.api.post("/v1/storefront/secret").json()["secret"]
    assert new != shop.secret
    assert _get(shop, "me", old).status_code == 401
    fresh = {"Authorization": f"Bearer {shop.token('c1', secret=new)}"}
    assert _get(shop, "me", fresh).status_code == 200


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_merchant_api_key_is_refused_on_storefront_endpoints(shop: Shop, path: str) -> None:
    key = shop.api.headers["Authorization"]
    r = shop.api.get(f"/storefront/v1/{path}", headers={"Authorization": key})
    assert r.status_code == 401
    assert "API keys are not accepted" in r.json()["detail"]


def test_a_customer_token_can_do_nothing_a_merchant_key_does(shop: Shop) -> None:
    token = shop.as_customer("c1")
    plain = TestClient(shop.api.app)
    cart = {
        "customer_id": "c1",
        "currency": "EUR",
        "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 3000}],
    }
    for method, path, body in (
        ("GET", "/v1/customers/c1/loyalty", None),
        ("GET", "/v1/customers", None),
        ("POST", "/v1/customers/c1/points/adjustments", {"points": 10, "reason": "x"}),
        ("POST", "/v1/customers/c1/redemptions", {"reward_id": shop.rewards[0]}),
        ("GET", "/v1/storefront/settings", None),
        ("PUT", "/v1/storefront/settings", {"origins": []}),
        ("POST", "/v1/storefront/secret", None),
        ("POST", "/v1/checkout/evaluate", cart),
    ):
        r = plain.request(method, path, headers={**token, "Idempotency-Key": "k"}, json=body)
        assert r.status_code == 401, (path, r.text)
    assert _get(shop, "me", shop.as_customer("c1")).json()["available"] == 700
    # the redemption endpoint takes no customer but the token's
    r = plain.post(
        "/storefront/v1/redemptions",
        headers={**token, "Idempotency-Key": "x"},
        json={"reward_id": shop.rewards[0], "customer_id": "c2"},
    )
    assert r.status_code == 422


def test_rewards_affordable_first_then_points_to_go(shop: Shop) -> None:
    rows = _get(shop, "rewards", shop.as_customer("c1")).json()
    assert [(r["points_cost"], r["affordable"]) for r in rows] == [
        (250, True),
        (600, True),
        (1500, False),
    ]
    assert rows[2]["points_to_go"] == 800
    assert rows[2]["text"] == "800 points to go"
    fr = _get(shop, "rewards", shop.as_customer("c1"), lang="fr").json()
    assert fr[2]["text"] == "Encore 800 points"


def _redeem(shop: Shop, customer: str, reward: int, key: str) -> Any:
    return shop.api.post(
        "/storefront/v1/redemptions",
        headers={**shop.as_customer(customer), "Idempotency-Key": key},
        json={"reward_id": reward},
    )


def test_redemption_is_idempotent_and_its_code_is_accepted_at_checkout(shop: Shop) -> None:
    first = _redeem(shop, "c1", shop.rewards[0], "k-1")
    assert first.status_code == 201, first.text
    again = _redeem(shop, "c1", shop.rewards[0], "k-1")
    assert again.status_code == 200
    assert again.json() == first.json()
    code = first.json()["code"]
    assert code and first.json()["how_to_use"]
    assert _get(shop, "me", shop.as_customer("c1")).json()["available"] == 450
    # the same key from another customer is that customer's own redemption
    other = _redeem(shop, "c2", shop.rewards[0], "k-1")
    assert other.status_code == 409 and other.json()["error"] == "insufficient_points"
    cart = {
        "customer_id": "c1",
        "currency": "EUR",
        "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 3000}],
        "codes": [code],
    }
    r = shop.api.post("/v1/checkout/evaluate", json=cart)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["rejected_codes"] == []
    assert [d["amount"] for d in body["discounts"] if d["code"]] == [500]


def test_redeeming_without_enough_points_or_an_unknown_reward(shop: Shop) -> None:
    r = _redeem(shop, "c1", shop.rewards[1], "k-2")
    assert r.status_code == 409
    assert _redeem(shop, "c1", 999_999, "k-3").status_code == 404
    assert _get(shop, "me", shop.as_customer("c1")).json()["available"] == 700


def test_history_referral_and_activities(shop: Shop) -> None:
    _redeem(shop, "c1", shop.rewards[0], "k-4")
    lines = _get(shop, "history", shop.as_customer("c1")).json()
    assert [(ln["label"], ln["points"]) for ln in lines] == [
        ("Reward redeemed", -250),
        ("Adjustment", 700),
    ]
    ref = _get(shop, "referral", shop.as_customer("c1")).json()
    assert ref["code"] and ref["code"] in ref["link"]
    assert (ref["friends_joined"], ref["rewards_earned"]) == (0, 0)
    again = _get(shop, "referral", shop.as_customer("c1")).json()
    assert again["code"] == ref["code"]
    merchant_view = shop.api.get("/v1/referrals/customers/c1").json()
    assert merchant_view["code"] == ref["code"]
    ways = _get(shop, "activities", shop.as_customer("c1"), lang="fr").json()
    kinds = {w["kind"]: w for w in ways}
    assert kinds["newsletter_subscribed"]["points"] == 10
    assert kinds["newsletter_subscribed"]["label"] == "S'abonner à la newsletter"
    assert "order" in kinds


def test_the_public_programme_needs_no_token(shop: Shop) -> None:
    plain = TestClient(shop.api.app)
    r = plain.get("/storefront/v1/program", params={"merchant": shop.merchant_id})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["points_cost"] for x in body["rewards"]] == [250, 600, 1500]
    assert [t["name"] for t in body["tiers"]] == ["Bronze", "Silver", "Gold"]
    assert body["signup"] and body["earn"]
    assert body["look"]["launcher_en"] == "Rewards"
    assert plain.get("/storefront/v1/program", params={"merchant": 424242}).status_code == 404
    assert plain.get("/storefront/v1/program").status_code == 422


def test_settings_origins_and_look(shop: Shop) -> None:
    r = shop.api.put(
        "/v1/storefront/settings",
        json={
            "origins": ["https://Shop.Example/", "http://localhost:3000"],
            "look": {"primary": "#112233", "launcher_fr": "Mes points"},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["origins"] == ["http://localhost:3000", "https://shop.example"]
    assert r.json()["has_secret"] is True
    look = shop.api.get("/storefront/v1/program", params={"merchant": shop.merchant_id}).json()
    assert (look["look"]["primary"], look["look"]["launcher_fr"]) == ("#112233", "Mes points")
    bad = shop.api.put("/v1/storefront/settings", json={"origins": ["shop.example/x"]})
    assert bad.status_code == 422 and "origins" in bad.json()["detail"]
    bad = shop.api.put("/v1/storefront/settings", json={"look": {"primary": "red"}})
    assert bad.status_code == 422 and "look.primary" in bad.json()["detail"]
    assert shop.api.get("/v1/storefront/settings").json()["origins"] == [
        "http://localhost:3000",
        "https://shop.example",
    ]


def _declare(shop: Shop, *origins: str) -> None:
    r = shop.api.put("/v1/storefront/settings", json={"origins": list(origins)})
    assert r.status_code == 200, r.text


def test_cors_preflight_and_requests_from_declared_origins_only(shop: Shop) -> None:
    _declare(shop, "https://shop.example")
    url = f"/storefront/v1/redemptions?merchant={shop.merchant_id}"
    pre = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,idempotency-key",
    }
    ok = shop.api.options(url, headers={"Origin": "https://shop.example", **pre})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == "https://shop.example"
    assert "Idempotency-Key" in ok.headers["access-control-allow-headers"]
    assert "POST" in ok.headers["access-control-allow-methods"]
    denied = shop.api.options(url, headers={"Origin": "https://evil.example", **pre})
    assert denied.status_code == 403
    assert "access-control-allow-origin" not in denied.headers

    me = f"/storefront/v1/me?merchant={shop.merchant_id}"
    r = shop.api.get(me, headers={**shop.as_customer(), "Origin": "https://shop.example"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    r = shop.api.get(me, headers={**shop.as_customer(), "Origin": "https://evil.example"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    # an error answered to a declared origin is readable by the widget too
    r = shop.api.get(me, headers={"Origin": "https://shop.example"})
    assert (
        r.status_code == 401 and r.headers["access-control-allow-origin"] == "https://shop.example"
    )
    # without ?merchant= the token says whose origins apply
    r = shop.api.get(
        "/storefront/v1/me", headers={**shop.as_customer(), "Origin": "https://shop.example"}
    )
    assert r.status_code == 200
    # the server's own pages (the demo shop) are same-origin
    r = shop.api.get(me, headers={**shop.as_customer(), "Origin": "http://testserver"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_no_declared_origin_means_no_browser_from_elsewhere(shop: Shop) -> None:
    r = shop.api.get(
        "/storefront/v1/program",
        params={"merchant": shop.merchant_id},
        headers={"Origin": "https://shop.example"},
    )
    assert r.status_code == 403


def test_rate_limited_per_customer(shop: Shop) -> None:
    shop.api.app.state.storefront_limiter = Limiter(per_customer=3, per_address=100)
    for _ in range(3):
        assert _get(shop, "me", shop.as_customer("c1")).status_code == 200
    r = _get(shop, "me", shop.as_customer("c1"))
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    assert _get(shop, "me", shop.as_customer("c2")).status_code == 200  # another customer


def test_rate_limited_per_address(shop: Shop) -> None:
    shop.api.app.state.storefront_limiter = Limiter(per_customer=100, per_address=2)
    params = {"merchant": shop.merchant_id}
    assert shop.api.get("/storefront/v1/program", params=params).status_code == 200
    assert _get(shop, "me", shop.as_customer("c2")).status_code == 200
    assert shop.api.get("/storefront/v1/program", params=params).status_code == 429
    assert _get(shop, "me", shop.as_customer("c1")).status_code == 429


def test_the_widget_is_served_small_and_self_contained(client: TestClient) -> None:
    import gzip

    r = client.get("/storefront/widget.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert len(gzip.compress(r.content, 9)) < 30 * 1024
    text = r.text
    assert "attachShadow" in text and "document.cookie" not in text
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text


def test_no_demo_page_without_a_demo_shop(client: TestClient) -> None:
    assert client.get("/storefront/demo").status_code == 404


def test_tokens_are_signed_as_the_readme_says(shop: Shop) -> None:
    exp = int(shop.now.timestamp()) + 600
    token = sign(shop.secret, shop.merchant_id, "c1", exp)
    assert _get(shop, "me", {"Authorization": f"Bearer {token}"}).status_code == 200


def test_rewards_of_another_tier_are_not_listed_nor_redeemable(shop: Shop) -> None:
    r = shop.api.post(
        "/v1/rewards",
        json={"name": "Gold gift", "points_cost": 100, "kind": "custom", "tiers": ["Gold"]},
    )
    gold = r.json()["id"]
    listed = {x["id"] for x in _get(shop, "rewards", shop.as_customer("c1")).json()}
    assert gold not in listed and set(shop.rewards) <= listed
    refused = _redeem(shop, "c1", gold, "k-gold")
    assert refused.status_code == 409 and refused.json()["reason"] == "tier"
