from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from fidele.kit import codes
from fidele.kit.clock import FrozenClock
from fidele.ledger import service as ledger
from fidele.promotions import tasks
from tests.fixtures.factories import Tenant, make_tenant, order_body
from tests.promotions.conftest import by_source, cart


def coupon(api: TestClient, **body: object) -> dict:
    r = api.post("/v1/coupons", json={"kind": "percent_off", "value": 1000, **body})
    assert r.status_code == 201, r.text
    return r.json()


def evaluate(api: TestClient, body: dict) -> dict:
    r = api.post("/v1/checkout/evaluate", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def clock_now(api: TestClient):  # type: ignore[no-untyped-def]
    return api.app.state.clock.now()  # type: ignore[attr-defined]


def reasons(body: dict) -> dict[str, str]:
    return {x["code"]: x["reason"] for x in body["rejected_codes"]}


class TestCouponsAtCheckout:
    def test_shared_code_percent_then_confirm_is_idempotent(self, api: TestClient) -> None:
        coupon(api, code="summer10")
        body = evaluate(api, cart("Summer10"))
        assert by_source(body, "coupon") == [
            {
                "source": "coupon",
                "code": "SUMMER10",
                "amount": 500,
                "name": None,
                "lines": [400, 100],
                "shipping": 0,
            }
        ]
        assert body["total"] == 5000 + 500 - 500
        sid = body["session_id"]
        first = api.post(f"/v1/checkout/{sid}/confirm", json={"order_id": "o-1"})
        assert first.status_code == 200, first.text
        again = api.post(f"/v1/checkout/{sid}/confirm", json={"order_id": "o-1"})
        assert again.json() == first.json()
        other = api.post(f"/v1/checkout/{sid}/confirm", json={"order_id": "o-2"})
        assert other.status_code == 409
        assert other.json()["error"] == "session_already_confirmed"

    def test_generated_code_and_refusals(self, api: TestClient, clock: FrozenClock) -> None:
        made = coupon(api)  # generated code
        assert codes.is_well_formed(made["code"], prefix="C")
        typo = made["code"][:-1] + ("0" if made["code"][-1] != "0" else "1")
        now = clock.now()
        coupon(api, code="LATER1", starts_at=(now + timedelta(days=1)).isoformat())
        coupon(
            api,
            code="GONE1",
            ends_at=(now - timedelta(seconds=1)).isoformat(),
            starts_at=(now - timedelta(days=2)).isoformat(),
        )
        coupon(api, code="BIGCART", conditions={"min_subtotal": 100_000})
        coupon(api, code="HOMEONLY", conditions={"categories": ["garden"]})
        body = evaluate(
            api,
            cart(typo, "NOPE99", "LATER1", "GONE1", "BIGCART", "HOMEONLY", made["code"].lower()),
        )
        assert reasons(body) == {
            typo: "bad_check_character",
            "NOPE99": "unknown",
            "LATER1": "not_started",
            "GONE1": "expired",
            "BIGCART": "conditions_unmet",
            "HOMEONLY": "conditions_unmet",
        }
        detail = {x["code"]: x["detail"] for x in body["rejected_codes"]}
        assert detail["BIGCART"] == "condition not met: min_subtotal"
        assert detail["HOMEONLY"] == "condition not met: products"
        assert [d["code"] for d in by_source(body, "coupon")] == [made["code"]]

    def test_exclusive_blocks_others_and_limit_reached(self, api: TestClient) -> None:
        coupon(api, code="SOLO50", kind="amount_off", value=2000, exclusive=True, priority=10)
        coupon(api, code="TEN10", usage_limit=1)
        body = evaluate(api, cart("TEN10", "SOLO50"))
        assert reasons(body) == {"TEN10": "not_combinable"}
        assert body["rejected_codes"][0]["detail"] == "not combinable with SOLO50"
        used = evaluate(api, cart("TEN10"))
        assert (
            api.post(
                f"/v1/checkout/{used['session_id']}/confirm", json={"order_id": "o-9"}
            ).status_code
            == 200
        )
        assert reasons(evaluate(api, cart("TEN10"))) == {"TEN10": "usage_limit_reached"}

    def test_last_use_is_held_from_evaluate_until_confirm_or_release(
        self, api: TestClient, session: Session, clock: FrozenClock
    ) -> None:
        coupon(api, code="ONCE", usage_limit=1)
        a = evaluate(api, cart("ONCE"))
        assert by_source(a, "coupon")[0]["amount"] == 500
        b = evaluate(api, cart("ONCE", customer="c2"))  # another cart while a is open
        assert reasons(b) == {"ONCE": "held_by_another_checkout"}
        assert by_source(b, "coupon") == [] and b["total"] == 5500  # priced without it
        api.post(f"/v1/checkout/{a['session_id']}/cancel")  # released
        c = evaluate(api, cart("ONCE", customer="c2"))
        assert by_source(c, "coupon")[0]["amount"] == 500
        clock.advance(minutes=31)
        assert tasks.expire_sessions(session, clock.now()) >= 1  # c abandoned: released
        session.commit()
        d = evaluate(api, cart("ONCE", customer="c3"))
        r = api.post(f"/v1/checkout/{d['session_id']}/confirm", json={"order_id": "o-d"})
        assert r.status_code == 200, r.text
        assert reasons(evaluate(api, cart("ONCE"))) == {"ONCE": "usage_limit_reached"}
        listed = api.get("/v1/coupons").json()["items"]
        assert [(x["used_count"], x["held_count"]) for x in listed] == [(1, 0)]

    def test_per_customer_limit(self, api: TestClient) -> None:
        coupon(api, code="WELCOME", per_customer_limit=1)
        api.put("/v1/customers/c1", json={"email": "ana@example.com"})
        s = evaluate(api, cart("WELCOME"))
        api.post(f"/v1/checkout/{s['session_id']}/confirm", json={"order_id": "o-1"})
        assert reasons(evaluate(api, cart("WELCOME"))) == {"WELCOME": "customer_limit_reached"}
        assert reasons(evaluate(api, cart("WELCOME", customer="c2"))) == {}

    def test_batch_of_single_use_codes(self, api: TestClient) -> None:
        r = api.post("/v1/coupons/batches", json={"count": 5, "kind": "amount_off", "value": 300})
        assert r.status_code == 201, r.text
        made = r.json()["codes"]
        assert len(set(made)) == 5
        assert all(codes.is_well_formed(c, prefix="C") for c in made)
        body = evaluate(api, cart(made[0]))
        assert by_source(body, "coupon")[0]["amount"] == 300

    @pytest.mark.parametrize(
        ("path", "field"),
        [
            ("/v1/coupons", "usage_limit"),
            ("/v1/coupons", "per_customer_limit"),
            ("/v1/coupons/batches", "usage_limit"),
        ],
    )
    def test_limits_beyond_32_bits_name_their_field(
        self, api: TestClient, path: str, field: str
    ) -> None:
        # The columns are 32-bit integers on PostgreSQL: a larger limit is the caller's error
        # (422 naming the field), not a database failure; the largest one is stored.
        body = {"kind": "amount_off", "value": 100, **({"count": 1} if "batches" in path else {})}
        r = api.post(path, json={**body, field: 2**31})
        assert r.status_code == 422, r.text
        assert r.json()["fields"][0]["field"] == f"body.{field}"
        assert api.post(path, json={**body, field: 2**31 - 1}).status_code == 201

    def test_merchant_code_shaped_like_generated_is_refused(self, api: TestClient) -> None:
        r = api.post("/v1/coupons", json={"kind": "free_shipping", "code": "C1234-5678-9ABC"})
        assert r.status_code == 422
        assert r.json()["fields"][0]["field"] == "code"

    def test_other_merchant_session_is_404(
        self, api: TestClient, session: Session, clock: FrozenClock
    ) -> None:
        sid = evaluate(api, cart())["session_id"]
        other: Tenant = make_tenant(session, clock.now(), name="Shop B")
        session.commit()
        api.headers["Authorization"] = f"Bearer {other.key}"
        assert api.post(f"/v1/checkout/{sid}/confirm", json={"order_id": "x"}).status_code == 404


class TestAutomaticPromotions:
    def test_buy_two_get_one_and_gift_with_purchase(self, api: TestClient) -> None:
        r = api.post(
            "/v1/promotions",
            json={
                "kind": "free_product",
                "rule": "buy_x_get_y",
                "buy": 2,
                "get": 1,
                "name": "3 for 2",
                "conditions": {"categories": ["apparel"]},
            },
        )
        assert r.status_code == 201, r.text
        api.post(
            "/v1/promotions",
            json={
                "kind": "free_product",
                "product_id": "gift",
                "conditions": {"min_subtotal": 3000},
            },
        )
        lines = [
            {"product_id": "p1", "category": "apparel", "quantity": 2, "unit_price": 2000},
            {"product_id": "p3", "category": "apparel", "quantity": 1, "unit_price": 1500},
            {"product_id": "gift", "category": "goodies", "quantity": 1, "unit_price": 800},
        ]
        body = evaluate(api, cart(lines=lines, shipping=0))
        amounts = sorted(d["amount"] for d in by_source(body, "promotion"))
        assert amounts == [800, 1500]
        assert body["total"] == 4000 + 1500 + 800 - 2300

    def test_tier_and_membership_free_shipping(self, lapi: TestClient, loyalty) -> None:  # type: ignore[no-untyped-def]
        from tests.promotions.conftest import tier

        lapi.put("/v1/customers/c1", json={"email": "ana@example.com"})
        loyalty.tier = tier("Gold")
        body = evaluate(lapi, cart())
        assert by_source(body, "promotion") == [
            {
                "source": "promotion",
                "code": None,
                "amount": 500,
                "name": "Gold tier",
                "lines": [0, 0],
                "shipping": 500,
            }
        ]
        loyalty.tier = None
        loyalty.membership = tier("Plus")
        loyalty.membership.plan = "Plus"
        assert by_source(evaluate(lapi, cart()), "membership")[0]["amount"] == 500


class TestLoyaltyAtCheckout:
    def test_points_rewards_and_earned(self, lapi: TestClient, loyalty, session: Session) -> None:  # type: ignore[no-untyped-def]
        from fidele.customers.models import Customer
        from tests.promotions.conftest import voucher

        lapi.put("/v1/customers/c1", json={"email": "ana@example.com"})
        cid = session.query(Customer).filter_by(external_id="c1").one().id
        loyalty.points[cid] = 1000
        loyalty.vouchers["RWD-1"] = voucher("RWD-1", value=700)
        body = evaluate(lapi, cart("rwd-1", points=300))
        assert by_source(body, "reward")[0]["amount"] == 700
        assert by_source(body, "points") == [
            {
                "source": "points",
                "code": None,
                "amount": 300,
                "name": None,
                "lines": None,
                "shipping": 0,
            }
        ]
        assert body["points_used"] == 300
        assert body["points_earned"] == (5000 - 700) // 100
        assert body["total"] == 5500 - 700 - 300
        r = lapi.post(f"/v1/checkout/{body['session_id']}/confirm", json={"order_id": "o-1"})
        assert r.status_code == 200, r.text
        assert loyalty.points[cid] == 700
        assert loyalty.vouchers["RWD-1"].status == "used"
        assert reasons(evaluate(lapi, cart("RWD-1"))) == {"RWD-1": "usage_limit_reached"}
        # The order.refunded handler uses the installed loyalty domain; call it with the fake.
        from fidele.promotions import service

        payload = {
            "order_id": "o-1",
            "refund_id": "r1",
            "amount": 4500,
            "order_total": 4500,
            "refunded_total": 4500,
        }
        merchant_id = session.get(Customer, cid).merchant_id
        service.restore_on_refund(session, merchant_id, payload, clock_now(lapi), loyalty=loyalty)
        assert loyalty.points[cid] == 1000  # points burned come back on a full refund

    def test_too_many_points_is_409(self, lapi: TestClient) -> None:
        # Well-formed, refused by the balance (state): a conflict that names the field.
        lapi.put("/v1/customers/c1", json={"email": "ana@example.com"})
        r = lapi.post("/v1/checkout/evaluate", json=cart(points=10))
        assert r.status_code == 409
        assert r.json()["fields"][0]["field"] == "points"

    def test_no_loyalty_programme_refuses_points(self, api: TestClient) -> None:
        from fidele.promotions.loyalty_port import DefaultLoyalty

        api.app.state.loyalty = DefaultLoyalty("fidele.not_installed.service")  # type: ignore[attr-defined]
        r = api.post("/v1/checkout/evaluate", json=cart(points=10))
        assert r.status_code == 422
        assert r.json()["error"] == "no_loyalty_programme"

    def test_no_loyalty_programme_refuses_referral_points(self, api: TestClient) -> None:
        from fidele.promotions.loyalty_port import DefaultLoyalty

        api.app.state.loyalty = DefaultLoyalty("fidele.not_installed.service")  # type: ignore[attr-defined]
        before = api.get("/v1/promotions/settings").json()
        settings = {**before, "referral": {**before["referral"], "reward_kind": "points"}}
        r = api.put("/v1/promotions/settings", json=settings)
        assert r.status_code == 422
        assert r.json()["error"] == "no_loyalty_programme"
        assert r.json()["fields"][0]["field"] == "referral.reward_kind"
        assert api.get("/v1/promotions/settings").json() == before  # nothing written
        settings["referral"]["reward_kind"] = "credit"
        assert api.put("/v1/promotions/settings", json=settings).status_code == 200


class TestGiftCards:
    def test_hold_cancel_confirm_refund(self, api: TestClient) -> None:
        r = api.post(
            "/v1/gift-cards",
            json={"amount": 5000, "currency": "EUR", "recipient_email": "bob@example.com"},
        )
        assert r.status_code == 201, r.text
        code = r.json()["code"]
        assert api.get(f"/v1/gift-cards/{code.lower()}").json()["balance"] == 5000
        body = evaluate(api, cart(gift_cards=[{"code": code, "amount": 3000}]))
        assert by_source(body, "gift_card")[0]["amount"] == 3000
        assert api.get(f"/v1/gift-cards/{code}").json()["balance"] == 2000  # held
        api.post(f"/v1/checkout/{body['session_id']}/cancel")
        assert api.get(f"/v1/gift-cards/{code}").json()["balance"] == 5000
        body = evaluate(api, cart(gift_cards=[{"code": code, "amount": 9000}]))
        assert body["total"] == 500  # the card paid everything but 500 of 5500
        api.post(f"/v1/checkout/{body['session_id']}/confirm", json={"order_id": "o-1"})
        assert api.get(f"/v1/gift-cards/{code}").json()["balance"] == 0
        api.post(
            "/v1/orders",
            json=order_body(
                "o-1", shipping=0, lines=[{"product_id": "p1", "quantity": 1, "unit_price": 5500}]
            ),
        )
        r = api.post("/v1/orders/o-1/refunds", json={"id": "r1", "amount": 2750})
        assert r.status_code == 201, r.text
        assert api.get(f"/v1/gift-cards/{code}").json()["balance"] == 2500
        api.post("/v1/orders/o-1/refunds", json={"id": "r2"})
        assert api.get(f"/v1/gift-cards/{code}").json()["balance"] == 5000

    def test_refused_gift_cards(self, api: TestClient) -> None:
        code = api.post("/v1/gift-cards", json={"amount": 100, "currency": "USD"}).json()["code"]
        fake = codes.generate("G")
        body = evaluate(
            api, cart(gift_cards=[{"code": code, "amount": 50}, {"code": fake, "amount": 50}])
        )
        assert reasons(body) == {code: "currency_mismatch", fake: "unknown"}
        assert api.get(f"/v1/gift-cards/{fake}").status_code == 404

    def test_gift_card_line_creates_card_and_email(self, api: TestClient, session: Session) -> None:
        from fidele.outbox.models import OutboxMessage

        api.put("/v1/customers/c1", json={"email": "ana@example.com"})
        lines = [{"product_id": "gc50", "quantity": 2, "unit_price": 5000, "type": "gift_card"}]
        assert api.post("/v1/orders", json=order_body(lines=lines)).status_code == 201
        mails = session.query(OutboxMessage).filter_by(topic="gift_card.issued").all()
        assert len(mails) == 2
        got = api.get(f"/v1/gift-cards/{mails[0].payload['code']}").json()
        assert (got["balance"], mails[0].payload["to"]) == (5000, "ana@example.com")

    def test_unconfirmed_session_expires_and_releases(
        self, api: TestClient, session: Session, clock: FrozenClock
    ) -> None:
        code = api.post("/v1/gift-cards", json={"amount": 1000, "currency": "EUR"}).json()["code"]
        sid = evaluate(api, cart(gift_cards=[{"code": code, "amount": 1000}]))["session_id"]
        clock.advance(minutes=31)
        assert tasks.expire_sessions(session, clock.now()) == 1
        session.commit()
        assert api.get(f"/v1/gift-cards/{code}").json()["balance"] == 1000
        r = api.post(f"/v1/checkout/{sid}/confirm", json={"order_id": "o-1"})
        assert r.status_code == 409
        assert ledger.verify(session).ok


class TestWalletAndNextOrder:
    def test_cashback_credited_after_window_then_spent(
        self, api: TestClient, session: Session, clock: FrozenClock
    ) -> None:
        api.put("/v1/promotions/settings", json={"cashback_bp": 500, "return_window_days": 14})
        api.post("/v1/orders", json=order_body("o-1"))  # 3000
        api.post("/v1/orders/o-1/status", json={"status": "delivered"})
        clock.advance(days=13)
        assert tasks.release_rewards(session, clock.now()) == 0
        clock.advance(days=2)
        assert tasks.release_rewards(session, clock.now()) == 1
        session.commit()
        assert api.get("/v1/wallets/c1").json()["balance"] == 150
        body = evaluate(api, cart(wallet_amount=1000))
        assert by_source(body, "wallet")[0]["amount"] == 150
        api.post("/v1/orders/o-1/refunds", json={"id": "r1"})  # clawback: nothing left
        assert api.get("/v1/wallets/c1").json()["balance"] == 0

    def test_next_order_coupon_value_depends_on_delay(
        self, api: TestClient, clock: FrozenClock
    ) -> None:
        api.put(
            "/v1/promotions/settings",
            json={"next_order": {"enabled": True}, "shop_name": "Chez Ana"},
        )
        api.post("/v1/orders", json=order_body("o-1"))
        api.post("/v1/orders/o-1/status", json={"status": "delivered"})
        made = api.get("/v1/coupons/next-order/o-1").json()
        assert made["code"] in made["text"]
        assert "Chez Ana" in made["text"]
        pcts = []
        for days in (10, 10, 20):
            clock.advance(days=days)
            found = evaluate(api, cart(made["code"]))
            pcts.append([d["amount"] for d in by_source(found, "coupon")])
        assert pcts == [[750], [500], [250]]
        clock.advance(days=30)
        assert reasons(evaluate(api, cart(made["code"]))) == {made["code"]: "expired"}
        assert reasons(evaluate(api, cart(made["code"], customer="c9"))) == {
            made["code"]: "expired"
        }


class TestReferral:
    def test_welcome_offer_and_reward_after_window(
        self, api: TestClient, session: Session, clock: FrozenClock
    ) -> None:
        api.put("/v1/customers/c1", json={"email": "ana@example.com"})
        ref = api.get("/v1/referrals/customers/c1").json()
        assert ref["link"].endswith(ref["code"])
        assert reasons(evaluate(api, cart(ref["code"]))) == {ref["code"]: "self_referral"}
        body = evaluate(api, cart(ref["code"], customer="c2"))
        assert by_source(body, "referral")[0]["amount"] == 1000
        api.post(
            "/v1/orders", json=order_body("o-2", "c2", attributes={"referral_code": ref["code"]})
        )
        api.post("/v1/orders/o-2/status", json={"status": "delivered"})
        clock.advance(days=15)
        assert tasks.release_rewards(session, clock.now()) == 1
        session.commit()
        assert api.get("/v1/wallets/c1").json()["balance"] == 1000
        stats = api.get("/v1/referrals/customers/c1").json()["stats"]
        assert stats == {"rewarded": 1, "refused": 0, "invitations": 0}

    def test_fraud_refusals_are_recorded(self, api: TestClient) -> None:
        api.post(
            "/v1/orders", json=order_body("o-1", "c1", attributes={"device_fingerprint": "dev-1"})
        )
        code = api.get("/v1/referrals/customers/c1").json()["code"]
        api.post(
            "/v1/orders",
            json=order_body("o-2", "c2", codes=[code], attributes={"device_fingerprint": "dev-1"}),
        )
        api.post("/v1/orders", json=order_body("o-3", "c3", codes=[code]))
        api.post("/v1/orders", json=order_body("o-4", "c3", codes=[code]))
        r = api.post(
            "/v1/referrals/invitations", json={"customer_id": "c1", "email": "Friend@Example.com"}
        )
        assert r.status_code == 201
        assert api.get("/v1/referrals/stats").json() == {
            "pending": 1,
            "refused": 2,
            "invitations": 1,
        }


class TestRateLimit:
    def test_failed_lookups_answer_429_with_retry_after(self, api: TestClient) -> None:
        for i in range(5):
            evaluate(api, cart(f"BAD{i}A", f"BAD{i}B"))
        r = api.post("/v1/checkout/evaluate", json=cart())
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) == 60


class TestHolds:
    def test_a_newer_cart_of_the_same_shopper_takes_its_own_hold(self, api: TestClient) -> None:
        coupon(api, code="ONCE", usage_limit=1)
        old = evaluate(api, cart("ONCE"))
        new = evaluate(api, cart("ONCE"))  # the same shopper's cart changed: evaluated again
        assert by_source(new, "coupon")[0]["amount"] == 500
        assert reasons(evaluate(api, cart("ONCE", customer="c2"))) == {
            "ONCE": "held_by_another_checkout"
        }
        r = api.post(f"/v1/checkout/{old['session_id']}/confirm", json={"order_id": "o-old"})
        assert r.status_code == 409 and r.json()["reason"] == "usage_limit_reached"
        r = api.post(f"/v1/checkout/{new['session_id']}/confirm", json={"order_id": "o-new"})
        assert r.status_code == 200, r.text

    def test_per_customer_holds(self, api: TestClient) -> None:
        coupon(api, code="WELCOME", per_customer_limit=1)
        for who in ("c1", "c2"):
            api.put(f"/v1/customers/{who}", json={"email": f"{who}@example.com"})
        a = evaluate(api, cart("WELCOME"))
        b = evaluate(api, cart("WELCOME", customer="c2"))  # no global limit: both hold
        assert by_source(a, "coupon") and by_source(b, "coupon")
        again = evaluate(api, cart("WELCOME"))  # c1 again: takes over its own hold
        assert by_source(again, "coupon")
        r = api.post(f"/v1/checkout/{again['session_id']}/confirm", json={"order_id": "o-1"})
        assert r.status_code == 200, r.text
        assert reasons(evaluate(api, cart("WELCOME"))) == {"WELCOME": "customer_limit_reached"}
        listed = api.get("/v1/coupons").json()["items"]
        assert [(x["used_count"], x["held_count"]) for x in listed] == [(1, 1)]  # c2's cart
