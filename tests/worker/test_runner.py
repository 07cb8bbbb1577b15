from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import Engine

from fidele.db.session import make_sessionmaker, transaction
from fidele.kit.clock import FrozenClock
from fidele.outbox import service as outbox
from fidele.outbox.models import OutboxMessage
from fidele.worker import registry
from fidele.worker.runner import run_due
from tests.fixtures.factories import make_tenant


def test_jobs_run_when_due_and_once_per_period(
    committed_engine: Engine, clock: FrozenClock
) -> None:
    calls: list[object] = []
    registry.job("test.tick", every=timedelta(minutes=5))(lambda s, now: calls.append(now))
    try:
        factory = make_sessionmaker(committed_engine)
        run_due(factory, clock, only={"test.tick"})
        run_due(factory, clock, only={"test.tick"})
        assert len(calls) == 1
        clock.advance(minutes=5)
        runs = run_due(factory, clock, only={"test.tick"})
        assert len(calls) == 2 and runs[0].ran
    finally:
        registry.jobs.pop("test.tick")


def test_outbox_retries_with_backoff_then_sends(
    committed_engine: Engine, clock: FrozenClock
) -> None:
    factory = make_sessionmaker(committed_engine)
    attempts: list[int] = []

    def flaky(_session, msg: OutboxMessage) -> None:  # type: ignore[no-untyped-def]
        attempts.append(msg.attempts)
        if len(attempts) < 2:
            raise ConnectionError("down")

    outbox.senders["test"] = flaky
    try:
        with transaction(factory) as s:
            t = make_tenant(s, clock.now())
            for _ in range(2):  # the same decision twice queues one message
                outbox.enqueue(
                    s,
                    programme_id=t.programme_id,
                    channel="test",
                    topic="t",
                    dedup_key="m1",
                    payload={"a": 1},
                    now=clock.now(),
                )
        assert outbox.deliver_due(factory, clock.now()) == 0
        assert outbox.deliver_due(factory, clock.now()) == 0  # not due before its backoff
        clock.advance(seconds=31)
        assert outbox.deliver_due(factory, clock.now()) == 1
        with transaction(factory) as s:
            msg = s.query(OutboxMessage).one()
            assert msg.status == "sent" and msg.attempts == 2
    finally:
        outbox.senders.pop("test")


def test_rolled_back_transaction_queues_nothing(
    committed_engine: Engine, clock: FrozenClock
) -> None:
    factory = make_sessionmaker(committed_engine)
    try:
        with transaction(factory) as s:
            t = make_tenant(s, clock.now())
            outbox.enqueue(
                s,
                programme_id=t.programme_id,
                channel="email",
                topic="t",
                dedup_key="m2",
                payload={},
                now=clock.now(),
            )
            raise RuntimeError("request failed")
    except RuntimeError:
        pass
    with transaction(factory) as s:
        assert s.query(OutboxMessage).count() == 0


def test_two_delivery_loops_send_each_message_once(
    committed_engine: Engine, clock: FrozenClock
) -> None:
    """Two loops (as two workers would) drain 300 messages concurrently: disjoint claims, every
    message sent exactly once, and a failing one keeps its backoff."""
    from collections import Counter
    from threading import Lock

    from fidele.outbox.delivery import DeliveryLoop

    factory = make_sessionmaker(committed_engine)
    seen: Counter[int] = Counter()
    lock = Lock()

    def record(_session, msg: OutboxMessage) -> None:  # type: ignore[no-untyped-def]
        if msg.payload.get("fail"):
            raise ConnectionError("refused")
        with lock:
            seen[msg.id] += 1

    outbox.senders["test"] = record
    with transaction(factory) as s:
        t = make_tenant(s, clock.now())
        for i in range(301):
            outbox.enqueue(
                s,
                programme_id=t.programme_id,
                channel="test",
                topic="t",
                dedup_key=f"m{i}",
                payload={"fail": i == 300},
                now=clock.now(),
            )
    loops = [DeliveryLoop(factory, clock, concurrency=4, idle_seconds=0.05) for _ in range(2)]
    try:
        for loop in loops:
            loop.start()
        deadline = time.monotonic() + 120
        while sum(loop.sent for loop in loops) < 300 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for loop in loops:
            loop.stop()
        outbox.senders.pop("test")
    assert len(seen) == 300 and set(seen.values()) == {1}
    with transaction(factory) as s:
        failed = s.query(OutboxMessage).filter(OutboxMessage.status == "pending").one()
        assert failed.attempts == 1 and failed.next_attempt_at == clock.now() + timedelta(
            seconds=30
        )
