"""Several `fidele worker run-once` processes advancing the same due enrollments: each is
advanced exactly once (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, one writer at a time on
SQLite)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from fidele.campaigns import domain, service
from fidele.campaigns.models import Enrollment, EnrollmentStep
from fidele.customers.models import Customer
from fidele.db.engine import make_engine
from fidele.db.migrate import upgrade
from fidele.db.session import make_sessionmaker, transaction
from tests.fixtures.console import FIDELE, user_env
from tests.fixtures.factories import make_tenant

N = 10_000
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _due_enrollments(url: str) -> None:
    eng = make_engine(url, pool_size=2)
    upgrade(eng)
    factory = make_sessionmaker(eng)
    with transaction(factory) as session:
        tenant = make_tenant(session, NOW)
        definition = domain.parse(
            {
                "name": "bulk",
                "trigger": {"event": "cart.abandoned"},
                "steps": [{"update": {"attributes": {"advanced": True}}}],
            }
        )
        flow = service.save(session, tenant.caller, definition, NOW)
        flow.status = "active"
        customers = [
            {
                "merchant_id": tenant.merchant_id,
                "programme_id": tenant.programme_id,
                "external_id": f"c{i}",
                "attributes": {},
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i in range(N)
        ]
        session.execute(insert(Customer), customers)
        ids = session.execute(select(Customer.id).order_by(Customer.id)).scalars().all()
        session.execute(
            insert(Enrollment),
            [
                {
                    "merchant_id": tenant.merchant_id,
                    "flow_id": flow.id,
                    "version": 1,
                    "customer_id": cid,
                    "occurrence": "bulk",
                    "status": "active",
                    "step": "s1",
                    "due_at": NOW - timedelta(minutes=i % 60),
                    "entered_at": NOW - timedelta(hours=1),
                    "updated_at": NOW,
                    "attempts": 0,
                    "context": {},
                }
                for i, cid in enumerate(ids)
            ],
        )
    eng.dispose()


def test_three_workers_advance_each_due_enrollment_exactly_once(
    empty_database_url, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    _due_enrollments(empty_database_url)
    env = user_env(empty_database_url, FIDELE_MESSAGES_DIR=str(tmp_path / "messages"))
    args = [str(FIDELE), "worker", "run-once", "--now", NOW.isoformat(), "--json"]
    procs = [
        subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    advanced = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out
        rows = json.loads(out)
        advanced.append(sum(r["result"] or 0 for r in rows if r["job"] == "campaigns.advance"))
    assert sum(advanced) == N  # no enrollment claimed by two processes
    eng = make_engine(empty_database_url, pool_size=1)
    with eng.connect() as conn:
        per_enrollment = conn.execute(
            select(EnrollmentStep.enrollment_id, func.count())
            .where(EnrollmentStep.kind == "update")
            .group_by(EnrollmentStep.enrollment_id)
        ).all()
        statuses = conn.execute(
            select(Enrollment.status, func.count()).group_by(Enrollment.status)
        ).all()
    eng.dispose()
    assert len(per_enrollment) == N
    assert {n for _, n in per_enrollment} == {1}  # each update step ran once
    assert statuses == [("completed", N)]
    if "postgresql" in empty_database_url:
        assert sum(1 for n in advanced if n) >= 2, advanced  # they really shared the work
