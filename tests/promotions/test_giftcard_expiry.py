"""Expired gift cards: their remaining balance is written off to the merchant's breakage account."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fidele.db.session import make_sessionmaker, transaction
from fidele.kit.clock import FrozenClock
from fidele.ledger import service as ledger
from fidele.ledger.models import Account, Posting
from fidele.promotions import giftcards, tasks
from tests.conftest import T0
from tests.fixtures.factories import make_tenant, order_body
from tests.promotions.conftest import cart
from tests.promotions.test_concurrency import _parallel

DAY = timedelta(days=1)


def _card(api: TestClient, amount: int = 5000) -> str:
    api.put("/v1/promotions/settings", json={"gift_card_validity_days": 30})
    r = api.post("/v1/gift-cards", json={"amount": amount, "currency": "EUR"})
    assert r.status_code == 201, r.text
    return r.json()["code"]


def _breakage(session: Session) -> int:
    rows = session.execute(select(Account).where(Account.kind == "gift_card_breakage")).scalars()
    return sum(a.balance for a in rows)


def _evaluate(api: TestClient, code: str, amount: int) -> dict:
    r = api.post("/v1/checkout/evaluate", json=cart(gift_cards=[{"code": code, "amount": amount}]))
    assert r.status_code == 201, r.text
    return r.json()


def test_remaining_balance_is_written_off_once(
    api: TestClient, session: Session, clock: FrozenClock
) -> None:
    code = _card(api)
    sid = _evaluate(api, code, 2000)["session_id"]
    assert api.post(f"/v1/checkout/{sid}/confirm", json={"order_id": "o-1"}).status_code == 200
    clock.advance(days=29)
    assert tasks.write_off_gift_cards(session, clock.now()) == 0  # not expired yet
    clock.advance(days=2)
    assert tasks.write_off_gift_cards(session, clock.now()) == 1
    assert tasks.write_off_gift_cards(session, clock.now()) == 0  # nothing left: idempotent
    session.commit()
    card = api.get(f"/v1/gift-cards/{code}").json()
    assert (card["balance"], card["status"]) == (0, "expired")
    assert _breakage(session) == 3000
    assert ledger.verify(session).ok
    reasons = _evaluate(api, code, 100)["rejected_codes"]
    assert [r["reason"] for r in reasons] == ["expired"]


def test_money_held_by_an_open_checkout_waits_for_the_session(
    api: TestClient, session: Session, clock: FrozenClock
) -> None:
    code = _card(api)
    sid = _evaluate(api, code, 1500)["session_id"]  # holds 1500, 3500 left on the card
    clock.advance(days=31)
    assert tasks.write_off_gift_cards(session, clock.now()) == 0
    session.commit()
    assert api.get(f"/v1/gift-cards/{code}").json()["status"] == "active"
    assert api.post(f"/v1/checkout/{sid}/cancel").status_code == 200  # released: 5000 on it
    assert tasks.write_off_gift_cards(session, clock.now()) == 1
    session.commit()
    assert _breakage(session) == 5000
    assert api.get(f"/v1/gift-cards/{code}").json()["balance"] == 0


def test_a_refund_onto_an_expired_card_is_written_off_by_the_next_run(
    api: TestClient, session: Session, clock: FrozenClock
) -> None:
    code = _card(api)
    sid = _evaluate(api, code, 5000)["session_id"]  # the whole card pays the order
    api.post(f"/v1/checkout/{sid}/confirm", json={"order_id": "o-1"})
    line = {"product_id": "p1", "quantity": 1, "unit_price": 5500}
    assert api.post("/v1/orders", json=order_body("o-1", lines=[line])).status_code == 201
    clock.advance(days=31)
    assert tasks.write_off_gift_cards(session, clock.now()) == 0  # nothing left on it
    session.commit()
    assert api.post("/v1/orders/o-1/refunds", json={"id": "r1"}).status_code == 201
    assert api.get(f"/v1/gift-cards/{code}").json()["balance"] == 5000
    clock.advance(hours=1)
    assert tasks.write_off_gift_cards(session, clock.now()) == 1
    session.commit()
    assert api.get(f"/v1/gift-cards/{code}").json()["balance"] == 0
    assert ledger.verify(session).ok


def test_parallel_write_offs_post_once(committed_engine: Engine) -> None:
    with transaction(make_sessionmaker(committed_engine)) as s:
        tenant = make_tenant(s, T0)
        for i in range(5):
            giftcards.issue(
                s,
                programme_id=tenant.programme_id,
                merchant_id=tenant.merchant_id,
                amount=1000 + i,
                currency="EUR",
                now=T0,
            )
    later = T0 + timedelta(days=400)  # past the default validity (365 days)
    done = _parallel(committed_engine, lambda s, _: giftcards.write_off_expired(s, later), 8)
    assert sum(done) == 5
    with transaction(make_sessionmaker(committed_engine)) as s:
        postings = s.execute(select(Posting).where(Posting.reason == "gift_card.expired"))
        assert len(postings.scalars().all()) == 5
        assert _breakage(s) == sum(1000 + i for i in range(5))
        assert ledger.verify(s).ok
