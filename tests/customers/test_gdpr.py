"""GDPR: the export holds every domain's section; after an erasure no table holds anything of
the person but anonymised ids and amounts (every table dumped, on both databases)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fidele.analytics import service as analytics
from fidele.db.base import Base, import_all_models
from fidele.kit.clock import FrozenClock
from fidele.outbox import service as outbox
from fidele.outbox.models import OutboxMessage
from tests.fixtures.factories import order_body

CUSTOMER = "zq-customer-7731"
EMAIL = "Zorblax.Quintessa+shop@Example.net"
FRIEND = "friend.of.zorblax@example.org"
PHONE = "+33698765432"
STREET = "17 rue des Zinnias"
FINGERPRINT = "fp-zq-device-98765"
PAYMENT = "pm-zq-card-4242"
GIFT_MESSAGE = "Pour Zorblax avec amour"
REFUND_REASON = "Zorblax a change d'avis"
# Everything of the person that must be gone (compared case-insensitively).
DISTINCTIVE = [
    CUSTOMER,
    "zorblax",
    "quintessa",
    FRIEND,
    PHONE,
    STREET,
    "Zinniaville",
    FINGERPRINT,
    PAYMENT,
    "1987-03-14",
]


def _ok(r: Any, *codes: int) -> dict[str, Any]:
    assert r.status_code in (codes or (200, 201)), r.text
    return r.json() if r.content else {}


def _activity(api: TestClient, clock: FrozenClock) -> None:
    """The person shows up in every domain."""
    _ok(api.put("/v1/customers/referrer-1", json={"first_name": "Rita"}))
    code = _ok(api.get("/v1/referrals/customers/referrer-1"))["code"]
    _ok(
        api.put(
            f"/v1/customers/{CUSTOMER}",
            json={
                "email": EMAIL,
                "first_name": "Zorblax",
                "last_name": "Quintessa",
                "birthday": "1987-03-14",
                "locale": "fr-FR",
                "country": "FR",
                "timezone": "Europe/Paris",
                "consent": {"email_marketing": True, "source": "checkout"},
                "attributes": {"phone": PHONE, "nickname": "zorblax"},
            },
        )
    )
    address = {"line1": STREET, "city": "Zinniaville", "postcode": "75000", "phone": PHONE}
    gift_line = {
        "product_id": "gift",
        "name": "Gift card",
        "quantity": 1,
        "unit_price": 2500,
        "type": "gift_card",
    }
    shirt = {"product_id": "p1", "name": "Shirt", "quantity": 2, "unit_price": 1500}
    order = order_body(
        "zq-order-1",
        CUSTOMER,
        placed_at="2026-05-20T10:00:00Z",
        lines=[shirt, gift_line],
        email=EMAIL,
        attributes={
            "shipping_address": address,
            "billing_address": address,
            "device_fingerprint": FINGERPRINT,
            "payment_fingerprint": PAYMENT,
            "referral_code": code,
            "gift_message": GIFT_MESSAGE,
        },
    )
    _ok(api.post("/v1/orders", json=order))
    _ok(
        api.post(
            "/v1/orders/zq-order-1/refunds",
            json={"id": "r-1", "amount": 500, "reason": REFUND_REASON},
        )
    )
    # Loyalty: points, a reward redeemed into a voucher.
    _ok(
        api.post(
            f"/v1/customers/{CUSTOMER}/points/adjustments",
            json={"points": 500, "reason": "welcome"},
            headers={"Idempotency-Key": "zq-adj-1"},
        )
    )
    reward = _ok(
        api.post(
            "/v1/rewards",
            json={"name": "5 EUR", "points_cost": 100, "kind": "amount_off", "value": 500},
        )
    )
    _ok(
        api.post(
            f"/v1/customers/{CUSTOMER}/redemptions",
            json={"reward_id": reward["id"]},
            headers={"Idempotency-Key": "zq-redeem-1"},
        )
    )
    # Promotions: a gift card sent to them, an invitation they sent, a checkout session.
    _ok(
        api.post(
            "/v1/gift-cards",
            json={
                "amount": 1000,
                "currency": "EUR",
                "recipient_email": EMAIL,
                "message": GIFT_MESSAGE,
            },
        )
    )
    _ok(api.post("/v1/referrals/invitations", json={"customer_id": CUSTOMER, "email": FRIEND}))
    _ok(api.get(f"/v1/referrals/customers/{CUSTOMER}"))
    cart = {
        "customer_id": CUSTOMER,
        "currency": "EUR",
        "lines": [{"product_id": "p1", "name": "Shirt", "quantity": 1, "unit_price": 1500}],
    }
    _ok(api.post("/v1/checkout/evaluate", json=cart))
    # Events: a custom event carrying personal properties.
    _ok(
        api.post(
            "/v1/events",
            headers={"Idempotency-Key": "zq-ev-1"},
            json={
                "type": "review_posted",
                "customer_id": CUSTOMER,
                "occurred_at": "2026-05-21T10:00:00Z",
                "properties": {"stars": 5, "email": EMAIL, "phone": PHONE},
            },
        )
    )


def _dump(session: Session) -> str:
    """Every row of every table, as text."""
    import_all_models()
    session.expire_all()
    chunks = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)).all():
            chunks.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(chunks).lower()


def _found(dump: str) -> dict[str, list[str]]:
    return {
        s: [line[:200] for line in dump.splitlines() if s.lower() in line][:3]
        for s in DISTINCTIVE
        if s.lower() in dump
    }


def test_erase_leaves_nothing_of_the_person_in_any_table(
    api: TestClient, session: Session, factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    _activity(api, clock)
    analytics.refresh_all(session, clock.now())
    session.commit()
    clock.advance(days=1)
    # One message leaves (redacted as it is sent), the others wait in the outbox.
    first = (
        session.execute(
            select(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .order_by(OutboxMessage.id)
        )
        .scalars()
        .first()
    )
    assert first is not None
    outbox.record(factory, [(first, None)], clock.now())
    session.expire_all()
    before = _dump(session)
    assert all(s.lower() in before for s in (CUSTOMER, "zorblax", FINGERPRINT, STREET, FRIEND))

    _ok(api.delete(f"/v1/customers/{CUSTOMER}"), 204)

    after = _dump(session)
    assert _found(after) == {}
    # Amounts and anonymised ids stay: the order, its refund, the points and the card.
    assert "zq-order-1" in after and "erased-" in after
    assert api.get("/v1/orders/zq-order-1").json()["total"] == 5500


def test_export_has_every_section(api: TestClient, session: Session, clock: FrozenClock) -> None:
    _activity(api, clock)
    analytics.refresh_all(session, clock.now())
    session.commit()
    data = _ok(api.get(f"/v1/customers/{CUSTOMER}/export"))
    expected = {
        "customer",
        "orders",
        "loyalty",
        "vouchers",
        "coupons",
        "gift_cards",
        "referrals",
        "insights",
        "events",
    }
    assert expected <= set(data), sorted(data)
    assert data["customer"]["email"] == EMAIL
    assert [o["id"] for o in data["orders"]] == ["zq-order-1"]
    assert [line["points"] for line in data["loyalty"]["statement"]][:1] and data["loyalty"][
        "available"
    ] > 0
    assert len(data["vouchers"]) == 1 and data["vouchers"][0]["code"]
    cards = data["gift_cards"]
    assert len(cards) == 2 and all("code" not in c for c in cards)
    assert [c["received"] for c in cards].count(True) == 2  # both were addressed to them
    assert data["referrals"]["code"] and data["referrals"]["invitations_sent"] == 1
    assert [r["role"] for r in data["referrals"]["referrals"]] == ["referee"]
    assert data["insights"] is not None and data["insights"]["customer_id"] == CUSTOMER
    assert {"customer.upserted", "order.placed", "review_posted"} <= {
        e["type"] for e in data["events"]
    }
