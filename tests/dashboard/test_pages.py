"""The dashboard's pages through the test client, on SQLite and PostgreSQL: the figures shown
are the services' own, every change needs a role, a CSRF token and lands in the activity log."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.analytics import service as analytics
from fidele.customers.models import Customer
from fidele.dashboard import web
from fidele.dashboard.i18n import formats
from fidele.dashboard.models import DashboardActivity, DashboardUser
from fidele.dashboard.repository import CustomerSearch
from fidele.demo.service import DemoShop
from fidele.kit.clock import FrozenClock
from fidele.loyalty import reports
from fidele.loyalty import service as loyalty
from fidele.promotions.models import Coupon
from fidele.tenancy.service import Caller
from tests.dashboard.conftest import HTML, PASSWORD, csrf_of, login, make_user, post
from tests.fixtures.factories import Tenant


def text_of(page: str, element_id: str) -> str:
    """The visible text of the element with this id (its first closing tag of the same name)."""
    found = re.search(rf'<(\w+)[^>]*id="{re.escape(element_id)}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, element_id
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(2))).split())


def caller(shop: DemoShop) -> Caller:
    return Caller(shop.merchant_id, shop.programme_id, None, frozenset({"read"}))


def customer_of(session: Session, shop: DemoShop, n: int = 0) -> Customer:
    return session.execute(
        select(Customer)
        .where(Customer.merchant_id == shop.merchant_id)
        .order_by(Customer.id)
        .offset(n)
        .limit(1)
    ).scalar_one()


def test_pages_need_a_signed_in_user(client: TestClient) -> None:
    for path in ("/customers", "/analytics", "/settings", "/activity", "/customers/1"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login?next=")
    assert client.get("/", headers=HTML, follow_redirects=False).status_code == 303
    # API clients keep the JSON index at /
    assert client.get("/").json()["name"] == "fidele"
    assert client.get("/", headers={"Accept": "application/json"}).json()["name"] == "fidele"


def test_login_refuses_wrong_passwords_and_throttles(
    client: TestClient, factory: sessionmaker[Session], shop: DemoShop, clock: FrozenClock
) -> None:
    email = make_user(factory, shop.merchant_id, "admin", clock.now(), "boss@shop.test")
    token = csrf_of(client.get("/login").text)
    for _ in range(5):
        wrong = client.post(
            "/login", data={"email": email, "password": "nope nope nope", "csrf_token": token}
        )
        assert wrong.status_code == 401 and "Wrong email or password." in wrong.text
    blocked = client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert web.SESSION_COOKIE not in client.cookies
    # a login form without its CSRF token is refused even with the right password
    web.throttle.succeeded([f"email:{email}", "ip:testclient"])
    bare = client.post("/login", data={"email": email, "password": PASSWORD})
    assert bare.status_code == 403 and web.SESSION_COOKIE not in client.cookies


def test_the_session_cookie_is_httponly_and_samesite(
    client: TestClient, factory: sessionmaker[Session], shop: DemoShop, clock: FrozenClock
) -> None:
    email = make_user(factory, shop.merchant_id, "admin", clock.now(), "boss@shop.test")
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token, "next": "//evil.test"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/"  # no open redirect
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith(web.SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert client.get("/settings", follow_redirects=False).status_code == 200
    client.cookies.set(web.SESSION_COOKIE, client.cookies[web.SESSION_COOKIE][:-2] + "xx")
    assert client.get("/settings", follow_redirects=False).status_code == 303


def test_overview_shows_the_services_figures(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    page = admin.get("/", headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    report = analytics.report(session, caller(shop), "kpis", clock.now()).payload
    kpis = report["kpis"]
    liability = reports.liability(session, shop.programme_id, clock.now())
    fmt = formats("en", None, "EUR", None)
    body = page.text
    assert text_of(body, "kpi-customers").endswith(fmt.number(kpis["customers"]))
    assert fmt.percent(kpis["repeat_purchase_rate"]) in text_of(body, "kpi-repeat")
    assert fmt.percent(kpis["mean_retention_rate"]) in text_of(body, "kpi-retention")
    returning = kpis["revenue"] * kpis["returning_revenue_share"]
    assert fmt.money(returning) in text_of(body, "kpi-returning")
    clv = CustomerSearch(session).average_clv(shop.merchant_id)
    assert clv is not None and fmt.money(clv) in text_of(body, "kpi-clv")
    shown = text_of(body, "kpi-liability")
    assert fmt.number(liability["points"]) in shown and fmt.money(liability["value"]) in shown
    assert kpis["stage"] in text_of(body, "stage")
    months = [fmt.month(m["month"]) for m in report["monthly"][-12:]]
    trends = text_of(body, "trends")
    assert all(m in trends for m in months)
    assert body.count("<svg") >= 3
    assert not re.search(r"""(src|href)=["']https?://""", body)  # nothing from elsewhere


def test_overview_of_a_shop_without_orders_says_what_to_do(
    client: TestClient, factory: sessionmaker[Session], tenant: Tenant, clock: FrozenClock
) -> None:
    login(client, make_user(factory, tenant.merchant_id, "admin", clock.now(), "new@shop.test"))
    page = client.get("/", headers=HTML).text
    assert "No orders yet" in page and "fidele import orders" in page


def test_customer_search_by_name_email_and_id(
    admin: TestClient, session: Session, shop: DemoShop
) -> None:
    c = customer_of(session, shop, 3)
    for query in (c.last_name, c.email.upper(), c.external_id, str(c.id)):
        page = admin.get("/customers", params={"q": query}).text
        assert f'href="/customers/{c.id}"' in page, query
    assert "No customer matches." in admin.get("/customers", params={"q": "zzzqqq"}).text
    listing = admin.get("/customers").text
    assert listing.count('href="/customers/') == 50 and 'rel="next"' in listing  # 60 customers


def test_customer_360_shows_the_services_figures(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    c = customer_of(session, shop, 1)
    page = admin.get(f"/customers/{c.id}").text
    summary = loyalty.summary(session, c, clock.now())
    assert text_of(page, "available-points") == formats("en", None, "EUR", None).number(
        summary["available"]
    )
    assert c.email in text_of(page, "profile")
    insight = analytics.customer_insight(session, caller(shop), c.external_id)
    assert insight.segment in text_of(page, "insights")
    for section in ("orders", "statement", "coupons", "gift-cards", "referral", "actions"):
        assert f'id="{section}"' in page


def test_a_customer_of_another_merchant_is_not_found(
    client: TestClient,
    factory: sessionmaker[Session],
    session: Session,
    shop: DemoShop,
    tenant: Tenant,
    clock: FrozenClock,
) -> None:
    login(client, make_user(factory, tenant.merchant_id, "admin", clock.now(), "b@other.test"))
    theirs = customer_of(session, shop)
    assert client.get(f"/customers/{theirs.id}").status_code == 404
    assert f'href="/customers/{theirs.id}"' not in client.get("/customers").text
    form = post(client, f"/customers/{theirs.id}/points", "/settings", {"points": "5"})
    assert form.status_code == 303  # back to the page with the error
    assert session.execute(select(func.count()).select_from(DashboardActivity)).scalar() == 0


def test_adjusting_points_changes_the_balance_once_and_is_logged(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    c = customer_of(session, shop, 2)
    before = loyalty.available_points(session, c, clock.now())
    page = admin.get(f"/customers/{c.id}").text
    form_id = re.search(r'name="form_id" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
    data = {"csrf_token": csrf_of(page), "form_id": form_id, "points": "250", "reason": "goodwill"}
    for _ in range(2):  # a resubmitted form adjusts once
        done = admin.post(f"/customers/{c.id}/points", data=data, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == f"/customers/{c.id}"
    session.expire_all()
    assert loyalty.available_points(session, c, clock.now()) == before + 250
    shown = admin.get(f"/customers/{c.id}").text
    assert "Points adjusted." in shown
    assert text_of(shown, "available-points") == f"{before + 250:,}"
    log = admin.get("/activity").text
    assert "points.adjusted" in log and "goodwill" in log and f"/customers/{c.id}" in log
    assert "admin@shop.test" in log
    empty = post(admin, f"/customers/{c.id}/points", f"/customers/{c.id}", {"points": "x"})
    assert empty.status_code == 303
    assert "points must be a whole number" in admin.get(f"/customers/{c.id}").text
    # a refused form names its field, as the API's 422 does
    why = post(admin, f"/customers/{c.id}/points", f"/customers/{c.id}", {"points": "5"})
    assert why.status_code == 303
    assert "reason: say why the points change" in admin.get(f"/customers/{c.id}").text


def test_issuing_a_coupon_and_erasing_a_customer(
    marketer: TestClient, session: Session, shop: DemoShop
) -> None:
    c = customer_of(session, shop, 4)
    email, external_id = c.email, c.external_id
    page = f"/customers/{c.id}"
    issued = post(
        marketer, f"{page}/coupons", page, {"kind": "percent_off", "value": "15", "days": "30"}
    )
    assert issued.status_code == 303
    coupon = session.execute(select(Coupon).where(Coupon.customer_id == c.id)).scalars().all()
    assert [(x.kind, x.value, x.usage_limit) for x in coupon][-1] == ("percent_off", 1500, 1)
    assert coupon[-1].display_code in marketer.get(page).text
    refused = post(marketer, f"{page}/erase", page, {"confirm": "no"})
    assert refused.status_code == 303
    session.expire_all()
    assert session.get(Customer, c.id).erased_at is None  # type: ignore[union-attr]
    erased = post(marketer, f"{page}/erase", page, {"confirm": "ERASE"})
    assert erased.headers["location"] == "/customers"
    session.expire_all()
    assert session.get(Customer, c.id).erased_at is not None  # type: ignore[union-attr]
    # the activity log names the customer by internal id only: nothing personal left behind
    details = session.execute(select(DashboardActivity.detail)).scalars().all()
    assert {"customer": c.id} in details
    assert email and email not in str(details) and external_id not in str(details)


def test_a_marketer_cannot_adjust_points_as_with_the_api(
    marketer: TestClient, session: Session, shop: DemoShop
) -> None:
    c = customer_of(session, shop)
    page = marketer.get(f"/customers/{c.id}").text
    assert 'id="adjust-form"' not in page and 'id="coupon-form"' in page
    answer = post(
        marketer, f"/customers/{c.id}/points", "/settings", {"points": "5", "reason": "x"}
    )
    assert answer.status_code == 403


def test_a_read_only_user_cannot_change_anything(
    reader: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    c = customer_of(session, shop)
    before = loyalty.available_points(session, c, clock.now())
    page = reader.get(f"/customers/{c.id}").text
    assert (
        "Your role cannot make changes." in page
        and '<form method="post" action="/customers' not in page
    )
    attempts = {
        f"/customers/{c.id}/points": {"points": "5", "reason": "x"},
        f"/customers/{c.id}/coupons": {"kind": "percent_off", "value": "10", "days": "3"},
        f"/customers/{c.id}/erase": {"confirm": "ERASE"},
        "/settings/api-keys": {"scope_read": "1"},
        "/settings/users": {"email": "x@y.test", "password": PASSWORD, "role": "admin"},
        "/settings/users/1": {"role": "read-only"},
    }
    for path, data in attempts.items():
        answer = post(reader, path, "/settings", data)
        assert answer.status_code == 403, path
    session.expire_all()
    assert loyalty.available_points(session, c, clock.now()) == before
    assert session.get(Customer, c.id).erased_at is None  # type: ignore[union-attr]
    assert session.execute(select(func.count()).select_from(DashboardActivity)).scalar() == 0
    assert "API keys" not in reader.get("/settings").text
    # their own password they may change
    changed = post(
        reader, "/settings/password", "/settings", {"current": PASSWORD, "new": "x" * 12}
    )
    assert changed.status_code == 303


def test_a_post_without_csrf_token_is_refused(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    c = customer_of(session, shop)
    before = loyalty.available_points(session, c, clock.now())
    for data in (
        {"points": "99", "reason": "x"},
        {"points": "99", "reason": "x", "csrf_token": "forged"},
    ):
        answer = admin.post(f"/customers/{c.id}/points", data=data, follow_redirects=False)
        assert answer.status_code == 403
    assert admin.post("/logout", follow_redirects=False).status_code == 403
    session.expire_all()
    assert loyalty.available_points(session, c, clock.now()) == before


def test_api_keys_are_shown_once_and_revoked(
    admin: TestClient, client: TestClient, shop: DemoShop
) -> None:
    created = post(admin, "/settings/api-keys", "/settings", {"name": "shop", "scope_read": "1"})
    assert created.status_code == 200
    key = text_of(created.text, "new-key")
    assert key.startswith("fdl_")
    assert key not in admin.get("/settings").text  # shown once
    api = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/analytics/kpis", headers=api).status_code == 200
    assert client.post("/v1/rewards", headers=api, json={}).status_code in (403, 422)
    prefix = key.split("_")[1]
    revoked = post(admin, f"/settings/api-keys/{prefix}/revoke", "/settings", {})
    assert revoked.status_code == 303
    assert client.get("/v1/analytics/kpis", headers=api).status_code == 401
    assert "api_key.revoked" in admin.get("/activity").text


def test_users_and_roles(admin: TestClient, app: object, session: Session, shop: DemoShop) -> None:
    added = post(
        admin, "/settings/users", "/settings",
        {"email": "Helper@Shop.test", "password": PASSWORD, "role": "read-only"},
    )  # fmt: skip
    assert added.status_code == 303
    helper = session.execute(
        select(DashboardUser).where(DashboardUser.email == "helper@shop.test")
    ).scalar_one()
    assert helper.role == "read-only" and helper.password_hash.startswith("$argon2id$")
    post(admin, f"/settings/users/{helper.id}", "/settings", {"role": "marketer"})
    session.expire_all()
    assert session.get(DashboardUser, helper.id).role == "marketer"  # type: ignore[union-attr]
    me = session.execute(
        select(DashboardUser).where(DashboardUser.email == "admin@shop.test")
    ).scalar_one()
    post(admin, f"/settings/users/{me.id}", "/settings", {"role": "read-only"})
    assert "cannot remove your own admin role" in admin.get("/settings").text
    post(admin, f"/settings/users/{helper.id}", "/settings", {"enabled": "0"})
    with TestClient(app) as other:  # type: ignore[arg-type]
        token = csrf_of(other.get("/login").text)
        disabled = other.post(
            "/login", data={"email": "helper@shop.test", "password": PASSWORD, "csrf_token": token}
        )
        assert disabled.status_code == 401


def test_a_password_change_ends_the_other_sessions(
    admin: TestClient, app: object, shop: DemoShop
) -> None:
    with TestClient(app) as second:  # type: ignore[arg-type]
        login(second, "admin@shop.test")
        wrong = post(admin, "/settings/password", "/settings", {"current": "bad", "new": "y" * 12})
        assert wrong.status_code == 303
        assert "the current password is wrong" in admin.get("/settings").text
        done = post(
            admin, "/settings/password", "/settings", {"current": PASSWORD, "new": "y" * 12}
        )
        assert done.status_code == 303
        assert admin.get("/settings", follow_redirects=False).status_code == 200
        assert second.get("/settings", follow_redirects=False).status_code == 303
        login(second, "admin@shop.test", "y" * 12)
    assert "password.changed" in admin.get("/activity").text


def test_the_language_follows_the_browser_then_the_user_s_choice(
    admin: TestClient, session: Session, shop: DemoShop
) -> None:
    french = {**HTML, "Accept-Language": "fr-FR,fr;q=0.9"}
    page = html.unescape(admin.get("/", headers=french).text)
    assert '<html lang="fr">' in page and "Vue d'ensemble" in page
    assert re.search(r"\d,\d\d\xa0€", page)  # 1 234,56 €
    switched = post(admin, "/language", "/settings", {"language": "en", "next": "/customers"})
    assert switched.headers["location"] == "/customers"
    assert '<html lang="en">' in admin.get("/", headers=french).text  # the choice wins
    user = session.execute(
        select(DashboardUser).where(DashboardUser.email == "admin@shop.test")
    ).scalar_one()
    session.refresh(user)
    assert user.language == "en"


def test_the_login_page_is_in_the_browser_s_language(client: TestClient) -> None:
    page = client.get("/login", headers={"Accept-Language": "fr"}).text
    assert "Se connecter" in page and "Mot de passe" in page


def test_analytics_page_and_csv_export(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    page = admin.get("/analytics").text
    rfm = analytics.report(session, caller(shop), "rfm", clock.now()).payload["segments"]
    shown = text_of(page, "rfm")
    fmt = formats("en", None, "EUR", None)
    for segment in rfm:
        assert f"{segment['segment']} {fmt.number(segment['customers'])}" in shown
    assert 'id="cohorts"' in page and 'id="clv"' in page
    first = rfm[0]["segment"]
    listing = admin.get("/customers", params={"segment": first}).text
    assert listing.count('href="/customers/') >= min(rfm[0]["customers"], 50)
    csv_answer = admin.get("/analytics/kpis.csv")
    assert csv_answer.headers["content-type"].startswith("text/csv")
    rows = csv_answer.text.strip().splitlines()
    monthly = analytics.report(session, caller(shop), "kpis", clock.now()).payload["monthly"]
    assert rows[0].startswith("month,customers,new_customers") and len(rows) == len(monthly) + 1
    assert rows[-1].split(",")[1] == str(monthly[-1]["customers"])


def test_assets_are_served_by_the_app(client: TestClient) -> None:
    htmx = client.get("/assets/htmx.min.js")
    assert htmx.status_code == 200 and len(htmx.content) > 40_000
    assert client.get("/assets/htmx.LICENSE.txt").status_code == 200
    assert client.get("/assets/app.css").status_code == 200
    page = client.get("/login").text
    for url in re.findall(r"""(?:src|href)=["']([^"'#][^"']*)""", page):
        assert url.startswith("/"), url
        assert client.get(url).status_code == 200, url


def test_an_unknown_customer_is_a_404_page(admin: TestClient) -> None:
    answer = admin.get("/customers/999999")
    assert answer.status_code == 404 and "text/html" in answer.headers["content-type"]
    assert "Page not found." in answer.text
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
