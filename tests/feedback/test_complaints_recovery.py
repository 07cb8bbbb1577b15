"""An open complaint pauses marketing (through messaging.send), its resolution resumes it;
gestures through loyalty and promotions within the monthly budget; complaints opened by a
detractor's answer and by the helpdesk webhook."""

from __future__ import annotations

import json
from datetime import timedelta

from fidele.customers.models import Customer
from fidele.events import service as events
from fidele.feedback.complaints_models import Complaint, RecoveryGesture
from fidele.ingest.connectors import signing
from fidele.loyalty import service as loyalty
from fidele.messaging import service as messaging
from fidele.promotions import wallet
from fidele.promotions.models import Coupon
from tests.conftest import T0
from tests.feedback.complaints_shop import complain, customer, events_of, move
from tests.messaging.conftest import make_customer, make_template


def _send(session, tenant, customer_id, key, topic):  # type: ignore[no-untyped-def]
    return messaging.send(
        session,
        merchant_id=tenant.merchant_id,
        customer_id=customer_id,
        template="hello",
        topic=topic,
        key=key,
        now=T0,
    )


def test_open_complaint_pauses_marketing_and_resolution_resumes_it(api, tenant, session):
    c = make_customer(session, tenant, "c1")
    make_template(session, tenant)
    session.commit()
    first = complain(api)["id"]
    second = complain(api, category="late_delivery")["id"]
    out = _send(session, tenant, c.id, "m1", "lifecycle")
    assert (out.status, out.reason) == ("skipped", "complaint_open")
    assert _send(session, tenant, c.id, "t1", "transactional").status == "queued"
    session.commit()
    for cid in (first, second):
        assert move(api, cid, "in_progress").status_code == 200
    assert move(api, first, "resolved").status_code == 200
    # one complaint still open: still paused
    assert _send(session, tenant, c.id, "m2", "lifecycle").reason == "complaint_open"
    session.commit()
    assert move(api, second, "rejected").status_code == 200
    session.expire_all()
    assert _send(session, tenant, c.id, "m3", "lifecycle").status == "queued"
    session.commit()
    # a new complaint pauses again
    complain(api, category="other")
    session.expire_all()
    assert _send(session, tenant, c.id, "m4", "lifecycle").reason == "complaint_open"


def _resolve(api, cid, gesture):  # type: ignore[no-untyped-def]
    assert move(api, cid, "in_progress").status_code == 200
    return move(api, cid, "resolved", gesture=gesture)


def test_gestures_within_the_monthly_budget(api, tenant, session, clock):
    customer(api)
    r = api.put("/v1/complaints/sla", json={"monthly_budget": 1500})
    assert r.json()["monthly_budget"] == 1500 and r.json()["currency"] == "EUR"
    a, b, c, d = (complain(api)["id"] for _ in range(4))
    r = _resolve(api, a, {"kind": "coupon", "value": 500})
    assert r.status_code == 200 and r.json()["gesture"] == {"kind": "coupon", "value": 500}
    r = _resolve(api, b, {"kind": "points", "value": 100})  # 100 points at 5.00 per 100
    assert r.status_code == 200, r.text
    r = _resolve(api, c, {"kind": "store_credit", "value": 600})
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "gesture.value"
    assert r.json()["left"] == 500 and "500" in r.json()["detail"]
    # nothing half-written: still in progress, no gesture, no credit
    assert api.get(f"/v1/complaints/{c}").json()["status"] == "in_progress"
    r = move(api, c, "resolved", gesture={"kind": "store_credit", "value": 500})
    assert r.status_code == 200
    assert api.get("/v1/complaints/sla").json()["budget_spent_this_month"] == 1500
    # next month the budget is whole again
    clock.set(T0 + timedelta(days=31))
    assert _resolve(api, d, {"kind": "coupon", "value": 1500}).status_code == 200
    session.expire_all()
    cust = session.query(Customer).filter_by(external_id="c1").one()
    coupons = session.query(Coupon).filter_by(customer_id=cust.id, origin="recovery").all()
    assert sorted(x.value for x in coupons) == [500, 1500]
    assert loyalty.available_points(session, cust, clock.now()) == 100
    assert wallet.balance(session, cust, "EUR", clock.now()) == 500
    costs = sorted(g.cost for g in session.query(RecoveryGesture).all())
    assert costs == [500, 500, 500, 1500]
    resolved = events_of(session, tenant.merchant_id, "complaint.resolved")
    assert [e.payload["gesture"] for e in resolved] == [
        "coupon",
        "points",
        "store_credit",
        "coupon",
    ]


def test_a_detractor_with_a_comment_opens_a_complaint(api, tenant, session):
    customer(api)
    session.expire_all()
    cust = session.query(Customer).filter_by(external_id="c1").one()

    def answer(key, type_="survey_answered", **payload):  # type: ignore[no-untyped-def]
        events.record(
            session,
            tenant.caller,
            type=type_,
            occurred_at=T0,
            now=T0,
            source="survey",
            payload={"survey_id": 1, "kind": "nps", **payload},
            customer_id=cust.id,
            idempotency_key=key,
        )

    answer("a1", score=3, comment="slow and rude", answer_id=11, detractor_comment=True)
    answer("a1", score=3, comment="slow and rude", answer_id=11, detractor_comment=True)
    # the same answer changed: no second complaint
    answer(
        "a1b",
        "survey.answer_updated",
        score=2,
        comment="worse",
        answer_id=11,
        detractor_comment=True,
    )
    answer("a2", score=9, comment="great", answer_id=12, detractor_comment=False)
    answer("a3", score=2, comment="  ", answer_id=13, detractor_comment=False)
    answer("a4", score=7, comment="meh", answer_id=14)  # a passive, no verdict: NPS rule
    answer("a5", kind="csat", score=1, comment="cold food", answer_id=15, detractor_comment=True)
    answer("a6", "survey.answered", score=4, comment="late again")  # no verdict, no answer id
    session.commit()
    rows = (
        session.query(Complaint)
        .filter_by(merchant_id=tenant.merchant_id)
        .order_by(Complaint.id)
        .all()
    )
    assert [(r.source, r.channel, r.message, r.status) for r in rows] == [
        ("survey", "survey", "slow and rude", "open"),
        ("survey", "survey", "cold food", "open"),
        ("survey", "survey", "late again", "open"),
    ]
    assert messaging.complaint_open(session, cust.id)


def test_helpdesk_webhook(client, api, tenant):
    customer(api)
    url = f"/v1/webhooks/helpdesk/{tenant.merchant_id}"
    body = json.dumps(
        {"ticket_id": "T-77", "customer_id": "c1", "category": "missing_item", "message": "no lid"}
    ).encode()
    sig = signing.signature(tenant.webhook_secret, body)
    r = client.post(url, content=body, headers={"X-Fidele-Signature": sig})
    assert r.status_code == 201, r.text
    assert (r.json()["source"], r.json()["channel"]) == ("helpdesk", "helpdesk")
    again = client.post(url, content=body, headers={"X-Fidele-Signature": sig})
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    bad = client.post(url, content=body, headers={"X-Fidele-Signature": "AAAA"})
    assert bad.status_code == 401
    assert client.post(url, content=body).status_code == 401
    wrong = json.dumps({"ticket_id": "T-78", "customer_id": "c1", "message": "x", "category": "?"})
    r = client.post(
        url,
        content=wrong,
        headers={"X-Fidele-Signature": signing.signature(tenant.webhook_secret, wrong.encode())},
    )
    assert r.status_code == 422 and r.json()["fields"][0]["field"] == "category"
    assert len(api.get("/v1/complaints").json()["items"]) == 1
