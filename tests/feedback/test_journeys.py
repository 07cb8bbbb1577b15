"""The ready-made journeys send survey and review links, and a survey answer starts flows."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.feedback.models import SurveyAnswer
from fidele.orders.models import Order
from tests.fixtures.factories import order_body

LINK = re.compile(r"http://127\.0\.0\.1:8000(/[sr]/[A-Za-z0-9_.-]+)")


def _preview(api: TestClient, template: str, **context: object) -> str:
    r = api.post(
        "/v1/messages/preview",
        json={"template": template, "customer_id": "c1", "context": context},
    )
    assert r.status_code == 200, r.text
    text = r.json()["text"]
    found = LINK.search(text)
    assert found is not None, text
    return found.group(1)


def test_library_messages_carry_working_links(api: TestClient, session: Session) -> None:
    r = api.put("/v1/customers/c1", json={"email": "c1@example.com", "locale": "fr"})
    assert r.status_code in (200, 201)
    assert api.post("/v1/orders", json=order_body("o1", "c1")).status_code == 201
    for name in ("satisfaction_survey", "review_request", "win_back", "complaint_follow_up"):
        r = api.post(f"/v1/flows/templates/{name}/install")
        assert r.status_code in (200, 201), r.text

    csat = _preview(api, "flow_satisfaction_survey")
    page = api.get(csat)
    assert page.status_code == 200 and "Êtes-vous satisfait" in page.text
    assert api.post(csat, data={"q_score": "4"}).status_code == 200

    # the complaint's survey link answers for the occasion its event named (one per complaint)
    resolved = _preview(api, "flow_complaint_follow_up", survey_occasion="complaint:7")
    assert "Êtes-vous satisfait" in api.get(resolved).text
    assert api.post(resolved, data={"q_score": "5"}).status_code == 200
    session.expire_all()
    occasions = {a.occasion for a in session.execute(select(SurveyAnswer)).scalars()}
    assert "complaint:7" in occasions

    nps = _preview(api, "flow_winback_3")
    assert "recommandiez" in api.get(nps).text

    order = session.execute(select(Order).where(Order.external_id == "o1")).scalar_one()
    review = _preview(api, "flow_review_request", order_id=order.id)
    page = api.get(review)
    assert page.status_code == 200 and "T-shirt" in page.text and "o1" in page.text


def test_a_detractor_answer_starts_a_flow(api: TestClient) -> None:
    flow = {
        "name": "detractor_follow_up",
        "trigger": {"event": "survey_answered", "where": {"nps_group": "detractor"}},
        "steps": [{"wait": {"days": 1}}],
    }
    saved = api.post("/v1/flows", json={"definition": flow})
    assert saved.status_code == 201, saved.text
    flow_id = saved.json()["id"]
    assert api.post(f"/v1/flows/{flow_id}/activate").status_code == 200
    nps = next(s for s in api.get("/v1/surveys").json() if s["code"] == "nps")
    for cid, score in (("c1", "2"), ("c2", "9")):
        assert api.put(f"/v1/customers/{cid}", json={}).status_code in (200, 201)
        r = api.post(f"/v1/surveys/{nps['id']}/links", json={"customer_id": cid, "occasion": "x"})
        url = r.json()["url"].removeprefix("http://127.0.0.1:8000")
        assert api.post(url, data={"q_score": score, "q_comment": "meh"}).status_code == 200
    enrolled = api.get(f"/v1/flows/{flow_id}/enrollments").json()["items"]
    assert [e["customer_id"] for e in enrolled] == ["c1"]
