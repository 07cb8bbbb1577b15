"""The worker as an operator runs it: ``fidele worker`` subprocesses (the installed console
script) against the test database, delivering to a loopback HTTP receiver in this process.

On PostgreSQL two workers run side by side; on SQLite (one process at a time, as the README
says) the second worker starts once the first is dead."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fidele.kit.clock import SystemClock
from fidele.outbox import service as outbox
from fidele.outbox.models import OutboxMessage
from fidele.webhooks import service as webhooks
from fidele.webhooks.models import WebhookEndpoint
from fidele.worker.runner import LEASE
from tests.fixtures.factories import SECRET, Tenant, make_tenant

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Receiver:
    url: str = ""
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    hang_first: bool = False  # hold the first request open (a slow receiver) until released
    release: threading.Event = field(default_factory=threading.Event)
    first_arrived: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            first = not rec.first_arrived.is_set()
            rec.first_arrived.set()
            if first and rec.hang_first:
                rec.release.wait(60)
                return  # the worker that sent it is dead by now: nobody reads an answer
            rec.calls.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rec.url = f"http://127.0.0.1:{server.server_port}/hook"
    yield rec
    rec.release.set()
    server.shutdown()


def start_worker(engine: Engine, log: Path, **env: str) -> subprocess.Popen[bytes]:
    full = {
        **os.environ,
        "FIDELE_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "FIDELE_SECRET_KEY": SECRET,
        "FIDELE_OUTBOX_IDLE_SECONDS": "0.2",
        **env,
    }
    cli = Path(sys.executable).parent / "fidele"
    out = log.open("ab")
    return subprocess.Popen(
        [str(cli), "worker", "--interval", "1"], env=full, stdout=out, stderr=out
    )


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)


def wait_for(check: Callable[[], Any], seconds: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise AssertionError(f"{what} not within {seconds} s; worker output:\n{tail}")


def queue_webhook(engine: Engine, url: str, now: datetime) -> tuple[Tenant, int]:
    """A merchant with an endpoint at ``url`` and one webhook pending in the outbox."""
    with Session(engine) as s:
        tenant = make_tenant(s, now)
        ep = webhooks.create(
            s, merchant_id=tenant.merchant_id, url=url, topics=[], now=now, allow_private=True
        )
        msg = outbox.enqueue(
            s,
            programme_id=tenant.programme_id,
            merchant_id=tenant.merchant_id,
            channel="webhook",
            topic="loyalty.points_earned",
            dedup_key="points:1",
            payload={"endpoint_id": ep.id, "body": {"topic": "loyalty.points_earned"}},
            now=now,
        )
        s.commit()
        return tenant, msg.id


def statuses(engine: Engine) -> dict[str, str]:
    with Session(engine) as s:
        rows = s.execute(select(OutboxMessage.channel, OutboxMessage.status)).all()
    return {channel: status for channel, status in rows}


def test_stock_worker_delivers_webhooks_and_emails(
    committed_engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    """`fidele worker` alone, no API process ever started: its webhook and email senders are
    registered by the same discovery as the API's."""
    now = SystemClock().now()
    tenant, msg_id = queue_webhook(committed_engine, receiver.url, now)
    with Session(committed_engine) as s:
        outbox.enqueue(
            s,
            programme_id=tenant.programme_id,
            channel="email",
            topic="promotions.coupon",
            dedup_key="mail:1",
            payload={"to": "a@example.com"},
            now=now,
        )
        s.commit()
    log = tmp_path / "worker.log"
    proc = start_worker(committed_engine, log)
    try:
        wait_for(lambda: receiver.calls, 60, "the webhook", log)
        wait_for(
            lambda: statuses(committed_engine) == {"webhook": "sent", "email": "sent"},
            30,
            "both messages marked sent",
            log,
        )
    finally:
        stop(proc)
    headers, body = receiver.calls[0]
    expected = hmac.new(tenant.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Fidele-Signature"] == f"sha256={expected}"
    assert headers["X-Fidele-Delivery"] == str(msg_id)
    assert len(receiver.calls) == 1


def test_killed_worker_mid_delivery_is_taken_over(
    committed_engine: Engine, receiver: Receiver, tmp_path: Path, backend: str
) -> None:
    """kill -9 the worker while its POST is in flight: another worker delivers the message once
    the short claim lapses (it is not renewed by a dead process), well within 30 s."""
    receiver.hang_first = True
    _, msg_id = queue_webhook(committed_engine, receiver.url, SystemClock().now())
    log = tmp_path / "workers.log"
    first = start_worker(committed_engine, log)
    second = None
    try:
        assert receiver.first_arrived.wait(60), log.read_text(errors="replace")[-3000:]
        if backend == "postgresql":
            second = start_worker(committed_engine, log)
            time.sleep(2)  # the second worker is polling while the first still holds the claim
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed = time.monotonic()
        if second is None:
            second = start_worker(committed_engine, log)
        wait_for(lambda: receiver.calls, 45, "the delivery by the second worker", log)
        took = time.monotonic() - killed
        wait_for(lambda: statuses(committed_engine) == {"webhook": "sent"}, 30, "sent", log)
    finally:
        stop(first, *([second] if second else []))
    assert took < 30, f"taken over after {took:.1f} s"
    assert receiver.calls[0][0]["X-Fidele-Delivery"] == str(msg_id)  # the same id as the first try


def test_killed_job_holder_is_taken_over(
    committed_engine: Engine, tmp_path: Path, backend: str
) -> None:
    """kill -9 the worker running a long job: its lease is no longer renewed and another worker
    runs the job within 30 s (the lease was 10 minutes, unrenewed)."""
    marks = tmp_path / "slow.txt"
    marks.touch()
    env = {
        "FIDELE_EXTRA_MODULES": "tests.worker.slow_job",
        "FIDELE_TEST_SLOW_FILE": str(marks),
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "workers.log"

    def started_by() -> list[str]:
        return [line.split()[1] for line in marks.read_text().splitlines()]

    first = start_worker(committed_engine, log, **env)
    second = None
    try:
        wait_for(lambda: started_by() == [str(first.pid)], 90, "the slow job", log)
        if backend == "postgresql":
            second = start_worker(committed_engine, log, **env)
            # past one lease: the heartbeat renews it, so the second worker stays out
            time.sleep(LEASE.total_seconds() + 5)
            assert started_by() == [str(first.pid)], "the lease must keep the second worker out"
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed = time.monotonic()
        if second is None:
            second = start_worker(committed_engine, log, **env)
        runner = second
        wait_for(lambda: len(started_by()) == 2, 60, "the job on the second worker", log)
        took = time.monotonic() - killed
    finally:
        stop(first, *([second] if second else []))
    assert started_by() == [str(first.pid), str(runner.pid)]
    assert took < 30, f"taken over after {took:.1f} s"


def test_endpoint_deactivated_by_another_process_stops_within_seconds(
    committed_engine: Engine, receiver: Receiver, tmp_path: Path
) -> None:
    """A running worker keeps endpoints in memory for ROUTING_TTL_SECONDS: an endpoint
    deactivated by another process (here this one, as the API would) gets nothing queued
    once that time has passed."""
    tenant, _ = queue_webhook(committed_engine, receiver.url, SystemClock().now())
    log = tmp_path / "worker.log"
    proc = start_worker(committed_engine, log)
    try:
        wait_for(lambda: receiver.calls, 60, "the first webhook", log)  # the endpoint is cached
        with Session(committed_engine) as s:
            endpoint_id = s.execute(select(WebhookEndpoint.id)).scalar_one()
            webhooks.deactivate(s, merchant_id=tenant.merchant_id, endpoint_id=endpoint_id)
            s.commit()
        time.sleep(webhooks.ROUTING_TTL_SECONDS + 0.5)
        with Session(committed_engine) as s:  # queued before the deactivation was seen here
            outbox.enqueue(
                s,
                programme_id=tenant.programme_id,
                merchant_id=tenant.merchant_id,
                channel="webhook",
                topic="loyalty.points_earned",
                dedup_key="points:2",
                payload={"endpoint_id": endpoint_id, "body": {"topic": "loyalty.points_earned"}},
                now=SystemClock().now(),
            )
            s.commit()

        def all_done() -> bool:
            with Session(committed_engine) as s:
                rows = s.execute(select(OutboxMessage.status)).scalars().all()
            return len(rows) == 2 and set(rows) == {"sent"}

        wait_for(all_done, 30, "the second message done", log)
    finally:
        stop(proc)
    assert len(receiver.calls) == 1
