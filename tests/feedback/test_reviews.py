"""Reviews per product through a signed link, once per product and order, and their export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.events.models import Event
from fidele.feedback import links
from fidele.feedback.models import Review
from fidele.kit.clock import FrozenClock
from fidele.orders.models import Order
from fidele.outbox.models import OutboxMessage
from fidele.settings import get_settings
from tests.fixtures.factories import order_body

LINES = [
    {"product_id": "tea-1", "name": "Green tea", "quantity": 1, "unit_price": 900},
    {"product_id": "pot-2", "name": "Teapot", "quantity": 1, "unit_price": 3500},
    {"product_id": "tea-1", "name": "Green tea", "quantity": 2, "unit_price": 900},
]


def _shop(api: TestClient) -> None:
    for cid in ("c1", "c2"):
        assert api.put(f"/v1/customers/{cid}", json={"locale": "en"}).status_code in (200, 201)
    assert api.post("/v1/orders", json=order_body("o1", "c1", lines=LINES)).status_code == 201
    assert api.post("/v1/orders", json=order_body("o2", "c2")).status_code == 201


def _link(api: TestClient, cid: str, oid: str) -> str:
    r = api.post("/v1/reviews/links", json={"customer_id": cid, "order_id": oid})
    assert r.status_code == 201, r.text
    return r.json()["url"].removeprefix("http://127.0.0.1:8000")


def _points(api: TestClient, cid: str) -> int:
    got = api.get(f"/v1/customers/{cid}/loyalty").json()
    return int(got["available"] + got["pending"])


def _reviews(session: Session) -> list[Review]:
    session.expire_all()
    return list(session.execute(select(Review).order_by(Review.id)).scalars())


def _posted(session: Session) -> list[Event]:
    session.expire_all()
    stmt = select(Event).where(Event.type == "review_posted").order_by(Event.id)
    return list(session.execute(stmt).scalars())


def test_review_once_per_product_and_order(
    api: TestClient, session: Session, clock: FrozenClock, tenant: Any
) -> None:
    from fidele.webhooks import service as webhooks

    webhooks.create(
        session,
        merchant_id=tenant.merchant_id,
        url="http://127.0.0.1:9/hook",
        topics=["review.posted"],
        now=clock.now(),
        allow_private=True,
    )
    session.commit()
    _shop(api)
    url = _link(api, "c1", "o1")
    page = api.get(url)
    assert page.status_code == 200 and "<script" not in page.text
    assert page.text.count('name="rating_') == 10  # two products (tea once), 5 stars each
    assert "Green tea" in page.text and "Teapot" in page.text
    before = _points(api, "c1")

    r = api.post(url, data={"rating_0": "5", "text_0": "Lovely", "rating_1": ""})
    assert r.status_code == 200 and "Thank you for your review" in r.text
    # the same product again (replayed link, edited review): no second event, no more points
    r = api.post(url, data={"rating_0": "4", "text_0": "Lovely, a bit bitter", "rating_1": "2"})
    assert r.status_code == 200
    rows = _reviews(session)
    assert [(x.product_id, x.rating, x.text) for x in rows] == [
        ("tea-1", 4, "Lovely, a bit bitter"),
        ("pot-2", 2, None),
    ]
    events = _posted(session)
    assert [(e.payload["product_id"], e.payload["rating"]) for e in events] == [
        ("tea-1", 5),
        ("pot-2", 2),
    ]
    order = session.execute(select(Order).where(Order.external_id == "o1")).scalar_one()
    assert {e.order_id for e in events} == {order.id}
    assert _points(api, "c1") - before == 4  # default scale: 2 points per review, twice
    assert 'value="4" checked' in api.get(url).text
    topics = [m.topic for m in session.execute(select(OutboxMessage)).scalars()]
    assert topics == ["review.posted", "review.posted"]


def test_the_page_asks_only_for_what_is_not_reviewed_yet(api: TestClient) -> None:
    _shop(api)
    url = _link(api, "c1", "o1")
    assert api.post(url, data={"rating_0": "4", "text_0": "Good tea"}).status_code == 200
    page = api.get(url).text
    intro, reviewed = page.split("<h2>Already reviewed</h2>")
    # the teapot is still asked for; the tea is shown as done, its form folded for an edit
    assert "Rate the products" in intro and "Teapot" in intro and "Green tea" not in intro
    assert "<details><summary>Green tea: 4/5" in reviewed and "Teapot" not in reviewed
    assert 'name="rating_1"' in intro and 'name="rating_0" value="4" checked' in reviewed
    assert "<script" not in page

    assert api.post(url, data={"rating_0": "4", "rating_1": "5"}).status_code == 200
    page = api.get(url, params={"lang": "fr"}).text
    assert "Vous avez noté tous les produits de votre commande o1" in page
    assert "Notez les produits" not in page and page.count("<details>") == 2


def test_review_links_refused(api: TestClient, session: Session, clock: FrozenClock) -> None:
    _shop(api)
    url = _link(api, "c1", "o1")
    token = url.removeprefix("/r/")
    link = links.read_review(get_settings().secret_key, token, clock.now())
    # a genuine signature, but the order is another customer's
    other = session.execute(select(Order).where(Order.external_id == "o2")).scalar_one()
    theirs = links.review_token(
        get_settings().secret_key,
        merchant_id=link.merchant_id,
        customer_id=link.customer_id,
        order_id=other.id,
        now=clock.now(),
        days=5,
    )
    assert api.post(f"/r/{theirs}", data={"rating_0": "1"}).status_code == 404
    assert api.get(f"/r/{token[:-3]}abc").status_code == 404
    # a survey token is not a review token
    survey = links.survey_token(
        get_settings().secret_key,
        merchant_id=link.merchant_id,
        customer_id=link.customer_id,
        survey_id=1,
        occasion="x",
        now=clock.now(),
        days=5,
    )
    assert api.get(f"/r/{survey}").status_code == 404
    r = api.post("/v1/reviews/links", json={"customer_id": "c1", "order_id": "o2"})
    assert r.status_code == 404
    clock.advance(timedelta(days=61))
    assert api.post(url, data={"rating_0": "1"}).status_code == 410
    assert _reviews(session) == [] and _posted(session) == []


def test_export_json_and_csv(api: TestClient) -> None:
    _shop(api)
    r = api.post(_link(api, "c1", "o1"), data={"rating_0": "5", "text_0": 'Nice, "fresh"'})
    assert r.status_code == 200
    assert api.post(_link(api, "c2", "o2"), data={"rating_0": "3"}).status_code == 200
    page = api.get("/v1/reviews", params={"limit": 1}).json()
    assert [(r["customer_id"], r["product_id"], r["rating"]) for r in page["items"]] == [
        ("c1", "tea-1", 5)
    ]
    rest = api.get("/v1/reviews", params={"cursor": page["next_cursor"]}).json()
    assert [(r["customer_id"], r["order_id"], r["rating"]) for r in rest["items"]] == [
        ("c2", "o2", 3)
    ]
    assert rest["next_cursor"] is None
    exported = api.get("/v1/reviews", params={"format": "csv"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["order_id"], r["product_id"], r["rating"], r["text"]) for r in rows] == [
        ("o1", "tea-1", "5", 'Nice, "fresh"'),
        ("o2", "p1", "3", ""),
    ]
    assert api.get("/v1/reviews", params={"format": "xml"}).status_code == 422


def test_erasure_blanks_texts_and_keeps_ratings(api: TestClient, session: Session) -> None:
    _shop(api)
    r = api.post(_link(api, "c1", "o1"), data={"rating_0": "5", "text_0": "From Paul at home"})
    assert r.status_code == 200
    nps = next(s for s in api.get("/v1/surveys").json() if s["code"] == "nps")
    link = api.post(f"/v1/surveys/{nps['id']}/links", json={"customer_id": "c1", "occasion": "x"})
    url = link.json()["url"].removeprefix("http://127.0.0.1:8000")
    assert api.post(url, data={"q_score": "3", "q_comment": "Paul, 12 rue X"}).status_code == 200
    exported = api.get("/v1/customers/c1/export").json()["feedback"]
    assert exported["reviews"][0]["text"] == "From Paul at home"
    assert exported["survey_answers"][0]["score"] == 3
    assert api.delete("/v1/customers/c1").status_code == 204
    [review] = _reviews(session)
    assert (review.rating, review.text) == (5, "[erased]")
    session.expire_all()
    texts = [
        e.payload
        for e in session.execute(select(Event).where(Event.source == "feedback")).scalars()
    ]
    assert texts and all("Paul" not in str(p) for p in texts)
    assert {p.get("score") for p in texts} >= {3}
