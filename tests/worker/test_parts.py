"""`fidele worker --only PARTS` (``FIDELE_WORKER_PARTS``): a worker process runs only some of
its loops, so that an operator can give the journeys and the deliveries processes of their own.
Played with the installed console script: one process advances the journeys' send steps and
delivers nothing, another delivers the messages they queued."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from fidele.campaigns import domain
from fidele.campaigns import service as flows
from fidele.campaigns.models import Enrollment
from fidele.customers.models import Customer
from fidele.db.engine import make_engine
from fidele.db.migrate import upgrade
from fidele.db.session import make_sessionmaker, transaction
from fidele.kit.clock import SystemClock
from fidele.messaging import service as messaging
from fidele.messaging.models import Consent, MessageSend
from fidele.settings import Settings
from fidele.worker.runner import PARTS, BackgroundRunner, parse_parts
from tests.fixtures.console import FIDELE, fidele, user_env
from tests.fixtures.factories import make_tenant

N = 6


def test_parts_are_read_from_a_comma_separated_list() -> None:
    assert parse_parts(None) is None and parse_parts(" ") is None  # every part
    assert parse_parts("journeys, messages") == frozenset({"journeys", "messages"})
    with pytest.raises(ValueError, match="unknown worker part mail: known are jobs, webhooks"):
        parse_parts("journeys,mail")


def test_a_runner_starts_only_the_threads_of_its_parts(engine) -> None:  # type: ignore[no-untyped-def]
    runner = BackgroundRunner(
        engine, SystemClock(), Settings(), parts=frozenset({"journeys", "webhooks"})
    )
    assert runner.running() == ["webhooks", "journeys"]
    before = {t.name for t in threading.enumerate()}
    runner.start()
    try:
        started = {t.name for t in threading.enumerate()} - before
        assert "fidele-campaigns.advance" in started
        assert "fidele-worker" not in started  # no round of scheduled jobs
    finally:
        runner.stop()
    assert BackgroundRunner(engine, SystemClock(), Settings()).running() == list(PARTS)


def _midday_zone(now: datetime) -> str:
    """A zone where it is about noon now: the sends are not held by the quiet hours."""
    offset = 12 - now.hour
    offset = offset - 24 if offset > 14 else offset
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def _due_sends(url: str) -> None:
    """N customers with e-mail consent, each with a due enrollment whose step is a send."""
    eng = make_engine(url, pool_size=2)
    upgrade(eng)
    now = datetime.now(UTC)
    with transaction(make_sessionmaker(eng)) as session:
        tenant = make_tenant(session, now)
        messaging.ensure_template(
            session,
            merchant_id=tenant.merchant_id,
            name="hello",
            topic="lifecycle",
            variants={"en": {"subject": "Hi {{ customer.first_name }}", "text": "Hello!"}},
            now=now,
        )
        definition = domain.parse(
            {
                "name": "hello",
                "trigger": {"event": "cart.abandoned"},
                "steps": [{"send": {"template": "hello"}}],
            }
        )
        flow = flows.save(session, tenant.caller, definition, now)
        flow.status = "active"
        session.execute(
            insert(Customer),
            [
                {
                    "merchant_id": tenant.merchant_id,
                    "programme_id": tenant.programme_id,
                    "external_id": f"c{i}",
                    "email": f"c{i}@example.com",
                    "email_normalized": f"c{i}@example.com",
                    "first_name": f"C{i}",
                    "email_marketing": True,
                    "timezone": _midday_zone(now),
                    "attributes": {},
                    "created_at": now - timedelta(days=30),
                    "updated_at": now,
                }
                for i in range(N)
            ],
        )
        ids = session.execute(select(Customer.id)).scalars().all()
        for rows, model in (
            (
                [
                    {
                        "merchant_id": tenant.merchant_id,
                        "customer_id": c,
                        "topic": "lifecycle",
                        "channel": "email",
                        "granted": True,
                        "at": now,
                        "source": "test",
                    }
                    for c in ids
                ],
                Consent,
            ),
            (
                [
                    {
                        "merchant_id": tenant.merchant_id,
                        "flow_id": flow.id,
                        "version": 1,
                        "customer_id": c,
                        "occurrence": "test",
                        "status": "active",
                        "step": "s1",
                        "due_at": now - timedelta(seconds=1),
                        "entered_at": now,
                        "updated_at": now,
                        "attempts": 0,
                        "context": {},
                    }
                    for c in ids
                ],
                Enrollment,
            ),
        ):
            session.execute(insert(model), rows)
    eng.dispose()


def _state(url: str) -> tuple[int, dict[str, int]]:
    eng = make_engine(url, pool_size=1)
    with eng.connect() as conn:
        active = conn.execute(
            select(func.count()).select_from(Enrollment).where(Enrollment.status == "active")
        ).scalar_one()
        sends = dict(
            conn.execute(
                select(MessageSend.status, func.count()).group_by(MessageSend.status)
            ).all()
        )
    eng.dispose()
    return int(active), sends


def _until(check, what: str, seconds: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.2)


def _worker(env: dict[str, str], cwd: Path, only: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(FIDELE), "worker", "--only", only],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return err


def test_one_worker_advances_the_journeys_another_delivers_their_messages(
    empty_database_url, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    _due_sends(empty_database_url)
    box = tmp_path / "messages"
    env = user_env(empty_database_url, FIDELE_MESSAGES_DIR=str(box))

    journeys = _worker(env, tmp_path, "journeys")
    try:
        _until(lambda: _state(empty_database_url)[0] == 0, "the enrollments to advance")
        time.sleep(2)  # a delivery loop, were there one, would have claimed them by now
        assert _state(empty_database_url) == (0, {"queued": N})
        assert not list(box.rglob("*.eml"))
    finally:
        err = _stop(journeys)
    assert "running: journeys" in err

    deliveries = _worker(env, tmp_path, "messages")
    try:
        _until(lambda: len(list(box.rglob("*.eml"))) == N, "the messages' files")
        _until(lambda: _state(empty_database_url) == (0, {"sent": N}), "the sends recorded")
    finally:
        err = _stop(deliveries)
    assert "running: messages" in err


def test_an_unknown_part_or_only_with_once_is_refused(empty_database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = user_env(empty_database_url)
    bad = fidele("worker", "--only", "journeys,mail", env=env, cwd=tmp_path)
    assert bad.returncode == 2
    assert "unknown worker part mail" in bad.stderr and "--only" in bad.stderr
    both = fidele("worker", "--once", "--only", "journeys", env=env, cwd=tmp_path)
    assert both.returncode == 2 and "not --once" in both.stderr
    env["FIDELE_WORKER_PARTS"] = "jobz"
    from_env = fidele("worker", env=env, cwd=tmp_path)
    assert from_env.returncode == 2 and "FIDELE_WORKER_PARTS" in from_env.stderr
