"""The ``feedback.*`` segment fields through the API: written by the customer's own path
(survey links, review links, the complaints API), previewed, refused out of range with the
path named, and membership following an answer, a review and a complaint's life."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.events.models import Event
from fidele.kit.clock import FrozenClock
from fidele.segments import membership
from tests.feedback.complaints_shop import complain, customer, move, order
from tests.fixtures.factories import make_tenant


def _survey(api: TestClient, code: str) -> int:
    return next(s["id"] for s in api.get("/v1/surveys").json() if s["code"] == code)


def _answer(api: TestClient, code: str, cid: str, occasion: str, score: int) -> None:
    r = api.post(
        f"/v1/surveys/{_survey(api, code)}/links", json={"customer_id": cid, "occasion": occasion}
    )
    assert r.status_code == 201, r.text
    url = r.json()["url"].removeprefix("http://127.0.0.1:8000")
    assert api.post(url, data={"q_score": str(score)}).status_code == 200


def _review(api: TestClient, cid: str, oid: str, rating: int) -> None:
    r = api.post("/v1/reviews/links", json={"customer_id": cid, "order_id": oid})
    assert r.status_code == 201, r.text
    url = r.json()["url"].removeprefix("http://127.0.0.1:8000")
    assert api.post(url, data={"rating_0": str(rating), "text_0": "ok"}).status_code == 200


def _who(api: TestClient, rule: Any) -> list[str]:
    r = api.post("/v1/segments/preview", json={"rule": rule})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["sample"])
    return sorted(c["id"] for c in body["sample"])


def _error_field(r: Any) -> str:
    assert r.status_code == 422, r.text
    return str(r.json()["fields"][0]["field"])


def _cond(field: str, op: str, value: Any = True, **kw: Any) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value, **kw}


def test_feedback_fields_preview(api: TestClient, clock: FrozenClock) -> None:
    for cid in ("c1", "c2", "c3", "c4"):
        customer(api, cid)
    # c1: NPS 3, then (another occasion, later) 9: the latest counts; c2: NPS 7; c3: CSAT 4
    _answer(api, "nps", "c1", "o-1", 3)
    clock.advance(timedelta(days=10))
    _answer(api, "nps", "c1", "o-2", 9)
    _answer(api, "nps", "c2", "o-3", 2)
    _answer(api, "nps", "c2", "o-5", 7)  # the same instant: the later answer counts
    _answer(api, "csat", "c3", "o-4", 4)
    order(api, "o-10", "c2")
    _review(api, "c2", "o-10", 5)
    first = complain(api, "c3")
    complain(api, "c3", category="other", message="late")
    assert move(api, first["id"], "in_progress").status_code == 200
    assert move(api, first["id"], "resolved", resolution="refunded").status_code == 200

    assert _who(api, _cond("feedback.nps_last", "eq", 9)) == ["c1"]
    assert _who(api, _cond("feedback.nps_last", "lte", 8)) == ["c2"]
    assert _who(api, _cond("feedback.nps_last", "eq", 7)) == ["c2"]
    assert _who(api, _cond("feedback.nps_group", "eq", "passive")) == ["c2"]
    assert _who(api, _cond("feedback.nps_last", "exists", False)) == ["c3", "c4"]
    assert _who(api, _cond("feedback.nps_group", "eq", "promoter")) == ["c1"]
    assert _who(api, _cond("feedback.nps_group", "in", ["passive", "detractor"])) == ["c2"]
    assert _who(api, _cond("feedback.nps_group", "ne", "promoter")) == ["c2", "c3", "c4"]
    assert _who(api, _cond("feedback.csat_last", "between", [4, 5])) == ["c3"]
    assert _who(api, _cond("feedback.surveys_answered", "eq", 2)) == ["c1", "c2"]
    # in the last 5 days: c1's second answer, c2's two and c3's (the clock moved on 10 days)
    recent = _cond("feedback.surveys_answered", "gte", 1, within_days=5)
    assert _who(api, recent) == ["c1", "c2", "c3"]
    assert _who(api, {**recent, "op": "eq"}) == ["c1", "c3"]
    assert _who(api, _cond("feedback.reviews", "gte", 1)) == ["c2"]
    assert _who(api, _cond("feedback.reviews", "eq", 0)) == ["c1", "c3", "c4"]
    assert _who(api, _cond("feedback.complaints", "eq", 2, within_days=30)) == ["c3"]
    assert _who(api, _cond("feedback.complaints_open", "eq", 1)) == ["c3"]  # one resolved
    clock.advance(timedelta(days=40))
    assert _who(api, _cond("feedback.complaints", "gte", 1, within_days=30)) == []
    assert _who(api, _cond("feedback.complaints", "gte", 1)) == ["c3"]

    fields = {f["name"]: f for f in api.get("/v1/segments/fields").json()}
    assert (fields["feedback.nps_last"]["min"], fields["feedback.nps_last"]["max"]) == (0, 10)
    assert (fields["feedback.csat_last"]["min"], fields["feedback.csat_last"]["max"]) == (1, 5)
    assert fields["feedback.nps_group"]["values"] == ["promoter", "passive", "detractor"]
    assert fields["feedback.reviews"]["within_days"] is True
    assert fields["feedback.complaints_open"]["within_days"] is False


def test_out_of_range_values_name_their_path(api: TestClient) -> None:
    def preview(rule: Any) -> Any:
        return api.post("/v1/segments/preview", json={"rule": rule})

    r = preview(_cond("feedback.nps_last", "gte", 11))
    assert _error_field(r) == "rule.value" and "0..10" in r.json()["detail"]
    nested = {
        "all": [
            _cond("customer.country", "eq", "FR"),
            {"any": [_cond("feedback.nps_last", "in", [9, -1])]},
        ]
    }
    assert _error_field(preview(nested)) == "rule.all.1.any.0.value.1"
    assert _error_field(preview(_cond("feedback.csat_last", "eq", 0))) == "rule.value"
    assert _error_field(preview(_cond("feedback.csat_last", "between", [1, 6]))) == ("rule.value.1")
    r = preview(_cond("feedback.nps_group", "eq", "fan"))
    assert _error_field(r) == "rule.value" and "promoter" in r.json()["detail"]
    assert _error_field(preview(_cond("feedback.nps_last", "eq", "9"))) == "rule.value"
    r = preview(_cond("feedback.complaints_open", "gte", 1, within_days=7))
    assert _error_field(r) == "rule.within_days"
    r = preview(_cond("feedback.nps_last", "gte", 9, within_days=7))
    assert _error_field(r) == "rule.within_days"
    assert _error_field(preview(_cond("feedback.nps", "eq", 9))) == "rule.field"
    r = api.post(
        "/v1/segments", json={"name": "x", "rule": {"all": [_cond("feedback.nps_last", "lt", 11)]}}
    )
    assert _error_field(r) == "rule.all.0.value"


def _moves(session: Session, kind: str, segment_id: int) -> list[Event]:
    session.expire_all()
    rows = session.execute(select(Event).where(Event.type == kind).order_by(Event.id)).scalars()
    return [e for e in rows if e.payload["segment_id"] == segment_id]


def test_membership_follows_answers_reviews_and_complaints(
    api: TestClient, client: TestClient, factory: Any, session: Session, clock: FrozenClock
) -> None:
    """A survey answer, a review, a complaint opened then resolved: the customer enters and
    leaves in the next membership run, as ``segment.entered`` / ``segment.left``; another
    merchant's customer with the same answer stays out."""
    customer(api, "c1")
    order(api, "o-1", "c1")
    rule = {"field": "feedback.nps_group", "op": "eq", "value": "promoter"}
    promoters = api.post("/v1/segments", json={"name": "Promoters", "rule": rule}).json()
    assert promoters["depends_on"] == ["feedback"]
    rule = {"field": "feedback.complaints_open", "op": "gte", "value": 1}
    unhappy = api.post("/v1/segments", json={"name": "Open complaint", "rule": rule}).json()
    rule = {"field": "feedback.reviews", "op": "gte", "value": 1, "within_days": 30}
    reviewers = api.post("/v1/segments", json={"name": "Reviewers", "rule": rule}).json()
    assert reviewers["depends_on"] == ["clock", "feedback"]
    membership.drain(factory, clock)

    other = make_tenant(session, clock.now(), name="Other shop")
    session.commit()
    theirs = TestClient(client.app)
    theirs.headers["Authorization"] = f"Bearer {other.key}"
    customer(theirs, "c1")
    _answer(theirs, "nps", "c1", "o-1", 10)

    _answer(api, "nps", "c1", "o-1", 10)
    assert membership.drain(factory, clock) >= 1
    [entered] = _moves(session, "segment.entered", promoters["id"])
    assert entered.payload == {"segment_id": promoters["id"], "segment_name": "Promoters"}
    assert entered.customer_id is not None
    assert api.get(f"/v1/segments/{promoters['id']}").json()["count"] == 1
    # the same link answered again, now a passive: they leave
    _answer(api, "nps", "c1", "o-1", 8)
    membership.drain(factory, clock)
    [left] = _moves(session, "segment.left", promoters["id"])
    assert left.customer_id == entered.customer_id

    _review(api, "c1", "o-1", 4)
    membership.drain(factory, clock)
    assert len(_moves(session, "segment.entered", reviewers["id"])) == 1

    made = complain(api, "c1")
    membership.drain(factory, clock)
    assert len(_moves(session, "segment.entered", unhappy["id"])) == 1
    assert move(api, made["id"], "rejected").status_code == 200
    membership.drain(factory, clock)
    assert len(_moves(session, "segment.left", unhappy["id"])) == 1
    assert api.get(f"/v1/segments/{unhappy['id']}").json()["count"] == 0
