"""The outbox works a batch at a time: one statement claims a batch, one transaction records
its outcomes (sent with nothing to redact: one statement for all; sent with redaction; failed),
and a stopping delivery loop records everything it had claimed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.db.session import make_sessionmaker, transaction
from fidele.kit.clock import FrozenClock
from fidele.outbox import service as outbox
from fidele.outbox.delivery import DeliveryLoop
from fidele.outbox.domain import REDACTED
from fidele.outbox.models import OutboxMessage
from tests.fixtures.factories import Tenant, make_tenant


def _queue(
    session: Session, tenant: Tenant, clock: FrozenClock, payloads: list[dict[str, Any]]
) -> list[OutboxMessage]:
    msgs = [
        outbox.enqueue(
            session,
            programme_id=tenant.programme_id,
            channel="test",
            topic="t",
            dedup_key=f"batch:{i}",
            payload=payload,
            now=clock.now() + timedelta(seconds=i),  # oldest first
        )
        for i, payload in enumerate(payloads)
    ]
    session.commit()
    return msgs


@contextmanager
def _statements(session: Session) -> Iterator[list[str]]:
    """The SQL statements run on the session's connection meanwhile."""
    seen: list[str] = []
    conn = session.connection()

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()).upper())

    event.listen(conn, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(conn, "before_cursor_execute", listen)


def test_claim_takes_the_oldest_due_in_one_statement_and_leases_them(
    session: Session, factory: sessionmaker[Session], tenant: Tenant, clock: FrozenClock
) -> None:
    msgs = _queue(session, tenant, clock, [{"n": i} for i in range(5)])
    later = clock.now() + timedelta(seconds=10)
    with _statements(session) as seen:
        first = outbox.claim_due(factory, later, 3)
    assert [m.id for m in first] == [m.id for m in msgs[:3]]
    assert [s.split()[0] for s in seen if "OUTBOX" in s] == ["UPDATE"]  # ... RETURNING
    assert all(m.locked_until is not None for m in first)
    with factory() as s:
        leases = s.execute(select(OutboxMessage.locked_until).order_by(OutboxMessage.id)).all()
    assert [lease is not None for (lease,) in leases] == [True] * 3 + [False] * 2
    second = outbox.claim_due(factory, later, 10)  # the claimed ones are not taken twice
    assert [m.id for m in second] == [m.id for m in msgs[3:]]
    assert outbox.claim_due(factory, later, 10) == []
    lapsed = outbox.claim_due(factory, later + outbox.LEASE + timedelta(seconds=1), 10)
    assert [m.id for m in lapsed] == [m.id for m in msgs]  # a dead holder's claims lapse


def test_a_batch_of_outcomes_is_recorded_in_one_transaction(
    session: Session, factory: sessionmaker[Session], tenant: Tenant, clock: FrozenClock
) -> None:
    msgs = _queue(
        session,
        tenant,
        clock,
        [{"n": 1}, {"n": 2}, {"n": 3}, {"to": "a@example.org", "n": 4}, {"code": "ABCD-EFGH"}]
        + [{"n": 6}],
    )
    claimed = outbox.claim_due(factory, clock.now() + timedelta(seconds=10), 10)
    assert len(claimed) == 6
    outcomes = [(m, None) for m in claimed[:5]] + [(claimed[5], "ConnectionError: refused")]
    with _statements(session) as seen:
        sent = outbox.record(factory, outcomes, clock.now() + timedelta(seconds=10))
    assert sent == 5
    updates = [s for s in seen if s.startswith("UPDATE OUTBOX")]
    # the three with nothing to redact in one statement (IN), the two redacted in one
    # statement executed for each (both reported once here), the failure in one
    assert len(updates) == 3, updates
    with factory() as s:
        rows = {m.id: m for m in s.execute(select(OutboxMessage)).scalars()}
    for m in msgs[:5]:
        row = rows[m.id]
        assert row.status == "sent" and row.attempts == 1 and row.locked_until is None
    assert [rows[m.id].payload for m in msgs[:3]] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert rows[msgs[3].id].payload == {"to": REDACTED, "n": 4}
    assert rows[msgs[4].id].payload == {"code": "****EFGH"}
    failed = rows[msgs[5].id]
    assert failed.status == "pending" and failed.attempts == 1
    assert failed.last_error == "ConnectionError: refused" and failed.locked_until is None
    assert failed.next_attempt_at == clock.now() + timedelta(seconds=10 + 30)
    assert failed.payload == {"n": 6}


def test_a_stopping_loop_records_every_message_it_claimed(
    committed_engine: Engine, clock: FrozenClock
) -> None:
    """Stopped while 8 x concurrency messages are claimed and most not yet attempted: each is
    attempted and recorded before the loop returns, none is left claimed."""
    factory = make_sessionmaker(committed_engine)
    started = threading.Event()

    def slow(_session: Session, msg: OutboxMessage) -> None:
        started.set()
        time.sleep(0.02)

    outbox.senders["test"] = slow
    with transaction(factory) as s:
        tenant = make_tenant(s, clock.now())
        for i in range(300):
            outbox.enqueue(
                s,
                programme_id=tenant.programme_id,
                channel="test",
                topic="t",
                dedup_key=f"stop:{i}",
                payload={"n": i},
                now=clock.now(),
            )
    loop = DeliveryLoop(factory, clock, concurrency=2, idle_seconds=0.05)
    try:
        loop.start()
        assert started.wait(30)
        loop.stop()
    finally:
        outbox.senders.pop("test")
    with transaction(factory) as s:
        rows = s.execute(select(OutboxMessage.status, OutboxMessage.locked_until)).all()
    sent = [r for r in rows if r.status == "sent"]
    assert len(sent) == loop.sent and 16 <= loop.sent < 300
    assert all(r.locked_until is None for r in rows)  # nothing left claimed
