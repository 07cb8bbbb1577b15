"""``/promotions`` through the test client on SQLite and PostgreSQL: coupons, batches (and
their CSV), automatic promotions, gift cards, next-order schedule and referral, each made by
the promotions services with the API's validation, shown as those services count them."""

from __future__ import annotations

import csv
import io
import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers.models import Customer
from fidele.dashboard.i18n import formats
from fidele.dashboard.models import DashboardActivity
from fidele.demo.service import DemoShop
from fidele.kit.clock import FrozenClock
from fidele.promotions import coupons, referrals
from fidele.promotions.models import Coupon, GiftCard
from fidele.tenancy.service import Caller
from tests.dashboard.conftest import HTML, login, make_user, post
from tests.dashboard.test_pages import text_of
from tests.fixtures.factories import Tenant

EN = formats("en", None, "EUR", None)


def caller(shop: DemoShop) -> Caller:
    return Caller(shop.merchant_id, shop.programme_id, None, frozenset({"read"}))


def test_the_page_shows_the_services_figures(
    admin: TestClient, session: Session, shop: DemoShop
) -> None:
    customer = session.execute(
        select(Customer.id).where(Customer.merchant_id == shop.merchant_id).limit(1)
    ).scalar_one()
    given = {"kind": "percent_off", "value": "10", "days": "30"}
    post(admin, f"/customers/{customer}/coupons", f"/customers/{customer}", given)
    page = admin.get("/promotions", headers=HTML)
    assert page.status_code == 200
    body = page.text
    stats = referrals.programme_stats(session, caller(shop))
    for key in ("invitations", "pending", "rewarded", "refused"):
        assert text_of(body, f"referral-{key}") == EN.number(stats.get(key, 0))
    personal = session.execute(
        select(Coupon.origin, func.count(), func.sum(Coupon.used_count))
        .where(Coupon.merchant_id == shop.merchant_id, Coupon.customer_id.is_not(None))
        .group_by(Coupon.origin)
    ).all()
    assert personal  # the coupon given on the customer's page at least
    for origin, issued, used in personal:
        row = text_of(body, f"origin-{origin}")
        assert EN.number(issued) in row and EN.number(used) in row
    config = coupons.config(session, shop.merchant_id)
    steps = text_of(body, "schedule-steps")
    for days, bp in config.next_order.schedule:
        assert f"{EN.percent(bp / 10000, 0)} off if used within {days} days" in steps


def test_a_coupon_is_created_shown_and_disabled(
    admin: TestClient, session: Session, shop: DemoShop
) -> None:
    data = {"code": "SUMMER10", "kind": "percent_off", "value": "10", "days": "30"}
    assert post(admin, "/promotions/coupons", "/promotions", data).status_code == 303  # type: ignore[attr-defined]
    coupon = session.execute(select(Coupon).where(Coupon.display_code == "SUMMER10")).scalar_one()
    assert (coupon.kind, coupon.value, coupon.merchant_id) == (
        "percent_off",
        1000,
        shop.merchant_id,
    )
    body = admin.get("/promotions").text
    assert "Coupon created: SUMMER10" in body
    row = text_of(body, f"coupon-{coupon.id}")
    assert "SUMMER10" in row and "10%" in row and "active" in row
    # the same code twice is refused by the service, the reason shown
    post(admin, "/promotions/coupons", "/promotions", data)
    assert "already exists" in admin.get("/promotions").text
    # the API's validation: a percentage above 100 is refused
    post(admin, "/promotions/coupons", "/promotions", {**data, "code": "", "value": "150"})
    assert "percent_off value is in basis points" in admin.get("/promotions").text
    disabled = post(admin, f"/promotions/coupons/{coupon.id}/disable", "/promotions", {})
    assert disabled.status_code == 303  # type: ignore[attr-defined]
    session.expire_all()
    assert coupon.status == "disabled"
    log = admin.get("/activity").text
    assert "coupon.created" in log and "coupon.disabled" in log


def test_a_batch_is_generated_and_downloaded_as_csv(
    admin: TestClient, session: Session, shop: DemoShop
) -> None:
    data = {"count": "25", "kind": "amount_off", "value": "5", "name": "Flyer", "days": "60"}
    done = post(admin, "/promotions/batches", "/promotions", data)
    assert done.status_code == 303  # type: ignore[attr-defined]
    batch = re.search(r"batch=([0-9a-f]+)", done.headers["location"]).group(1)  # type: ignore[attr-defined, union-attr]
    made = session.execute(select(Coupon).where(Coupon.batch == batch)).scalars().all()
    assert len(made) == 25 and all(c.value == 500 and c.usage_limit == 1 for c in made)
    page = admin.get(done.headers["location"]).text  # type: ignore[attr-defined]
    assert "25 codes generated." in page
    assert "25" in text_of(page, f"batch-{batch}")
    answer = admin.get(f"/promotions/batches/{batch}.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert sorted(r["code"] for r in rows) == sorted(c.display_code for c in made)
    assert {r["value"] for r in rows} == {"500"}
    assert "coupon.batch_created" in admin.get("/activity").text
    too_many = post(admin, "/promotions/batches", "/promotions", {**data, "count": "20000"})
    assert too_many.status_code == 303  # type: ignore[attr-defined]
    assert "less than or equal to 10000" in admin.get("/promotions").text


def test_another_merchant_s_batch_cannot_be_downloaded(
    client: TestClient,
    factory: sessionmaker[Session],
    admin: TestClient,
    shop: DemoShop,
    tenant: Tenant,
    clock: FrozenClock,
) -> None:
    done = post(
        admin, "/promotions/batches", "/promotions", {"count": "2", "kind": "free_shipping"}
    )
    batch = re.search(r"batch=([0-9a-f]+)", done.headers["location"]).group(1)  # type: ignore[attr-defined, union-attr]
    login(client, make_user(factory, tenant.merchant_id, "admin", clock.now(), "b@other.test"))
    assert client.get(f"/promotions/batches/{batch}.csv").status_code == 404


def test_an_automatic_promotion_is_created(
    admin: TestClient, session: Session, shop: DemoShop
) -> None:
    data = {"kind": "percent_off", "value": "15", "min_subtotal": "50", "name": "Fifteen"}
    assert post(admin, "/promotions/automatic", "/promotions", data).status_code == 303  # type: ignore[attr-defined]
    made = session.execute(select(Coupon).where(Coupon.name == "Fifteen")).scalar_one()
    assert made.automatic and made.value == 1500 and made.conditions == {"min_subtotal": 5000}
    body = text_of(admin.get("/promotions").text, "automatic")
    assert "Fifteen" in body and "15%" in body and "€50.00" in body


def test_a_gift_card_is_issued_shown_once_and_looked_up(
    admin: TestClient, session: Session, shop: DemoShop
) -> None:
    page = post(admin, "/promotions/gift-cards", "/promotions", {"amount": "40"})
    assert page.status_code == 200  # type: ignore[attr-defined]
    code = text_of(page.text, "new-card-code")  # type: ignore[attr-defined]
    card = (
        session.execute(
            select(GiftCard)
            .where(GiftCard.merchant_id == shop.merchant_id)
            .order_by(GiftCard.id.desc())
        )
        .scalars()
        .first()
    )
    assert card is not None and card.initial_amount == 4000 and code.endswith(card.last4)
    assert code not in admin.get("/promotions").text  # shown once
    found = post(admin, "/promotions/gift-cards/lookup", "/promotions", {"code": code})
    assert text_of(found.text, "found-balance") == "€40.00"  # type: ignore[attr-defined]
    missing = post(admin, "/promotions/gift-cards/lookup", "/promotions", {"code": "G-NOPE"})
    assert missing.status_code == 303  # type: ignore[attr-defined]
    assert "gift card not found" in admin.get("/promotions").text
    assert "gift_card.issued" in admin.get("/activity").text


def test_next_order_and_referral_settings_are_saved_as_the_api_saves_them(
    admin: TestClient, session: Session, shop: DemoShop
) -> None:
    data = {
        "next_enabled": "1",
        "schedule": "10:20\n45:5",
        "min_subtotal": "30",
        "referral_enabled": "1",
        "welcome_kind": "percent_off",
        "welcome_value": "1000",
        "reward_kind": "credit",
        "reward_value": "700",
        "monthly_cap": "4",
    }
    assert post(admin, "/promotions/settings", "/promotions", data).status_code == 303  # type: ignore[attr-defined]
    config = coupons.config(session, shop.merchant_id)
    assert config.next_order.enabled and [list(s) for s in config.next_order.schedule] == [
        [10, 2000],
        [45, 500],
    ]
    assert config.next_order.min_subtotal == 3000
    assert (config.referral.welcome_kind, config.referral.reward_value) == ("percent_off", 700)
    post(admin, "/promotions/settings", "/promotions", {**data, "schedule": "ten:20"})
    assert "write days:percent" in admin.get("/promotions").text
    post(admin, "/promotions/settings", "/promotions", {**data, "monthly_cap": "-1"})
    assert "greater than or equal to 0" in admin.get("/promotions").text
    assert "promotions.settings_changed" in admin.get("/activity").text


def test_read_only_users_see_but_cannot_change(
    reader: TestClient, session: Session, shop: DemoShop
) -> None:
    page = reader.get("/promotions").text
    for form in ("coupon-form", "batch-form", "promotion-form", "gift-card-form"):
        assert f'id="{form}"' not in page
    assert 'id="lookup-form"' in page  # a lookup is a read
    before = session.execute(select(func.count()).select_from(Coupon)).scalar()
    for path, data in (
        ("/promotions/coupons", {"kind": "free_shipping"}),
        ("/promotions/batches", {"count": "3", "kind": "free_shipping"}),
        ("/promotions/automatic", {"kind": "free_shipping"}),
        ("/promotions/gift-cards", {"amount": "10"}),
        ("/promotions/settings", {"schedule": "1:1"}),
    ):
        assert post(reader, path, "/promotions", data).status_code == 403, path  # type: ignore[attr-defined]
    assert session.execute(select(func.count()).select_from(Coupon)).scalar() == before
    assert session.execute(select(func.count()).select_from(DashboardActivity)).scalar() == 0


def test_a_marketer_runs_promotions_but_not_their_settings(marketer: TestClient) -> None:
    made = post(marketer, "/promotions/coupons", "/promotions", {"kind": "free_shipping"})
    assert made.status_code == 303  # type: ignore[attr-defined]
    assert post(marketer, "/promotions/settings", "/promotions", {}).status_code == 403  # type: ignore[attr-defined]


def test_an_empty_shop_says_what_to_do_first(
    client: TestClient, factory: sessionmaker[Session], tenant: Tenant, clock: FrozenClock
) -> None:
    login(client, make_user(factory, tenant.merchant_id, "admin", clock.now(), "new@shop.test"))
    page = client.get("/promotions").text
    assert "No promotions yet: create a first coupon code" in page
