from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidele.events.models import Event
from fidele.ingest.connectors import signing
from fidele.kit.clock import FrozenClock
from fidele.tenancy.repository import MerchantRepository
from tests.fixtures.factories import SECRET, Tenant
from tests.ingest.conftest import load, signed


def shopify(
    client: TestClient,
    tenant: Tenant,
    topic: str,
    payload: dict[str, Any],
    secret: str | None = None,
    sig: str | None = None,
) -> Any:
    body, good = signed(secret or tenant.webhook_secret, payload)
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": "w-1",
        "X-Shopify-Hmac-Sha256": sig if sig is not None else good,
        "Content-Type": "application/json",
    }
    return client.post(f"/v1/webhooks/shopify/{tenant.merchant_id}", content=body, headers=headers)


def woo(
    client: TestClient, tenant: Tenant, topic: str, payload: dict[str, Any], sig: str | None = None
) -> Any:
    body, good = signed(tenant.webhook_secret, payload)
    headers = {
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Delivery-ID": "d-1",
        "X-WC-Webhook-Signature": sig if sig is not None else good,
        "Content-Type": "application/json",
    }
    return client.post(
        f"/v1/webhooks/woocommerce/{tenant.merchant_id}", content=body, headers=headers
    )


def event_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Event)) or 0


class TestSignatures:
    @pytest.mark.parametrize(
        ("platform", "topic", "name"),
        [
            ("shopify", "orders/create", "shopify_order_create"),
            ("shopify", "customers/create", "shopify_customer_create"),
            ("woocommerce", "order.created", "woocommerce_order_created"),
            ("woocommerce", "customer.created", "woocommerce_customer_created"),
        ],
    )
    @pytest.mark.parametrize("bad", ["", "AAAA", "tampered"])
    def test_bad_signature_is_401_and_stores_nothing(
        self,
        client: TestClient,
        tenant: Tenant,
        session: Session,
        platform: str,
        topic: str,
        name: str,
        bad: str,
    ) -> None:
        before = event_count(session)
        payload = load(name)
        if bad == "tampered":  # signed, then changed in transit
            _, sig = signed(tenant.webhook_secret, payload)
            payload["id"] = 1
        else:
            sig = bad
        send = shopify if platform == "shopify" else woo
        r = send(client, tenant, topic, payload, sig=sig)
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "unauthorized"
        assert event_count(session) == before

    def test_missing_header_is_401(self, client: TestClient, tenant: Tenant) -> None:
        r = client.post(
            f"/v1/webhooks/shopify/{tenant.merchant_id}",
            json=load("shopify_order_create"),
            headers={"X-Shopify-Topic": "orders/create"},
        )
        assert r.status_code == 401

    def test_unknown_merchant_answers_like_a_bad_signature(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        body, sig = signed(tenant.webhook_secret, load("shopify_order_create"))
        r = client.post(
            "/v1/webhooks/shopify/999999",
            content=body,
            headers={"X-Shopify-Hmac-Sha256": sig, "X-Shopify-Topic": "orders/create"},
        )
        assert r.status_code == 401

    def test_another_merchants_secret_is_refused(
        self, client: TestClient, tenant: Tenant, session: Session, clock: FrozenClock
    ) -> None:
        from tests.fixtures.factories import make_tenant

        other = make_tenant(session, clock.now(), name="Shop B")
        session.commit()
        r = shopify(
            client,
            tenant,
            "orders/create",
            load("shopify_order_create"),
            secret=other.webhook_secret,
        )
        assert r.status_code == 401

    def test_platform_secret_is_accepted_and_stored_encrypted(
        self, client: TestClient, tenant: Tenant, session: Session, clock: FrozenClock, api: Any
    ) -> None:
        merchant = MerchantRepository(session).get(tenant.merchant_id)
        assert merchant is not None
        signing.set_platform_secret(
            session, merchant, "shopify", "shpss_app_secret", server_secret=SECRET, now=clock.now()
        )
        session.commit()
        from fidele.events.repository import ConnectorSecretRepository

        row = ConnectorSecretRepository(session).find(tenant.merchant_id, "shopify")
        assert row is not None
        assert "shpss_app_secret" not in row.encrypted
        r = shopify(
            client, tenant, "orders/create", load("shopify_order_create"), secret="shpss_app_secret"
        )
        assert r.status_code == 200, r.text
        # the platform secret is Shopify's only: WooCommerce still needs the merchant secret
        r = woo(
            client,
            tenant,
            "order.created",
            load("woocommerce_order_created"),
            sig=signing.signature("shpss_app_secret", b"x"),
        )
        assert r.status_code == 401

    def test_woocommerce_ping_answers_200(self, client: TestClient, tenant: Tenant) -> None:
        r = client.post(
            f"/v1/webhooks/woocommerce/{tenant.merchant_id}",
            content=b"webhook_id=7",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200
        assert r.json()["status"] == "ping"


class TestShopify:
    def test_order_create_maps_money_exactly(
        self, client: TestClient, tenant: Tenant, api: TestClient
    ) -> None:
        r = shopify(client, tenant, "orders/create", load("shopify_order_create"))
        assert r.status_code == 200, r.text
        assert r.json() == {
            "status": "processed",
            "topic": "orders/create",
            "object_id": "820982911946154508",
            "created": True,
        }
        order = api.get("/v1/orders/820982911946154508").json()
        assert order["customer_id"] == "115310627314723954"
        assert order["currency"] == "USD"
        assert order["total"] == 40300
        assert [ln["unit_price"] for ln in order["lines"]] == [19900, 19900]
        assert (order["discounts"], order["shipping"], order["tax"]) == (2000, 1000, 1500)
        assert order["placed_at"] == "2026-01-05T15:00:00Z"

    def test_order_paid_after_create_is_idempotent(
        self, client: TestClient, tenant: Tenant, session: Session
    ) -> None:
        created = {**load("shopify_order_create"), "financial_status": "pending"}
        assert shopify(client, tenant, "orders/create", created).json()["created"] is True
        before = event_count(session)
        paid = {**created, "financial_status": "paid"}
        for _ in range(2):  # the payment is recorded once (order.paid), whatever the retries
            r = shopify(client, tenant, "orders/paid", paid)
            assert r.status_code == 200
            assert r.json()["created"] is False
        assert shopify(client, tenant, "orders/create", created).json()["created"] is False
        assert event_count(session) == before + 1

    def test_order_paid_creates_an_absent_order(self, client: TestClient, tenant: Tenant) -> None:
        r = shopify(client, tenant, "orders/paid", load("shopify_order_create"))
        assert r.json()["created"] is True

    def test_taxes_included_stores_the_tax_inside_the_prices(
        self, client: TestClient, tenant: Tenant, api: TestClient
    ) -> None:
        p = load("shopify_order_create")
        p.update(taxes_included=True, total_price="388.00", total_tax="64.67")
        assert shopify(client, tenant, "orders/create", p).status_code == 200
        order = api.get(f"/v1/orders/{p['id']}").json()
        assert (order["tax"], order["prices_include_tax"], order["adjustment"]) == (6467, True, 0)
        assert order["total"] == 38800

    def test_refund_uses_transactions(
        self, client: TestClient, tenant: Tenant, api: TestClient
    ) -> None:
        paid = {**load("shopify_order_create"), "financial_status": "paid"}
        shopify(client, tenant, "orders/create", paid)
        refund = load("shopify_refund_create")
        r = shopify(client, tenant, "refunds/create", refund)
        assert r.status_code == 200, r.text
        assert r.json()["created"] is True
        assert shopify(client, tenant, "refunds/create", refund).json()["created"] is False
        order = api.get("/v1/orders/820982911946154508").json()
        assert order["refunded_total"] == 18900
        assert order["refunds"][0]["reason"] == "Things were damaged"

    def test_refund_without_money_books_nothing(
        self, client: TestClient, tenant: Tenant, api: TestClient
    ) -> None:
        """A restock with no refund transaction paid nothing back: no refund is invented
        from the line items."""
        paid = {**load("shopify_order_create"), "financial_status": "paid"}
        shopify(client, tenant, "orders/create", paid)
        refund = {**load("shopify_refund_create"), "transactions": []}
        r = shopify(client, tenant, "refunds/create", refund)
        assert (r.status_code, r.json()["status"]) == (200, "ignored")
        order = api.get("/v1/orders/820982911946154508").json()
        assert (order["refunded_total"], order["refunds"]) == (0, [])

    def test_refund_of_unknown_order_is_404(self, client: TestClient, tenant: Tenant) -> None:
        r = shopify(client, tenant, "refunds/create", load("shopify_refund_create"))
        assert r.status_code == 404

    def test_customer_create_with_consent(
        self, client: TestClient, tenant: Tenant, api: TestClient
    ) -> None:
        r = shopify(client, tenant, "customers/create", load("shopify_customer_create"))
        assert r.status_code == 200
        assert r.json()["created"] is True
        c = api.get("/v1/customers/706405506930370084").json()
        assert (c["email"], c["first_name"], c["country"]) == ("bob@biller.com", "Bob", "CA")
        assert c["consent"]["email_marketing"] is True
        assert c["consent"]["email_marketing_at"] == "2026-01-04T14:00:00Z"

    def test_unshaped_payload_is_422_and_stores_nothing(
        self, client: TestClient, tenant: Tenant, session: Session
    ) -> None:
        before = event_count(session)
        p = load("shopify_order_create")
        p["currency"] = "XXX"
        r = shopify(client, tenant, "orders/create", p)
        assert r.status_code == 422
        assert r.json()["error"] == "validation_error"
        r = shopify(client, tenant, "orders/create", {"id": 1})
        assert r.status_code == 422
        assert event_count(session) == before

    def test_other_topics_are_acknowledged(self, client: TestClient, tenant: Tenant) -> None:
        r = shopify(client, tenant, "products/create", {"id": 1})
        assert r.status_code == 200
        assert r.json()["status"] == "ignored"


class TestWooCommerce:
    def test_order_created(self, client: TestClient, tenant: Tenant, api: TestClient) -> None:
        r = woo(client, tenant, "order.created", load("woocommerce_order_created"))
        assert r.status_code == 200, r.text
        assert r.json()["created"] is True
        order = api.get("/v1/orders/727").json()
        assert order["customer_id"] == "26"
        assert order["total"] == 3635
        lines = [
            (ln["product_id"], ln["variant_id"], ln["quantity"], ln["unit_price"])
            for ln in order["lines"]
        ]
        assert lines == [("93", None, 2, 300), ("22", "23", 1, 2400)]
        assert (order["discounts"], order["shipping"], order["tax"]) == (500, 1000, 135)
        assert order["placed_at"] == "2026-01-05T09:00:00Z"
        customer = api.get("/v1/customers/26").json()
        assert customer["email"] == "marie.dupont@example.fr"

    def test_order_updated_refunds_and_completes(
        self, client: TestClient, tenant: Tenant, api: TestClient
    ) -> None:
        woo(client, tenant, "order.created", load("woocommerce_order_created"))
        updated = load("woocommerce_order_updated")
        for _ in range(2):  # a redelivery changes nothing
            r = woo(client, tenant, "order.updated", updated)
            assert r.status_code == 200, r.text
            assert r.json()["created"] is False
        order = api.get("/v1/orders/727").json()
        assert order["status"] == "delivered"
        assert order["delivered_at"] == "2026-01-09T09:00:00Z"
        assert order["refunded_total"] == 1000
        assert len(order["refunds"]) == 1

    def test_guest_order(self, client: TestClient, tenant: Tenant, api: TestClient) -> None:
        p = {**load("woocommerce_order_created"), "customer_id": 0}
        woo(client, tenant, "order.created", p)
        assert api.get("/v1/orders/727").json()["customer_id"] == "guest-727"

    def test_customer_created(self, client: TestClient, tenant: Tenant, api: TestClient) -> None:
        r = woo(client, tenant, "customer.created", load("woocommerce_customer_created"))
        assert r.status_code == 200, r.text
        c = api.get("/v1/customers/25").json()
        assert (c["email"], c["last_name"], c["country"]) == ("john.doe@example.com", "Doe", "US")

    def test_body_that_is_not_json_is_422(self, client: TestClient, tenant: Tenant) -> None:
        body = b"not json"
        r = client.post(
            f"/v1/webhooks/woocommerce/{tenant.merchant_id}",
            content=body,
            headers={
                "X-WC-Webhook-Signature": signing.signature(tenant.webhook_secret, body),
                "X-WC-Webhook-Topic": "order.created",
            },
        )
        assert r.status_code == 422


class TestFormatsAndCounts:
    def test_discrepancies_are_counted_per_connector(
        self, client: TestClient, tenant: Tenant, api: TestClient
    ) -> None:
        for name in ("shopify/duties_not_in_lines", "shopify/usd_tax_on_top_paid"):
            assert shopify(client, tenant, "orders/create", load(name)).status_code == 200
        assert (
            woo(
                client, tenant, "order.created", load("woocommerce/v3_coupon_and_variation")
            ).status_code
            == 200
        )
        assert api.get("/v1/connectors/discrepancies").json() == [
            {"source": "shopify", "orders": 1, "adjustment_abs_total": 250}
        ]

    def test_legacy_customer_webhook_is_read(
        self, client: TestClient, tenant: Tenant, api: TestClient
    ) -> None:
        legacy = {
            "customer": {
                "id": 77,
                "email": "irene.curie@example.fr",
                "first_name": "Irène",
                "last_name": "Curie",
                "billing_address": {},
            }
        }
        r = woo(client, tenant, "customer.created", legacy)
        assert (r.status_code, r.json()["object_id"]) == (200, "77")
        assert api.get("/v1/customers/77").json()["first_name"] == "Irène"

    def test_refund_after_cancellation_is_acknowledged(
        self, client: TestClient, tenant: Tenant, api: TestClient
    ) -> None:
        """The shop must not retry (and then disable the webhook) for a refund of an order
        fidele already cancelled."""
        order = load("shopify/variants_of_one_product")
        shopify(client, tenant, "orders/create", order)
        cancelled = {**order, "cancelled_at": "2026-03-14T10:00:00-05:00"}
        shopify(client, tenant, "orders/cancelled", cancelled)
        r = shopify(client, tenant, "refunds/create", load("shopify/refund_one_variant"))
        assert r.status_code == 200, r.text
        assert api.get("/v1/orders/5310000008").json()["status"] == "cancelled"
