"""Flow advancement: due enrollments advanced per second by 2 ``fidele worker`` processes,
each enrollment's step a send (consent, caps and quiet hours checked, a ledger row written,
delivered as an ``.eml`` by the file channel), against a bare loop in the same run that only
claims and updates the same enrollment rows (``FOR UPDATE SKIP LOCKED``, batches of 200).

Creates a scratch PostgreSQL database (createdb/dropdb -h 127.0.0.1 -U postgres), one merchant,
``--customers`` customers with an address and lifecycle consent, one active flow with one send
step, and one due enrollment per customer. The workers are started first (idle), then every
enrollment is made due at once; the time runs until none is active. The bare loop runs before
and after the workers. Run: ``.venv/bin/python bench/flows.py [--customers 20000] [--only
journeys]`` (``--only``: the workers run only those parts, ``fidele worker --only``; the
messages are then delivered afterwards by as many ``--only messages`` workers, timed apart).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, insert, select, text, update

from fidele.campaigns import domain, service
from fidele.campaigns.models import Enrollment, EnrollmentStep
from fidele.customers.models import Customer
from fidele.db.engine import make_engine
from fidele.db.migrate import upgrade
from fidele.db.session import make_sessionmaker, transaction
from fidele.messaging import service as messaging
from fidele.messaging.models import Consent, MessageSend
from fidele.tenancy import service as tenancy
from fidele.tenancy.service import Caller
from ingest import BIN, createdb, dropdb

SECRET = "bench-secret-key"
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def midday_zone(now: datetime) -> str:
    """A zone where it is about noon now: the sends are not held by the quiet hours (21:00 to
    08:00 local by default) whatever the time of the run."""
    offset = 12 - now.hour
    offset = offset - 24 if offset > 14 else offset
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def setup(url: str, n: int) -> int:
    eng = make_engine(url, pool_size=2)
    upgrade(eng)
    factory = make_sessionmaker(eng)
    now = datetime.now(UTC)
    with transaction(factory) as session:
        made = tenancy.create_merchant(session, name="Bench", now=now, server_secret=SECRET)
        caller = Caller(made.merchant_id, made.programme_id, None, frozenset({"admin"}))
        messaging.ensure_template(
            session,
            merchant_id=made.merchant_id,
            name="bench_msg",
            topic="lifecycle",
            variants={
                "en": {
                    "subject": "Hi {{ customer.first_name }}",
                    "text": "Hello!",
                    "html": "<p>Hello!</p>",
                }
            },
            now=now,
        )
        definition = domain.parse(
            {
                "name": "bench",
                "trigger": {"event": "cart.abandoned"},
                "reentry": "always",
                "steps": [{"send": {"template": "bench_msg"}}],
            }
        )
        flow = service.save(session, caller, definition, now)
        flow.status = "active"
        session.execute(
            insert(Customer),
            [
                {
                    "merchant_id": made.merchant_id,
                    "programme_id": made.programme_id,
                    "external_id": f"c{i}",
                    "email": f"c{i}@example.com",
                    "email_normalized": f"c{i}@example.com",
                    "first_name": f"C{i}",
                    "email_marketing": True,
                    "timezone": midday_zone(now),
                    "attributes": {},
                    "created_at": now - timedelta(days=400),
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )
        ids = session.execute(select(Customer.id).order_by(Customer.id)).scalars().all()
        session.execute(
            insert(Consent),
            [
                {
                    "merchant_id": made.merchant_id,
                    "customer_id": c,
                    "topic": "lifecycle",
                    "channel": "email",
                    "granted": True,
                    "at": now,
                    "source": "bench",
                }
                for c in ids
            ],
        )
        session.execute(
            insert(Enrollment),
            [
                {
                    "merchant_id": made.merchant_id,
                    "flow_id": flow.id,
                    "version": 1,
                    "customer_id": c,
                    "occurrence": "bench",
                    "status": "active",
                    "step": "s1",
                    "due_at": FAR,
                    "entered_at": now,
                    "updated_at": now,
                    "attempts": 0,
                    "context": {},
                }
                for c in ids
            ],
        )
    eng.dispose()
    return len(ids)


def reset(url: str) -> None:
    eng = make_engine(url, pool_size=1)
    with eng.begin() as conn:
        conn.execute(delete(EnrollmentStep))
        conn.execute(delete(MessageSend))
        conn.execute(
            update(Enrollment).values(
                status="active", step="s1", due_at=FAR, ended_at=None, exit_reason=None
            )
        )
    eng.dispose()


def make_due(url: str) -> None:
    eng = make_engine(url, pool_size=1)
    with eng.begin() as conn:
        conn.execute(update(Enrollment).values(due_at=datetime.now(UTC) - timedelta(seconds=1)))
    eng.dispose()


def active(url: str) -> int:
    eng = make_engine(url, pool_size=1)
    with eng.connect() as conn:
        n = conn.execute(
            select(func.count()).select_from(Enrollment).where(Enrollment.status == "active")
        ).scalar_one()
    eng.dispose()
    return int(n)


def bare_loop(url: str, n: int) -> float:
    """Claim due enrollments 200 at a time and mark them completed: nothing else."""
    make_due(url)
    eng = make_engine(url, pool_size=1)
    started = time.perf_counter()
    done = 0
    while done < n:
        with eng.begin() as conn:
            ids = (
                conn.execute(
                    select(Enrollment.id)
                    .where(Enrollment.status == "active", Enrollment.due_at <= datetime.now(UTC))
                    .order_by(Enrollment.due_at, Enrollment.id)
                    .limit(200)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not ids:
                break
            now = datetime.now(UTC)
            conn.execute(
                update(Enrollment)
                .where(Enrollment.id.in_(ids))
                .values(status="completed", step="exit", due_at=None, ended_at=now, updated_at=now)
            )
            done += len(ids)
    elapsed = time.perf_counter() - started
    eng.dispose()
    return done / elapsed


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far; 0 once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def backends(url: str) -> list[int]:
    """The PostgreSQL server processes connected to the bench database (the workers')."""
    eng = make_engine(url, pool_size=1)
    with eng.connect() as conn:
        pids = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalars()
        found = list(pids)
    eng.dispose()
    return found


def _start(env: dict[str, str], count: int, only: str | None) -> list[subprocess.Popen[bytes]]:
    args = [str(BIN / "fidele"), "worker", *(["--only", only] if only else [])]
    return [
        subprocess.Popen(
            args,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(count)
    ]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)


def workers(
    url: str, n: int, count: int, messages: Path, only: str | None = None
) -> tuple[float, float, float, float]:
    """Advanced per second by ``count`` idle-started workers; delivered files per second; and
    the CPU time per enrollment advanced (ms) of the worker processes (every thread: the
    advancing loop, the delivery loop and its mail threads) and of their PostgreSQL server
    processes, from the moment the enrollments are due until none is active.

    With ``only`` (``fidele worker --only``, e.g. ``journeys``) the workers run those parts;
    when the messages' delivery is not among them, ``count`` workers ``--only messages`` are
    started once every enrollment has advanced, and the delivery rate is counted from their
    start (the two phases one after the other, as an operator's two pools on separate
    machines would run side by side)."""
    env = {
        **os.environ,
        "FIDELE_DATABASE_URL": url,
        "FIDELE_EMBEDDED_WORKER": "false",
        "FIDELE_MESSAGES_DIR": str(messages),
        "FIDELE_SECRET_KEY": SECRET,
    }
    procs = _start(env, count, only)
    deliverers: list[subprocess.Popen[bytes]] = []
    try:
        time.sleep(6)  # started, migrations checked, first round of jobs done
        servers = backends(url)
        cpu_before = {p: cpu_seconds(p) for p in [*(w.pid for w in procs), *servers]}
        make_due(url)
        started = time.perf_counter()
        while active(url) > 0:
            time.sleep(0.05)
            if time.perf_counter() - started > 600:
                raise SystemExit("enrollments still active after 10 minutes")
        advanced = n / (time.perf_counter() - started)
        servers = sorted(set(servers) | set(backends(url)))
        worker_cpu = sum(cpu_seconds(w.pid) - cpu_before[w.pid] for w in procs)
        server_cpu = sum(cpu_seconds(p) - cpu_before.get(p, 0.0) for p in servers)
        if only and "messages" not in only.split(","):
            _stop(procs)
            procs = []
            deliverers = _start(env, count, "messages")
            started = time.perf_counter()
        while sum(1 for _ in messages.rglob("*.eml")) < n:
            time.sleep(0.1)
            if time.perf_counter() - started > 600:
                break
        delivered = sum(1 for _ in messages.rglob("*.eml")) / (time.perf_counter() - started)
    finally:
        _stop(procs + deliverers)
    return advanced, delivered, worker_cpu / n * 1000, server_cpu / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", default=f"fidele_bench_flows_{os.getpid()}", help="scratch db")
    parser.add_argument(
        "--only",
        default=None,
        help="the workers' parts (fidele worker --only), e.g. journeys: the messages are then "
        "delivered afterwards by as many workers --only messages",
    )
    args = parser.parse_args()
    name = args.db
    url = createdb(name)
    try:
        n = setup(url, args.customers)
        print(f"{n} due enrollments, one send step each; load: {os.getloadavg()}")
        before = bare_loop(url, n)
        reset(url)
        with tempfile.TemporaryDirectory() as tmp:
            advanced, delivered, worker_ms, server_ms = workers(
                url, n, args.workers, Path(tmp), args.only
            )
        reset(url)
        after = bare_loop(url, n)
        print(
            f"bare loop (claim + update rows only, 1 process): {before:,.0f}/s before, "
            f"{after:,.0f}/s after"
        )
        split = args.only and "messages" not in args.only.split(",")
        kind = f"fidele worker --only {args.only}" if args.only else "fidele worker"
        print(
            f"{args.workers} {kind} processes: {advanced:,.0f} enrollments advanced/s "
            f"(send decided, ledger row written); {delivered:,.0f} .eml delivered/s "
            + ("by as many workers --only messages afterwards" if split else "end to end")
            + f"; load: {os.getloadavg()}"
        )
        print(
            f"CPU per enrollment advanced: workers {worker_ms:.3f} ms (all threads, delivery "
            f"{'not ' if split else ''}included) + their PostgreSQL processes "
            f"{server_ms:.3f} ms = {worker_ms + server_ms:.3f} ms"
        )
    finally:
        dropdb(name)


if __name__ == "__main__":
    main()
