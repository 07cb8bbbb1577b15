"""The segments page through the test client, on SQLite and PostgreSQL: the builder's rows
become the API's rule, the live count and the members are ``segments.service``'s own, an
error names the criterion, saving needs a role and a CSRF token and is logged."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.dashboard.i18n import formats
from fidele.dashboard.models import DashboardActivity
from fidele.demo.service import DemoShop
from fidele.kit.clock import FrozenClock
from fidele.segments import service as segments
from fidele.segments.models import Segment
from tests.dashboard.conftest import HTML, post
from tests.dashboard.test_pages import text_of
from tests.fixtures.factories import Tenant

FMT = formats("en", None, "EUR", None)
RULE = {
    "all": [
        {"field": "orders.count", "op": "gte", "value": 2, "within_days": 730},
        {"field": "customer.country", "op": "in", "value": ["FR", "BE", "DE"]},
    ]
}
ROWS = {
    "combine": "all",
    "rows": "3",
    "field_0": "orders.count",
    "op_0": "gte",
    "value_0": "2",
    "days_0": "730",
    "field_1": "customer.country",
    "op_1": "in",
    "value_1": "FR, BE, DE",
}


def test_the_builder_counts_as_the_service(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    page = admin.get("/segments", headers=HTML)
    assert page.status_code == 200
    assert "No segments of your own yet" in page.text  # the empty state says what to do first
    assert 'hx-get="/segments/count"' in page.text and 'list="segment-fields"' in page.text
    expected = segments.count(session, merchant_id=shop.merchant_id, rule=RULE, now=clock.now())
    assert expected > 0
    live = admin.get("/segments/count", params=ROWS)
    assert live.status_code == 200
    assert text_of(live.text, "count-value") == FMT.number(expected)
    # one criterion less: a different count, still the service's
    fewer = {k: v for k, v in ROWS.items() if not k.endswith("_1")}
    one = segments.count(
        session, merchant_id=shop.merchant_id, rule={"all": RULE["all"][:1]}, now=clock.now()
    )
    assert text_of(admin.get("/segments/count", params=fewer).text, "count-value") == FMT.number(
        one
    )
    # "any" of the criteria
    wider = segments.count(
        session, merchant_id=shop.merchant_id, rule={"any": RULE["all"]}, now=clock.now()
    )
    any_page = admin.get("/segments/count", params={**ROWS, "combine": "any"}).text
    assert text_of(any_page, "count-value") == FMT.number(wider)


def test_errors_name_the_criterion(admin: TestClient, shop: DemoShop) -> None:
    bad_field = admin.get("/segments/count", params={**ROWS, "field_1": "orders.colour"}).text
    assert "Criterion 2" in text_of(bad_field, "builder-error")
    assert "orders.colour" in text_of(bad_field, "builder-error")
    bad_value = admin.get("/segments/count", params={**ROWS, "value_0": "many"}).text
    assert text_of(bad_value, "builder-error").startswith("Criterion 1, value")
    saved = post(admin, "/segments", "/segments", {**ROWS, "name": "x", "op_1": "gt"})
    assert saved.status_code == 200  # the page again, with the error and the rows typed
    assert "Criterion 2, op" in text_of(saved.text, "save-error")
    assert 'value="FR, BE, DE"' in saved.text


def test_save_a_segment_and_open_its_members(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    saved = post(admin, "/segments", "/segments", {**ROWS, "name": "Regulars in FR/BE/DE"})
    assert saved.status_code == 303
    segment_id = int(saved.headers["location"].rsplit("/", 1)[1])
    row = session.get(Segment, segment_id)
    assert row is not None and row.rule == RULE and row.merchant_id == shop.merchant_id
    page = admin.get(f"/segments/{segment_id}")
    assert page.status_code == 200 and "Segment saved." in page.text
    members = segments.members(session, shop.merchant_id, segment_id, after_id=0, limit=50)
    assert text_of(page.text, "segment-count").startswith(FMT.number(row.member_count))
    shown = re.findall(r'<a href="/customers/(\d+)">', text_of_html(page.text, "members"))
    assert [int(i) for i in shown] == [c.id for c in members]
    listing = admin.get("/segments").text
    assert FMT.number(row.member_count) in text_of(listing, f"segment-{segment_id}")
    # edit: the builder holds the saved rows; one criterion removed
    assert 'id="field_1"' in page.text and 'value="customer.country"' in page.text
    fewer = {k: v for k, v in ROWS.items() if not k.endswith("_1")}
    edited = post(
        admin, f"/segments/{segment_id}", f"/segments/{segment_id}", {**fewer, "name": "Regulars"}
    )
    assert edited.status_code == 303
    session.expire_all()
    assert session.get(Segment, segment_id).rule == {"all": RULE["all"][:1]}  # type: ignore[union-attr]
    actions = session.scalars(
        select(DashboardActivity.action).where(DashboardActivity.merchant_id == shop.merchant_id)
    ).all()
    assert {"segment.created", "segment.updated"} <= set(actions)


def text_of_html(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</section>', page, re.S)
    assert found, element_id
    return found.group(1)


def test_read_only_users_see_but_cannot_save(
    reader: TestClient, session: Session, shop: DemoShop
) -> None:
    page = reader.get("/segments")
    assert page.status_code == 200 and 'id="save-segment"' not in page.text
    assert reader.get("/segments/count", params=ROWS).status_code == 200
    refused = post(reader, "/segments", "/segments", {**ROWS, "name": "nope"})
    assert refused.status_code == 403
    assert session.scalars(select(Segment).where(Segment.name == "nope")).first() is None


def test_a_post_without_csrf_token_is_refused(admin: TestClient, session: Session) -> None:
    answer = admin.post("/segments", data={**ROWS, "name": "forged"}, follow_redirects=False)
    assert answer.status_code == 403
    assert session.scalars(select(Segment).where(Segment.name == "forged")).first() is None


def test_another_merchant_s_segment_is_not_found(
    admin: TestClient, session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    theirs = segments.create(session, tenant.merchant_id, name="theirs", rule=RULE, now=clock.now())
    session.commit()
    assert admin.get(f"/segments/{theirs.id}").status_code == 404


def test_builder_rows_and_rule_documents_round_trip() -> None:
    from types import SimpleNamespace

    from fidele.dashboard.relationship import criteria_of, rows_of, rule_of

    catalogue = {
        "orders.count": SimpleNamespace(type="int"),
        "customer.country": SimpleNamespace(type="str"),
    }
    rule, origin = rule_of(catalogue, "all", criteria_of(ROWS))
    assert rule == RULE and origin == [0, 1]
    combine, rows = rows_of(rule)  # type: ignore[misc]
    again = {"combine": combine, "rows": str(len(rows))}
    for i, row in enumerate(rows):
        again.update({f"{k}_{i}": v for k, v in row.items()})
    assert rule_of(catalogue, combine, criteria_of(again))[0] == RULE
    # typed as a JSON client would: booleans for consents, lists split on commas
    typed, _ = rule_of(
        catalogue,
        "any",
        [
            {"field": "consent.newsletter.email", "op": "eq", "value": "true", "days": ""},
            {"field": "orders.count", "op": "between", "value": "2, 5", "days": "90"},
            {"field": "", "op": "eq", "value": "ignored", "days": ""},
        ],
    )
    assert typed == {
        "any": [
            {"field": "consent.newsletter.email", "op": "eq", "value": True},
            {"field": "orders.count", "op": "between", "value": [2, 5], "within_days": 90},
        ]
    }
    assert rows_of({"not": {"field": "orders.count", "op": "gte", "value": 1}}) is None
