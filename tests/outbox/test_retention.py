"""Sent outbox rows keep no spendable code and no address; old sent/dead rows are purged."""

from __future__ import annotations

import json
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fidele.kit.clock import FrozenClock
from fidele.outbox import domain
from fidele.outbox import service as outbox
from fidele.outbox.models import OutboxMessage
from fidele.worker.runner import run_due

RECIPIENT = "gift.recipient.zq@example.org"


def _issue_card(api: TestClient) -> str:
    r = api.post(
        "/v1/gift-cards",
        json={
            "amount": 5000,
            "currency": "EUR",
            "recipient_email": RECIPIENT,
            "message": "Joyeux anniversaire Zoltan",
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def _rows(session: Session) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


def test_sent_gift_card_email_keeps_only_last4_and_no_address(
    api: TestClient, session: Session, factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    code = _issue_card(api)
    [queued] = _rows(session)
    # Until it leaves, the email needs the code and the address.
    assert queued.payload["code"] == code and queued.payload["to"] == RECIPIENT
    assert outbox.deliver_due(factory, clock.now()) == 1
    [sent] = _rows(session)
    assert sent.status == "sent"
    stored = json.dumps(sent.payload)
    plain = code.replace("-", "")
    assert code not in stored and plain not in stored
    assert RECIPIENT not in stored and "Zoltan" not in stored
    assert sent.payload["code"] == "****" + plain[-4:]
    assert sent.payload["amount"] == 5000 and sent.payload["currency"] == "EUR"


def test_purge_deletes_sent_and_dead_rows_past_retention_only(
    api: TestClient, session: Session, factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    _issue_card(api)
    outbox.deliver_due(factory, clock.now())
    programme_id = _rows(session)[0].programme_id
    for key, status in (("dead-1", "dead"), ("pending-1", "pending")):
        msg = outbox.enqueue(
            session,
            programme_id=programme_id,
            channel="email",
            topic="t",
            dedup_key=key,
            payload={"to": RECIPIENT},
            now=clock.now(),
        )
        msg.status = status
    session.commit()
    clock.advance(days=29)
    assert outbox.purge_finished(session, clock.now(), timedelta(days=30)) == 0
    clock.advance(days=2)
    # Through the scheduled job, as the worker runs it (default retention: 30 days).
    [run] = run_due(factory, clock, only={"outbox.purge_sent"})
    assert run.ran
    assert [(m.dedup_key, m.status) for m in _rows(session)] == [("pending-1", "pending")]


def test_redact_is_pure_and_recursive() -> None:
    payload = {
        "to": "a@b.c",
        "code": "GAB2-CD3E-FG4H",
        "items": [{"email": "x@y.z", "amount": 3}],
        "amount": 10,
        "note": None,
    }
    assert domain.redact(payload) == {
        "to": domain.REDACTED,
        "code": "****FG4H",
        "items": [{"email": domain.REDACTED, "amount": 3}],
        "amount": 10,
        "note": None,
    }
