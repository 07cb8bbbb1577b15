"""The Feedback section of a customer's page: survey answers, reviews and complaints (with the
SLA breach flag and a link to the complaint), an empty state, French, and never another
merchant's feedback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers.models import Customer
from fidele.db.session import transaction
from fidele.kit.clock import FrozenClock
from tests.dashboard.conftest import HTML, signed_in
from tests.feedback.complaints_shop import complain, customer, order
from tests.fixtures.factories import Tenant, make_tenant


@pytest.fixture
def shop(factory: sessionmaker[Session], clock: FrozenClock) -> Tenant:
    with transaction(factory) as session:
        return make_tenant(session, clock.now(), name="Feedback shop")


@pytest.fixture
def other(factory: sessionmaker[Session], clock: FrozenClock) -> Tenant:
    with transaction(factory) as session:
        return make_tenant(session, clock.now(), name="Other shop")


@pytest.fixture
def admin(app, factory, shop, clock) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    yield from signed_in(app, factory, shop.merchant_id, "admin", clock.now())


def _api(app: object, tenant: Tenant) -> TestClient:
    c = TestClient(app)  # type: ignore[arg-type]
    c.headers["Authorization"] = f"Bearer {tenant.key}"
    return c


def _answer(api: TestClient, code: str, cid: str, score: int, comment: str = "") -> None:
    survey = next(s["id"] for s in api.get("/v1/surveys").json() if s["code"] == code)
    r = api.post(f"/v1/surveys/{survey}/links", json={"customer_id": cid, "occasion": "o-1"})
    assert r.status_code == 201, r.text
    url = r.json()["url"].removeprefix("http://127.0.0.1:8000")
    assert api.post(url, data={"q_score": str(score), "q_comment": comment}).status_code == 200


def _review(api: TestClient, cid: str, oid: str, text: str) -> None:
    r = api.post("/v1/reviews/links", json={"customer_id": cid, "order_id": oid})
    assert r.status_code == 201, r.text
    url = r.json()["url"].removeprefix("http://127.0.0.1:8000")
    assert api.post(url, data={"rating_0": "4", "text_0": text}).status_code == 200


def _feedback(api: TestClient, cid: str, words: str) -> dict[str, object]:
    """An NPS 3 with a comment (a detractor's: a complaint opens from it), a CSAT 5, a
    review and a complaint through the API."""
    customer(api, cid)
    order(api, f"{words}-o1", cid)
    _answer(api, "nps", cid, 3, f"{words}: slow delivery")
    _answer(api, "csat", cid, 5)
    _review(api, cid, f"{words}-o1", f"{words}: lovely shirt")
    return complain(api, cid, message=f"{words}: broken")


def _id(session: Session, tenant: Tenant, ext: str) -> int:
    stmt = select(Customer.id).where(
        Customer.merchant_id == tenant.merchant_id, Customer.external_id == ext
    )
    return int(session.execute(stmt).scalar_one())


def _section(page: str) -> str:
    found = re.search(r'<section class="card" id="feedback">(.*?)</section>', page, re.S)
    assert found, page[:500]
    return found.group(1)


def test_customer_page_feedback_section(
    app: object,
    admin: TestClient,
    session: Session,
    shop: Tenant,
    other: Tenant,
    clock: FrozenClock,
) -> None:
    ours, theirs = _api(app, shop), _api(app, other)
    made = _feedback(ours, "c1", "ours")
    _feedback(theirs, "c1", "theirs")  # the same customer id in another shop
    customer(ours, "c2")
    clock.advance(timedelta(days=5))  # the complaints' SLAs are long past

    page = admin.get(f"/customers/{_id(session, shop, 'c1')}", headers=HTML)
    assert page.status_code == 200
    section = _section(page.text)
    assert "Survey answers" in section and "Reviews" in section and "Complaints" in section
    answers = re.search(r'<table id="feedback-answers">.*?</table>', section, re.S)
    assert answers is not None
    rows = re.findall(r"<tr><td>(.*?)</td><td class=\"num\">(.*?)</td>", answers.group(0))
    # the latest first: the CSAT answer, then the NPS answer
    assert [(name, score.split(" ")[0]) for name, score in rows] == [
        ("Your satisfaction", "5"),
        ("Your opinion", "3"),
    ]
    assert "(detractor)" in section and "ours: slow delivery" in section
    assert "T-shirt" in section and "4 / 5" in section and "ours: lovely shirt" in section
    # two complaints: the API's, and the one the detractor's comment opened
    links = re.findall(r'href="/feedback/complaints/(\d+)"', section)
    assert len(links) == 2 and str(made["id"]) in links
    assert section.count("SLA breached") == 2
    assert 'href="/feedback/complaints"' in section
    assert "theirs" not in page.text  # never another shop's feedback

    # a complaint still within its SLA: no breach flag
    fresh = _feedback(ours, "c3", "fresh")
    section = _section(admin.get(f"/customers/{_id(session, shop, 'c3')}", headers=HTML).text)
    assert f'href="/feedback/complaints/{fresh["id"]}"' in section
    assert "within SLA" in section and "SLA breached" not in section

    empty = _section(admin.get(f"/customers/{_id(session, shop, 'c2')}", headers=HTML).text)
    assert "No feedback from this customer yet" in empty and "<table" not in empty

    # another shop's customer page is not ours to see
    assert admin.get(f"/customers/{_id(session, other, 'c1')}", headers=HTML).status_code == 404


def test_the_section_in_french(
    app: object, admin: TestClient, session: Session, shop: Tenant, clock: FrozenClock
) -> None:
    _feedback(_api(app, shop), "c1", "ours")
    clock.advance(timedelta(days=5))
    french = {**HTML, "Accept-Language": "fr-FR,fr;q=0.9"}
    admin.cookies.delete("fidele_lang")
    page = admin.get(f"/customers/{_id(session, shop, 'c1')}", headers=french).text
    section = _section(page)
    assert "Avis clients" in section and "Réponses aux enquêtes" in section
    assert "Votre avis" in section and "Votre satisfaction" in section  # the surveys' titles
    assert "(détracteur)" in section and "SLA dépassé" in section
    assert "Toutes les réclamations" in section


def test_every_text_of_the_section_is_in_french() -> None:
    from fidele.dashboard import feedback_pages
    from fidele.dashboard.i18n import FR

    root = Path(feedback_pages.__file__).parent / "templates"
    source = (root / "_customer_feedback.html").read_text()
    texts = set(re.findall(r'\bt\("([^"]+)"', source)) | {"promoter", "passive", "detractor"}
    assert len(texts) > 15
    assert sorted(t for t in texts if t not in FR) == []
