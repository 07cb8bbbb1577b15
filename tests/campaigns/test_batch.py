"""Advancing a claimed batch (sends decided together through ``messaging.send_many``) ends
exactly as advancing its enrollments one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from fidele.campaigns import domain, engine
from fidele.campaigns import service as flows
from fidele.campaigns.models import Enrollment, EnrollmentStep
from fidele.messaging import service as messaging
from fidele.messaging.consent import record_bounce
from fidele.messaging.models import MessageSend
from tests.campaigns.helpers import enrollment_row
from tests.messaging.conftest import make_customer, make_template

EVENING = datetime(2026, 6, 1, 20, 30, tzinfo=UTC)  # 22:30 in Paris, quiet there; not in UTC


def _flow(session: Session, tenant: Any, name: str, steps: list[dict[str, Any]], **kw: Any) -> Any:
    definition = domain.parse(
        {"name": name, "trigger": {"event": "cart.abandoned"}, "steps": steps, **kw}
    )
    flow = flows.save(session, tenant.caller, definition, EVENING)
    flow.status = "active"
    session.flush()
    return flow


def _state(session: Session) -> tuple[list[Any], list[Any], list[Any]]:
    session.flush()
    session.expire_all()
    keys = dict(session.execute(select(MessageSend.id, MessageSend.key)).all())
    enrollments = session.execute(
        select(
            Enrollment.id,
            Enrollment.status,
            Enrollment.step,
            Enrollment.due_at,
            Enrollment.exit_reason,
            Enrollment.attempts,
            Enrollment.context,
        ).order_by(Enrollment.id)
    ).all()
    history = [
        (
            h.enrollment_id,
            h.step,
            h.kind,
            h.outcome,
            h.reason,
            h.at,
            keys.get(h.detail.get("send_id")),
        )
        for h in session.execute(
            select(EnrollmentStep).order_by(EnrollmentStep.enrollment_id, EnrollmentStep.id)
        ).scalars()
    ]
    ledger = session.execute(
        select(
            MessageSend.key,
            MessageSend.customer_id,
            MessageSend.status,
            MessageSend.reason,
            MessageSend.flow_id,
            MessageSend.step,
            MessageSend.enrollment_id,
            MessageSend.context,
            MessageSend.source,
        ).order_by(MessageSend.key)
    ).all()
    return [tuple(r) for r in enrollments], history, [tuple(r) for r in ledger]


def _claimed(session: Session) -> list[Enrollment]:
    return list(session.execute(select(Enrollment).order_by(Enrollment.id)).scalars())


def test_batch_advancement_equals_one_by_one(session, tenant, monkeypatch):
    make_template(session, tenant)
    messaging.put_policy(
        session, tenant.merchant_id, {"caps": {"email": [{"max": 1, "days": 1}]}}, EVENING
    )
    cart = _flow(
        session,
        tenant,
        "cart",
        [{"send": {"template": "hello"}}, {"wait": {"days": 1}}, {"send": {"template": "hello"}}],
    )
    thanks = _flow(
        session, tenant, "thanks", [{"send": {"template": "hello"}}, {"update": {"tag": "t"}}]
    )
    held = _flow(session, tenant, "held", [{"send": {"template": "hello"}}], holdout=50)
    people = {
        ext: make_customer(session, tenant, ext, **fields)
        for ext, fields in [
            ("ok1", {}),
            ("ok2", {}),
            ("nocons", {"topics": ()}),
            ("paris", {"timezone": "Europe/Paris"}),
            ("busy", {}),  # in two flows: the second send is over the cap
            ("bounced", {}),
            *[(f"h{i}", {}) for i in range(8)],  # the holdout flow keeps some of them out
        ]
    }
    record_bounce(
        session,
        merchant_id=tenant.merchant_id,
        channel="email",
        address="bounced@example.com",
        kind="hard_bounce",
        threshold=3,
        now=EVENING,
    )
    plan = [(cart, p) for p in ("ok1", "nocons", "paris", "busy", "bounced")]
    plan += [(thanks, p) for p in ("ok2", "busy")]
    plan += [(held, f"h{i}") for i in range(8)]
    session.execute(
        insert(Enrollment),
        [
            enrollment_row(
                tenant,
                flow,
                people[ext].id,
                EVENING - timedelta(minutes=1),
                context={"coupon_code": f"C-{ext}"},
            )
            for flow, ext in plan
        ],
    )
    session.flush()

    with session.begin_nested() as one_by_one:
        for enr in _claimed(session):
            engine.advance(session, enr, EVENING)
        expected = _state(session)
        one_by_one.rollback()
    session.expire_all()

    batched: list[int] = []
    real = messaging.send_many

    def spy(session: Session, requests: Any, now: datetime) -> Any:
        batched.append(len(requests))
        return real(session, requests, now)

    monkeypatch.setattr(messaging, "send_many", spy)
    engine.advance_batch(session, _claimed(session), EVENING)
    got = _state(session)
    assert got == expected
    # every send of the batch but busy's two (one customer, two enrollments) went together
    assert batched == [len(plan) - 2]
    enrollments, history, ledger = got
    statuses = {(r[1], r[2], r[3]) for r in ledger}
    assert {("queued", None), ("skipped", "no_consent"), ("skipped", "suppressed")} <= {
        (s, r) for _, s, r in statuses
    }
    assert {s for _, s, _ in statuses} >= {"held_out"}
    outcomes = {(h[2], h[3]) for h in history}
    assert ("send", "deferred") in outcomes  # Paris's quiet hours and busy's cap
    assert ("update", "updated") in outcomes and ("wait", "waiting") in outcomes


def test_a_batch_failing_after_its_rows_are_written_ends_as_one_by_one(
    session, tenant, monkeypatch
):
    """The batch's enrollment rows are written in one statement and marked stored; if the
    batch then fails (here its history insert), the savepoint rolls back and every claimed
    enrollment is advanced again one by one from its stored state: nothing of the failed
    attempt is left, in the database or in the loaded objects."""
    from fidele.campaigns.repository import FlowRepository

    make_template(session, tenant)
    flow = _flow(session, tenant, "cart", [{"send": {"template": "hello"}}, {"wait": {"days": 1}}])
    people = [make_customer(session, tenant, f"f{i}") for i in range(3)]
    session.execute(
        insert(Enrollment),
        [enrollment_row(tenant, flow, p.id, EVENING - timedelta(minutes=1)) for p in people],
    )
    session.flush()
    with session.begin_nested() as one_by_one:
        for enr in _claimed(session):
            engine.advance(session, enr, EVENING)
        expected = _state(session)
        one_by_one.rollback()
    session.expire_all()

    real = FlowRepository.add_history
    calls: list[int] = []

    def fail_once(self: FlowRepository, rows: Any) -> None:
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("history insert failed")
        real(self, rows)

    monkeypatch.setattr(FlowRepository, "add_history", fail_once)
    engine.advance_batch(session, _claimed(session), EVENING)
    assert calls[0] == 6  # the batch: a send and a wait for each of the three
    assert _state(session) == expected
    enrollments = expected[0]
    assert [(r[1], r[2]) for r in enrollments] == [("active", "s2")] * 3
