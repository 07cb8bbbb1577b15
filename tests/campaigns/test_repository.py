"""The batch writes of the flow engine: the enrollment rows of a batch (only the columns its
enrollments changed) and the history rows (columns left out take their defaults)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from fidele.campaigns import domain
from fidele.campaigns import service as flows
from fidele.campaigns.models import Enrollment, EnrollmentStep
from fidele.campaigns.repository import FlowRepository
from tests.campaigns.helpers import enrollment_row
from tests.messaging.conftest import make_customer

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _enrollments(session: Session, tenant, n: int) -> list[Enrollment]:  # type: ignore[no-untyped-def]
    definition = domain.parse(
        {
            "name": "repo",
            "trigger": {"event": "cart.abandoned"},
            "steps": [{"wait": {"days": 1}}, {"update": {"tag": "t"}}],
        }
    )
    flow = flows.save(session, tenant.caller, definition, NOW)
    people = [make_customer(session, tenant, f"c{i}") for i in range(n)]
    session.execute(
        insert(Enrollment),
        [
            enrollment_row(tenant, flow, p.id, NOW, context={"order_id": 7, "n": i})
            for i, p in enumerate(people)
        ],
    )
    return list(session.execute(select(Enrollment).order_by(Enrollment.id)).scalars())


def _stored(session: Session) -> list[tuple[object, ...]]:
    session.expire_all()
    return [
        (e.status, e.step, e.due_at, e.updated_at, e.ended_at, e.exit_reason, e.attempts, e.context)
        for e in session.execute(select(Enrollment).order_by(Enrollment.id)).scalars()
    ]


def test_a_batch_writes_what_each_enrollment_changed_and_keeps_the_rest(session, tenant):  # type: ignore[no-untyped-def]
    ended, moved, retried = _enrollments(session, tenant, 3)
    later = NOW + timedelta(days=1)
    ended.status, ended.ended_at, ended.exit_reason, ended.due_at = "completed", NOW, "end", None
    moved.step, moved.due_at, moved.context = "s2", later, {**moved.context, "coupon_code": "X"}
    retried.attempts, retried.due_at = 2, later
    for e in (ended, moved, retried):
        e.updated_at = NOW + timedelta(seconds=1)

    FlowRepository(session).write_enrollments([ended, moved, retried])
    # the written state is the stored state: nothing left for the unit of work to flush
    assert not any(session.is_modified(e) for e in (ended, moved, retried))
    tick = NOW + timedelta(seconds=1)
    assert _stored(session) == [
        ("completed", "s1", None, tick, NOW, "end", 0, {"order_id": 7, "n": 0}),
        ("active", "s2", later, tick, None, None, 0, {"order_id": 7, "n": 1, "coupon_code": "X"}),
        ("active", "s1", later, tick, None, None, 2, {"order_id": 7, "n": 2}),
    ]


def test_a_batch_that_changed_one_column_writes_only_that_one(session, tenant):  # type: ignore[no-untyped-def]
    first, second = _enrollments(session, tenant, 2)
    first.status = "exited"
    # the stored context changes behind the loaded objects: a batch that did not change the
    # context does not write it back
    table = Enrollment.__table__
    session.connection().execute(update(table).values(context={"elsewhere": True}))

    FlowRepository(session).write_enrollments([first, second])
    assert not any(session.is_modified(e) for e in (first, second))
    assert _stored(session) == [
        ("exited", "s1", NOW, NOW, None, None, 0, {"elsewhere": True}),
        ("active", "s1", NOW, NOW, None, None, 0, {"elsewhere": True}),
    ]


def test_history_rows_without_optional_columns_take_their_defaults(session, tenant):  # type: ignore[no-untyped-def]
    (enr,) = _enrollments(session, tenant, 1)
    base = {
        "merchant_id": tenant.merchant_id,
        "enrollment_id": enr.id,
        "customer_id": enr.customer_id,
        "at": NOW,
        "step": "s1",
        "kind": "wait",
    }
    FlowRepository(session).add_history(
        [{**base, "outcome": "waiting"}, {**base, "outcome": "timeout"}]
    )
    FlowRepository(session).add_history(
        [{**base, "outcome": "sent", "reason": "why", "detail": {"send_id": 3}, "at": NOW}]
    )
    rows = session.execute(
        select(
            EnrollmentStep.outcome,
            EnrollmentStep.reason,
            EnrollmentStep.detail,
            EnrollmentStep.at,
        ).order_by(EnrollmentStep.id)
    ).all()
    assert [tuple(r) for r in rows] == [
        ("waiting", None, {}, NOW),
        ("timeout", None, {}, NOW),
        ("sent", "why", {"send_id": 3}, NOW),
    ]
