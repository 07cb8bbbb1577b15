"""``/loyalty`` through the test client on SQLite and PostgreSQL: the scale, simulation,
liability, rewards and settlement shown are the services' own; the scale form validates as
``PUT /v1/loyalty/rules`` does and shows each error by its field; read-only users change
nothing; every change is in the activity log."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.dashboard.i18n import formats
from fidele.dashboard.models import DashboardActivity
from fidele.db.session import transaction
from fidele.demo.service import DemoShop
from fidele.kit.clock import FrozenClock
from fidele.loyalty import members, reports
from fidele.loyalty import service as loyalty
from fidele.loyalty.models import Reward
from fidele.loyalty.schemas import window
from fidele.tenancy import service as tenancy
from fidele.tenancy.service import Caller
from tests.conftest import SECRET
from tests.dashboard.conftest import HTML, csrf_of, login, make_user, post
from tests.dashboard.test_pages import text_of
from tests.fixtures.factories import Tenant

EN = formats("en", None, "EUR", None)


def caller(shop: DemoShop) -> Caller:
    return Caller(shop.merchant_id, shop.programme_id, None, frozenset({"read"}))


def scale_form(page: str) -> dict[str, str]:
    """The scale form's fields as the page filled them (what a browser would submit)."""
    form = page.split('id="scale-form"', 1)[1].split("</form>", 1)[0]
    data = {"csrf_token": csrf_of(page)}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name and 'type="checkbox"' not in tag:
            data[name.group(1)] = value.group(1) if value else ""
        elif name and "checked" in tag:
            data[name.group(1)] = "1"
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        data[name] = re.search(r'<option value="([^"]+)" selected', body).group(1)  # type: ignore[union-attr]
    rules = re.search(r'<textarea id="rules" name="rules"[^>]*>(.*?)</textarea>', form, re.S)
    assert rules
    import html

    data["rules"] = html.unescape(rules.group(1))
    return data


def test_the_page_shows_the_services_figures(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    page = admin.get("/loyalty", headers=HTML)
    assert page.status_code == 200
    body = page.text
    liability = reports.liability(session, shop.programme_id, clock.now())
    assert text_of(body, "liability-points") == f"{EN.number(liability['points'])} points"
    assert text_of(body, "liability-value") == EN.money(liability["value"])
    scale = members.scale_at(session, shop.programme_id, clock.now())
    assert f'value="{scale.settings.points_per_unit}"' in body
    for tier in scale.tiers.levels:
        assert f'value="{tier.name}"' in body
    rewards = session.execute(
        select(Reward).where(Reward.programme_id == shop.programme_id)
    ).scalars()
    for reward in rewards:
        assert reward.name in text_of(body, f"reward-{reward.id}")
    assert "only one in this programme" in text_of(body, "settlement")


def test_the_simulation_is_the_api_s_with_each_rule_explained(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    body = admin.get("/loyalty", params={"sim_amount": "123.45", "sim_shipping": "5"}).text
    lines = [{"product_id": "product", "category": None, "quantity": 1, "unit_price": 12345}]
    expected = loyalty.simulate_order_points(
        session,
        caller(shop),
        customer=None,
        lines=lines,
        shipping=500,
        discounts=0,
        currency="EUR",
        now=clock.now(),
    )
    assert text_of(body, "simulated-points") == EN.number(expected)
    explained = text_of(body, "simulation-rules")
    assert "of the net amount (€123.45)" in explained  # the base, in words
    assert "First-order bonus (first-order): 50 points" in explained
    wrong = admin.get("/loyalty", params={"sim_amount": "12.345"})
    assert wrong.status_code == 200 and 'id="err-sim_amount"' in wrong.text
    unknown = admin.get("/loyalty", params={"sim_amount": "10", "sim_customer": "nobody-42"})
    assert "not found" in text_of(unknown.text, "err-sim_customer")


def test_changing_the_scale_changes_the_simulation_and_is_logged(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    before = text_of(admin.get("/loyalty", params={"sim_amount": "100"}).text, "simulated-points")
    data = scale_form(admin.get("/loyalty").text)
    assert data["settings.points_per_unit"] == "1"
    data["settings.points_per_unit"] = "3"
    data["tier-3-name"], data["tier-3-value"] = "Platinum", "9000"
    done = admin.post("/loyalty/scale", data=data, follow_redirects=False)
    assert done.status_code == 303, done.text[:2000]
    session.expire_all()
    scale = members.scale_at(session, shop.programme_id)
    assert scale.settings.points_per_unit == 3
    assert [t.name for t in scale.tiers.levels][-1] == "Platinum"
    after = text_of(admin.get("/loyalty", params={"sim_amount": "100"}).text, "simulated-points")
    assert int(after) - 50 == 3 * (int(before) - 50)  # the first-order bonus stays 50
    log = admin.get("/activity").text
    assert "loyalty.scale_changed" in log and "points_per_unit" in log


def test_a_scale_that_does_not_validate_is_refused_field_by_field(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    versions_before = members.scale_at(session, shop.programme_id)
    data = scale_form(admin.get("/loyalty").text)
    data["settings.points_per_unit"] = "-1"
    data["settings.pending_days"] = "soon"
    data["tier-1-name"] = data["tier-0-name"]  # names must be unique
    data["rules"] = "- {id: x, type: multiplier}"
    page = admin.post("/loyalty/scale", data=data)
    assert page.status_code == 422
    body = page.text
    assert "greater than or equal to 0" in text_of(body, "err-settings-points_per_unit")
    assert "valid integer" in text_of(body, "err-settings-pending_days")
    assert "tier names must be unique" in text_of(body, "err-tiers")
    assert "multiplier_bp" in text_of(body, "err-rules")
    assert 'value="soon"' in body  # what was typed stays in the form
    session.expire_all()
    assert members.scale_at(session, shop.programme_id) == versions_before
    # the API refuses the same document with the same fields
    api = admin.put(
        "/v1/loyalty/rules",
        json={"settings": {"points_per_unit": -1}},
        headers={"Authorization": f"Bearer {shop.api_key}"},
    )
    assert api.status_code == 422
    assert api.json()["fields"][0]["field"] == "settings.points_per_unit"


def test_rewards_are_created_and_edited_with_the_api_s_validation(
    admin: TestClient, session: Session, shop: DemoShop
) -> None:
    data = {"name": "Tote bag", "points_cost": "400", "kind": "custom", "stock": "10"}
    done = post(admin, "/loyalty/rewards", "/loyalty", data)
    assert done.status_code == 303  # type: ignore[attr-defined]
    reward = session.execute(select(Reward).where(Reward.name == "Tote bag")).scalar_one()
    assert (reward.points_cost, reward.stock, reward.programme_id) == (400, 10, shop.programme_id)
    page = admin.get("/loyalty").text
    row = text_of(page, f"reward-{reward.id}")
    assert "Tote bag" in row and "400" in row and "10" in row
    edit = {"name": "Tote bag XL", "points_cost": "450", "kind": "custom", "stock": "25"}
    assert post(admin, f"/loyalty/rewards/{reward.id}", "/loyalty", edit).status_code == 303  # type: ignore[attr-defined]
    session.expire_all()
    assert (reward.name, reward.points_cost, reward.stock) == ("Tote bag XL", 450, 25)
    bad = {"name": "Ten percent", "points_cost": "100", "kind": "percent_off", "value": "150"}
    refused = post(admin, "/loyalty/rewards", "/loyalty", bad)
    assert refused.status_code == 303  # type: ignore[attr-defined]
    shown = admin.get("/loyalty").text
    assert "a percent_off value is in basis points" in shown
    zero = {"name": "Free", "points_cost": "0", "kind": "custom"}
    post(admin, "/loyalty/rewards", "/loyalty", zero)
    assert "Input should be greater than 0" in admin.get("/loyalty").text
    log = admin.get("/activity").text
    assert "reward.created" in log and "reward.changed" in log


def test_read_only_users_see_but_cannot_change(
    reader: TestClient, session: Session, shop: DemoShop
) -> None:
    page = reader.get("/loyalty").text
    assert "<fieldset disabled>" in page and 'id="save-scale"' not in page
    assert 'id="reward-form"' not in page
    for path, data in (
        ("/loyalty/scale", {"settings.points_per_unit": "9"}),
        ("/loyalty/rewards", {"name": "x", "points_cost": "5", "kind": "custom"}),
    ):
        assert post(reader, path, "/loyalty", data).status_code == 403  # type: ignore[attr-defined]
    assert members.scale_at(session, shop.programme_id).settings.points_per_unit == 1
    assert session.execute(select(func.count()).select_from(DashboardActivity)).scalar() == 0


def test_a_marketer_cannot_change_the_scale_either(marketer: TestClient) -> None:
    data = {"settings.points_per_unit": "9"}
    assert post(marketer, "/loyalty/scale", "/loyalty", data).status_code == 403  # type: ignore[attr-defined]


def test_a_post_without_csrf_is_refused(admin: TestClient) -> None:
    bare = admin.post("/loyalty/scale", data={"settings.points_per_unit": "9"})
    assert bare.status_code == 403


def test_settlement_owner_sees_every_shop_a_member_its_own(
    client: TestClient,
    factory: sessionmaker[Session],
    session: Session,
    shop: DemoShop,
    clock: FrozenClock,
) -> None:
    with transaction(factory) as s:
        member = tenancy.create_merchant(
            s,
            name="Partner shop",
            now=clock.now(),
            server_secret=SECRET,
            programme_id=shop.programme_id,
        )
    now = clock.now()
    data = reports.settlement(session, shop.programme_id, window(None, None, now)[0], now)
    assert [line["merchant_id"] for line in data["lines"]] == [shop.merchant_id]
    login(client, make_user(factory, shop.merchant_id, "admin", now, "own@shop.test"))
    owner_page = client.get("/loyalty").text
    assert "every member shop" in text_of(owner_page, "settlement")
    line = data["lines"][0]
    row = text_of(owner_page, f"settlement-{shop.merchant_id}")
    assert EN.number(line["issued"]) in row and EN.money(line["net"]) in row
    client.cookies.clear()
    login(client, make_user(factory, member.merchant_id, "admin", clock.now(), "m@partner.test"))
    member_page = client.get("/loyalty").text
    assert "Your shop's line" in text_of(member_page, "settlement")
    assert f'id="settlement-{shop.merchant_id}"' not in member_page


def test_an_empty_programme_says_what_to_do_first(
    client: TestClient, factory: sessionmaker[Session], tenant: Tenant, clock: FrozenClock
) -> None:
    login(client, make_user(factory, tenant.merchant_id, "admin", clock.now(), "new@shop.test"))
    page = client.get("/loyalty").text
    assert "create a first reward" in page and "No rewards yet" in page


def test_every_text_of_the_programme_pages_is_in_french() -> None:
    """Each ``t("...")`` of the new templates and each domain code's words are in fr.yaml."""
    from pathlib import Path

    from fidele.dashboard import programme
    from fidele.dashboard.i18n import FR

    root = Path(programme.__file__).parent
    texts = set(programme.CODES.values())
    for name in ("loyalty", "promotions", "settings_shop"):
        source = (root / "templates" / f"{name}.html").read_text()
        texts |= set(re.findall(r'\bt\("([^"]+)"', source))
    for name in ("programme.py", "programme_routes.py"):
        texts |= set(re.findall(r'\bt\(\s*"([^"]+)"', (root / name).read_text()))
    assert len(texts) > 150
    assert sorted(t for t in texts if t not in FR) == []


def test_the_page_in_french(admin: TestClient) -> None:
    french = {**HTML, "Accept-Language": "fr-FR,fr;q=0.9"}
    admin.cookies.delete("fidele_lang")
    page = admin.get("/loyalty", params={"sim_amount": "10"}, headers=french).text
    assert "Barème de points" in page and "Bonus de première commande" in page
