"""Exactly once through a worker crash, and caps that hold under concurrent workers."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from email import message_from_bytes
from email.policy import default

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidele.db.engine import make_engine
from fidele.db.migrate import upgrade
from fidele.db.session import make_sessionmaker, transaction
from fidele.messaging import service
from fidele.messaging.models import MessageSend
from tests.conftest import SECRET, T0
from tests.fixtures.console import FIDELE, user_env
from tests.fixtures.factories import make_tenant
from tests.messaging.conftest import make_customer, make_template


def _wait(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _statuses(factory) -> Counter:  # type: ignore[no-untyped-def]
    with transaction(factory) as s:
        return Counter(s.execute(select(MessageSend.status)).scalars())


def test_a_message_is_sent_exactly_once_through_a_worker_crash(empty_database_url, sink, tmp_path):
    engine = make_engine(empty_database_url, pool_size=2)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    n = 6
    with transaction(factory) as session:
        tenant = make_tenant(session, T0, name="Shop")
        make_template(session, tenant)
        service.put_policy(session, tenant.merchant_id, {"caps": {}}, T0)
        for i in range(n):
            c = make_customer(session, tenant, f"c{i}")
            out = service.send(
                session,
                merchant_id=tenant.merchant_id,
                customer_id=c.id,
                template="hello",
                topic="lifecycle",
                key=f"k{i}",
                now=T0,
            )
            assert out.status == "queued"
    env = user_env(
        empty_database_url,
        FIDELE_SECRET_KEY=SECRET,
        FIDELE_SMTP_URL=sink.url,
        FIDELE_MESSAGING_CONCURRENCY="1",
        FIDELE_MESSAGING_CLAIM_SECONDS="2",
        FIDELE_OUTBOX_IDLE_SECONDS="0.2",
    )
    # the first worker sleeps right after the SMTP server accepted its first message: killed
    # there, before it can record anything
    first = subprocess.Popen(
        [str(FIDELE), "worker"],
        env={**env, "FIDELE_MESSAGING_TEST_PAUSE_AFTER_ACCEPT": "600"},
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "w1.log", "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    try:
        _wait(lambda: len(sink.messages) >= 1)
        time.sleep(0.5)  # it would have sent a second one by now if it were not paused
        assert len(sink.messages) == 1
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert _statuses(factory)["sending"] == 1  # accepted by SMTP, never recorded
    second = subprocess.Popen(
        [str(FIDELE), "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "w2.log", "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    try:
        _wait(lambda: _statuses(factory) == Counter({"sent": n - 1, "unknown": 1}))
        time.sleep(1)  # nothing else arrives
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(20)
    ids = Counter(message_from_bytes(m, policy=default)["Message-ID"] for m in sink.messages)
    assert len(ids) == n and set(ids.values()) == {1}, ids  # each message once, none lost
    with transaction(factory) as s:
        unknown = s.execute(select(MessageSend).where(MessageSend.status == "unknown")).scalar_one()
        assert unknown.reason == "interrupted" and unknown.message_id in ids
    engine.dispose()


def test_caps_hold_under_four_concurrent_workers(committed_engine, backend):
    factory = make_sessionmaker(committed_engine)
    customers = 5
    with transaction(factory) as session:
        tenant = make_tenant(session, T0, name="Shop")
        make_template(session, tenant)
        service.put_policy(
            session, tenant.merchant_id, {"caps": {"email": [{"max": 2, "days": 1}]}}, T0
        )
        ids = [make_customer(session, tenant, f"c{i}").id for i in range(customers)]
    barrier = threading.Barrier(4)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            barrier.wait()
            for attempt in range(6):
                for cid in ids:
                    with transaction(factory) as session:
                        out = service.send(
                            session,
                            merchant_id=tenant.merchant_id,
                            customer_id=cid,
                            template="hello",
                            topic="lifecycle",
                            key=f"w{w}:{cid}:{attempt}",
                            now=T0,
                        )
                    outcomes.append(out.status)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with Session(committed_engine) as s:
        per_customer = dict(
            s.execute(
                select(MessageSend.customer_id, func.count())
                .where(MessageSend.status == "queued")
                .group_by(MessageSend.customer_id)
            ).all()
        )
    assert per_customer == dict.fromkeys(ids, 2), per_customer  # every slot used, none more
    assert Counter(outcomes) == Counter(
        {"queued": 2 * customers, "deferred": 4 * 6 * customers - 2 * customers}
    )


def test_worker_once_delivers_to_the_file_channel(empty_database_url, tmp_path):
    """The development default: no SMTP URL, ``fidele worker --once`` writes .eml files."""
    from tests.fixtures.console import fidele

    engine = make_engine(empty_database_url, pool_size=2)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with transaction(factory) as session:
        tenant = make_tenant(session, T0, name="Shop")
        make_template(session, tenant)
        c = make_customer(session, tenant)
        out = service.send(
            session,
            merchant_id=tenant.merchant_id,
            customer_id=c.id,
            template="hello",
            topic="transactional",
            key="receipt-1",
            now=T0,
        )
    mail = tmp_path / "mail"
    done = fidele(
        "worker",
        "--once",
        "--json",
        env=user_env(empty_database_url, FIDELE_SECRET_KEY=SECRET, FIDELE_MESSAGES_DIR=str(mail)),
    )
    assert done.returncode == 0, done.stderr
    assert (
        '"job": "messaging.deliver"' in done.stdout.replace('":"', '": "')
        or "messaging.deliver" in done.stdout
    )
    eml = mail / str(tenant.merchant_id) / f"{out.send_id}.eml"
    msg = message_from_bytes(eml.read_bytes(), policy=default)
    assert msg["Subject"] == "Hello C1" and msg["List-Unsubscribe"] is None  # transactional
    assert _statuses(factory) == Counter({"sent": 1})
    engine.dispose()
