"""Page 7, Feedback, as a signed-in merchant user sees it (English and French)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers import service as customers
from fidele.db.session import transaction
from fidele.feedback import service as feedback
from fidele.kit.clock import FrozenClock
from fidele.settings import get_settings
from tests.dashboard.conftest import HTML, signed_in
from tests.fixtures.factories import Tenant, make_tenant


@pytest.fixture
def shop(factory: sessionmaker[Session], clock: FrozenClock) -> Tenant:
    with transaction(factory) as session:
        return make_tenant(session, clock.now(), name="Feedback shop")


def _answer(
    client: TestClient,
    session: Session,
    tenant: Tenant,
    clock: FrozenClock,
    cid: str,
    code: str,
    score: int,
    comment: str = "",
) -> None:
    customer = customers.get_or_create(session, tenant.caller, cid, clock.now(), source="api")
    survey = feedback.survey_by_code(session, tenant.merchant_id, code)
    url, _ = feedback.survey_link(
        survey,
        customer,
        "first",
        clock.now(),
        secret=get_settings().secret_key,
        public_url="",
    )
    session.commit()
    answer = client.post(url, data={"q_score": str(score), "q_comment": comment})
    assert answer.status_code == 200, answer.text


@pytest.fixture
def admin(app, factory, shop, clock) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    yield from signed_in(app, factory, shop.merchant_id, "admin", clock.now())


def test_feedback_page(
    admin: TestClient, session: Session, shop: Tenant, clock: FrozenClock
) -> None:
    empty = admin.get("/feedback", headers=HTML)
    assert empty.status_code == 200
    assert "No NPS answer yet." in empty.text and 'href="/feedback/complaints"' in empty.text
    assert 'href="/feedback" aria-current="page"' in empty.text

    _answer(admin, session, shop, clock, "c1", "nps", 10)
    _answer(admin, session, shop, clock, "c2", "nps", 3, "Colis abîmé")
    clock.advance(timedelta(days=35))
    _answer(admin, session, shop, clock, "c3", "nps", 9)
    _answer(admin, session, shop, clock, "c1", "csat", 4)
    _answer(admin, session, shop, clock, "c2", "csat", 5)

    page = admin.get("/feedback", headers=HTML)
    assert page.status_code == 200
    html = page.text
    assert "+33" in html  # 2 promoters, 1 detractor of 3
    assert "<svg" in html and "NPS by month" in html
    assert "+0.0" in html and "+100.0" in html  # the two months
    assert "4.50 / 5" in html
    assert "Colis abîmé" in html

    admin.cookies.set("fidele_lang", "fr")
    french = admin.get("/feedback", headers=HTML)
    assert "Promoteurs" in french.text and "Dernières réponses" in french.text
