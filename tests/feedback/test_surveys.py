"""Surveys through the API and the customer's page (plain form POSTs, no JavaScript)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.events.models import Event
from fidele.feedback import links
from fidele.feedback.models import SurveyAnswer
from fidele.kit.clock import FrozenClock
from fidele.messaging.tracking import sign
from fidele.outbox.models import OutboxMessage
from fidele.settings import get_settings
from tests.fixtures.factories import make_tenant, order_body

FORM = {
    "code": "after_delivery",
    "kind": "form",
    "title": {"en": "Your delivery", "fr": "Votre livraison"},
    "questions": [
        {
            "id": "speed",
            "type": "choice",
            "label": {"en": "Was it fast?", "fr": "Était-ce rapide ?"},
            "options": [
                {"value": "yes", "label": {"en": "Yes", "fr": "Oui"}},
                {"value": "no", "label": {"en": "No", "fr": "Non"}},
            ],
            "required": True,
        },
        {"id": "stars", "type": "scale", "label": {"en": "Stars"}, "min": 1, "max": 3},
        {"id": "note", "type": "text", "label": {"en": "Anything else?"}},
    ],
}


def _customer(api: TestClient, cid: str, **body: Any) -> None:
    assert api.put(f"/v1/customers/{cid}", json=body).status_code in (200, 201)


def _nps(api: TestClient) -> dict[str, Any]:
    surveys = api.get("/v1/surveys").json()
    return next(s for s in surveys if s["code"] == "nps")


def _link(api: TestClient, survey_id: int, cid: str, occasion: str, **kw: Any) -> str:
    r = api.post(
        f"/v1/surveys/{survey_id}/links", json={"customer_id": cid, "occasion": occasion, **kw}
    )
    assert r.status_code == 201, r.text
    return r.json()["url"].removeprefix("http://127.0.0.1:8000")


def _answers(session: Session) -> list[SurveyAnswer]:
    session.expire_all()
    return list(session.execute(select(SurveyAnswer).order_by(SurveyAnswer.id)).scalars())


def _events(session: Session, *types: str) -> list[Event]:
    session.expire_all()
    stmt = select(Event).where(Event.type.in_(types)).order_by(Event.id)
    return list(session.execute(stmt).scalars())


def test_builtin_surveys_and_a_custom_form(api: TestClient) -> None:
    codes = {s["code"]: s for s in api.get("/v1/surveys").json()}
    assert {"nps", "csat"} <= set(codes)
    assert codes["nps"]["questions"][0]["max"] == 10
    made = api.post("/v1/surveys", json=FORM)
    assert made.status_code == 201, made.text
    assert [q["id"] for q in made.json()["questions"]] == ["speed", "stars", "note"]
    again = api.post("/v1/surveys", json=FORM)
    assert again.status_code == 409
    bad = api.post("/v1/surveys", json={**FORM, "code": "x2", "questions": []})
    assert bad.status_code == 422 and "questions" in bad.text
    twice = {**FORM, "code": "x3", "questions": [FORM["questions"][2], FORM["questions"][2]]}
    r = api.post("/v1/surveys", json=twice)
    assert r.status_code == 422 and "questions.1.id" in r.text
    no_text = {**FORM, "code": "x4", "title": {}}
    assert api.post("/v1/surveys", json=no_text).status_code == 422


def test_page_without_javascript_answer_and_update(api: TestClient, session: Session) -> None:
    _customer(api, "c1", locale="fr-FR")
    survey = _nps(api)
    url = _link(api, survey["id"], "c1", "order-1")
    page = api.get(url)
    assert page.status_code == 200
    assert "<script" not in page.text and 'method="post"' in page.text
    assert "Quelle est la probabilité" in page.text  # the customer's language
    assert len(page.content) < 8000
    assert "Votre avis" in page.text
    english = api.get(url, params={"lang": "en"})
    assert "How likely are you" in english.text

    missing = api.post(url, data={"q_comment": "nothing"})
    assert missing.status_code == 422
    assert "Merci de répondre" in missing.text and "nothing" in missing.text
    assert _answers(session) == []

    r = api.post(url, data={"q_score": "3", "q_comment": "Livraison en retard"})
    assert r.status_code == 200, r.text
    assert "Merci !" in r.text and 'value="3" checked' in r.text
    [row] = _answers(session)
    assert (row.score, row.comment, row.occasion, row.locale) == (
        3,
        "Livraison en retard",
        "order-1",
        "fr",
    )
    [event] = _events(session, "survey_answered")
    assert event.payload["score"] == 3 and event.payload["nps_group"] == "detractor"
    assert event.payload["detractor_comment"] is True
    assert event.payload["occasion"] == "order-1" and event.source == "feedback"

    # the same link again: one answer per occasion, updated; no second survey_answered
    r = api.post(url, data={"q_score": "9", "q_comment": ""})
    assert r.status_code == 200
    [row] = _answers(session)
    assert (row.score, row.comment) == (9, None)
    assert len(_events(session, "survey_answered")) == 1
    [updated] = _events(session, "survey.answer_updated")
    assert updated.payload["previous_score"] == 3 and updated.payload["nps_group"] == "promoter"
    assert updated.payload["detractor_comment"] is False

    # another occasion is another answer
    other = _link(api, survey["id"], "c1", "order-2")
    assert api.post(other, data={"q_score": "10"}).status_code == 200
    assert len(_answers(session)) == 2


def test_forged_expired_other_customers_links_are_refused(
    api: TestClient, session: Session, clock: FrozenClock
) -> None:
    _customer(api, "c1")
    _customer(api, "c2")
    survey = _nps(api)
    url = _link(api, survey["id"], "c1", "o1", days=2)
    token = url.removeprefix("/s/")
    ids = links.read_survey(get_settings().secret_key, token, clock.now())

    body, _, tag = token.partition(".")
    flipped = ("A" if body[5] != "A" else "B").join((body[:5], body[6:]))
    for forged in (f"{flipped}.{tag}", f"{body}.{tag[:-2]}xx", "abc.def"):
        r = api.get(f"/s/{forged}")
        assert r.status_code == 404 and "not valid" in r.text
        assert api.post(f"/s/{forged}", data={"q_score": "1"}).status_code == 404

    # the same facts for another customer, signed with another key: refused
    other_customer = {"k": "sv", "m": ids.merchant_id, "c": ids.customer_id + 1, "s": ids.survey_id}
    stolen = sign("another-secret", {**other_customer, "o": "o1", "e": 4102444800})
    assert api.post(f"/s/{stolen}", data={"q_score": "1"}).status_code == 404
    # a messaging tracking token (same signer) is not a survey link
    tracking = sign(
        get_settings().secret_key, {"k": "o", "m": ids.merchant_id, "c": ids.customer_id, "s": 1}
    )
    assert api.get(f"/s/{tracking}").status_code == 404
    # a genuine token naming a customer of another merchant
    shop_b = make_tenant(session, clock.now(), name="Shop B")
    session.commit()
    foreign = sign(
        get_settings().secret_key,
        {**other_customer, "m": shop_b.merchant_id, "o": "o1", "e": 4102444800},
    )
    assert api.get(f"/s/{foreign}").status_code == 404

    clock.advance(timedelta(days=2, seconds=1))
    expired = api.post(url, data={"q_score": "1"})
    assert expired.status_code == 410 and "expired" in expired.text
    assert _answers(session) == []


def test_replayed_link_records_one_answer_and_earns_once(api: TestClient, session: Session) -> None:
    rules = api.get("/v1/loyalty/rules").json()
    rules["rules"].append(
        {"id": "survey", "type": "action", "event_type": "survey_answered", "points": 25}
    )
    assert api.put("/v1/loyalty/rules", json=rules).status_code == 200, rules
    _customer(api, "c1")
    assert api.post("/v1/orders", json=order_body("o1", "c1")).status_code == 201
    before = api.get("/v1/customers/c1/loyalty").json()
    url = _link(api, _nps(api)["id"], "c1", "o1")
    for _ in range(3):
        assert api.post(url, data={"q_score": "8"}).status_code == 200
    after = api.get("/v1/customers/c1/loyalty").json()
    earned = after["available"] + after["pending"] - before["available"] - before["pending"]
    assert earned == 25
    assert len(_answers(session)) == 1
    assert len(_events(session, "survey_answered")) == 1


def test_results_nps_csat_form_trend_and_segment(
    api: TestClient, session: Session, clock: FrozenClock
) -> None:
    nps = _nps(api)
    scores = [10, 9, 8, 6, 0, 10]  # 3 promoters, 1 passive, 2 detractors -> NPS 16.7
    for i, score in enumerate(scores):
        _customer(api, f"c{i}", country="FR" if i < 3 else "DE")
        if i == 3:
            clock.advance(timedelta(days=40))
        url = _link(api, nps["id"], f"c{i}", "q1")
        assert (
            api.post(url, data={"q_score": str(score), "q_comment": f"because {i}"}).status_code
            == 200
        )
    got = api.get(f"/v1/surveys/{nps['id']}/results").json()
    assert got["answers"] == 6
    assert got["nps"] == {"answers": 6, "promoters": 3, "passives": 1, "detractors": 2, "nps": 16.7}
    assert [(p["answers"], p["nps"]) for p in got["trend"]] == [(3, 66.7), (3, -33.3)]
    assert len(got["texts"]) == 6 and got["texts"][0]["text"] == "because 5"

    segment = api.post(
        "/v1/segments",
        json={"name": "French", "rule": {"field": "customer.country", "op": "eq", "value": "FR"}},
    ).json()
    french = api.get(
        f"/v1/surveys/{nps['id']}/results", params={"segment_id": segment["id"]}
    ).json()
    assert french["nps"]["answers"] == 3 and french["nps"]["nps"] == 66.7
    assert (
        api.get(f"/v1/surveys/{nps['id']}/results", params={"segment_id": 99999}).status_code == 404
    )

    csat = next(s for s in api.get("/v1/surveys").json() if s["code"] == "csat")
    for i, score in enumerate([5, 4, 2]):
        url = _link(api, csat["id"], f"c{i}", "q1")
        assert api.post(url, data={"q_score": str(score)}).status_code == 200
    got = api.get(f"/v1/surveys/{csat['id']}/results").json()
    assert got["csat"]["average"] == 3.67 and got["csat"]["satisfied_percent"] == 66.7

    form = api.post("/v1/surveys", json=FORM).json()
    for i, (speed, stars) in enumerate([("yes", "3"), ("no", "1"), ("yes", "")]):
        url = _link(api, form["id"], f"c{i}", "d1")
        r = api.post(url, data={"q_speed": speed, "q_stars": stars, "q_note": "ok" if i else ""})
        assert r.status_code == 200, r.text
    got = api.get(f"/v1/surveys/{form['id']}/results").json()
    by_id = {q["id"]: q for q in got["questions"]}
    assert by_id["speed"]["counts"] == {"yes": 2, "no": 1}
    assert by_id["stars"]["counts"] == {"1": 1, "2": 0, "3": 1} and by_id["stars"]["average"] == 2.0
    assert by_id["note"]["answers"] == 2 and got["nps"] is None and got["trend"] == []
    assert api.get("/v1/surveys/99999/results").status_code == 404


def test_trend_months_are_the_merchants_local_months(
    api: TestClient, session: Session, clock: FrozenClock
) -> None:
    from datetime import UTC, datetime

    zone = api.put("/v1/complaints/sla", json={"timezone": "Europe/Paris"})  # UTC+2 in summer
    assert zone.status_code == 200, zone.text
    nps = _nps(api)
    answered = [
        ("c1", datetime(2026, 6, 30, 21, 30, tzinfo=UTC), "10"),  # 23:30 in Paris: June
        ("c2", datetime(2026, 6, 30, 22, 30, tzinfo=UTC), "0"),  # 00:30 on 1 July in Paris
        ("c3", datetime(2026, 7, 1, 10, 0, tzinfo=UTC), "0"),
    ]
    for cid, at, score in answered:
        _customer(api, cid)
        clock.set(at)
        url = _link(api, nps["id"], cid, "q1")
        assert api.post(url, data={"q_score": score}).status_code == 200
    got = api.get(f"/v1/surveys/{nps['id']}/results").json()
    assert [(p["month"], p["answers"], p["nps"]) for p in got["trend"]] == [
        ("2026-06", 1, 100.0),
        ("2026-07", 2, -100.0),
    ]
    # in UTC the second answer would be June's: the months follow the merchant's zone
    assert api.put("/v1/complaints/sla", json={"timezone": "UTC"}).status_code == 200
    got = api.get(f"/v1/surveys/{nps['id']}/results").json()
    assert [(p["month"], p["answers"]) for p in got["trend"]] == [("2026-06", 2), ("2026-07", 1)]


def test_answer_counts_in_engagement_and_goes_out_as_webhook(
    api: TestClient, session: Session, clock: FrozenClock, tenant: Any
) -> None:
    from fidele.analytics import service as analytics
    from fidele.analytics.models import CustomerInsight
    from fidele.webhooks import service as webhooks

    webhooks.create(
        session,
        merchant_id=tenant.merchant_id,
        url="http://127.0.0.1:9/hook",
        topics=["survey.answered"],
        now=clock.now(),
        allow_private=True,
    )
    session.commit()
    _customer(api, "c1")
    assert (
        api.post(
            "/v1/orders", json=order_body("o1", "c1", placed_at=clock.now().isoformat())
        ).status_code
        == 201
    )
    url = _link(api, _nps(api)["id"], "c1", "o1")
    assert api.post(url, data={"q_score": "10"}).status_code == 200
    analytics.refresh(session, tenant.merchant_id, clock.now())
    session.commit()
    row = session.execute(select(CustomerInsight)).scalars().one()
    # the default engagement scale: order.placed 5 + survey_answered 4
    assert row.engagement_score == 9
    [message] = session.execute(select(OutboxMessage)).scalars()
    assert message.topic == "survey.answered"
    assert message.payload["body"]["data"]["customer_id"] == "c1"
    assert message.payload["body"]["data"]["score"] == 10


def test_link_api_refuses_unknown_customer_and_survey(api: TestClient) -> None:
    survey = _nps(api)
    r = api.post(
        f"/v1/surveys/{survey['id']}/links", json={"customer_id": "nobody", "occasion": "x"}
    )
    assert r.status_code == 404
    _customer(api, "c1")
    r = api.post("/v1/surveys/99999/links", json={"customer_id": "c1", "occasion": "x"})
    assert r.status_code == 404
    r = api.post(f"/v1/surveys/{survey['id']}/links", json={"customer_id": "c1", "occasion": ""})
    assert r.status_code == 422 and "occasion" in r.text
