"""``send_many``: the batch path gives what ``send`` gives called once per request, in order,
and its caps hold under concurrent batches."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidele.db.session import make_sessionmaker, transaction
from fidele.messaging import measurement, service
from fidele.messaging.consent import record_bounce, set_complaint_open
from fidele.messaging.models import MessageSend
from fidele.messaging.service import SendRequest
from tests.conftest import T0
from tests.fixtures.factories import make_tenant
from tests.messaging.conftest import make_customer, make_template

EVENING = datetime(2026, 6, 1, 20, 30, tzinfo=UTC)  # 22:30 in Paris, quiet there; not in UTC


def _ledger(session: Session) -> list[tuple[object, ...]]:
    session.flush()
    rows = session.execute(
        select(
            MessageSend.key,
            MessageSend.customer_id,
            MessageSend.status,
            MessageSend.reason,
            MessageSend.topic,
            MessageSend.channel,
            MessageSend.step,
            MessageSend.flow_id,
            MessageSend.source,
            MessageSend.context,
            MessageSend.created_at,
        ).order_by(MessageSend.key)
    )
    return [tuple(r) for r in rows]


def _named(session: Session, outcomes: list[service.SendOutcome]) -> list[tuple[object, ...]]:
    """Outcomes with the ledger row named by its key (ids differ between the two runs)."""
    keys = dict(session.execute(select(MessageSend.id, MessageSend.key)).all())
    return [(o.status, o.reason, o.retry_at, keys.get(o.send_id)) for o in outcomes]


def test_send_many_decides_as_send_one_by_one(session, tenant):
    make_template(session, tenant)
    make_template(session, tenant, name="news", topic="newsletter")
    service.put_policy(
        session,
        tenant.merchant_id,
        {"caps": {"email": [{"max": 2, "days": 1}]}, "over_cap": {"winback": "move_on"}},
        T0,
    )
    ok = make_customer(session, tenant, "ok")
    busy = make_customer(session, tenant, "busy", topics=("newsletter", "lifecycle", "winback"))
    no_consent = make_customer(session, tenant, "nocons", topics=())
    bounced = make_customer(session, tenant, "bounced")
    record_bounce(
        session,
        merchant_id=tenant.merchant_id,
        channel="email",
        address="bounced@example.com",
        kind="hard_bounce",
        threshold=3,
        now=T0,
    )
    paris = make_customer(session, tenant, "paris", timezone="Europe/Paris")
    complained = make_customer(session, tenant, "complained")
    set_complaint_open(
        session, merchant_id=tenant.merchant_id, customer_id=complained.id, open=True, now=T0
    )
    # one message of "busy" earlier today: one slot of the 2-a-day cap is left
    earlier = service.send(
        session,
        merchant_id=tenant.merchant_id,
        customer_id=busy.id,
        template="hello",
        topic="lifecycle",
        key="earlier",
        now=EVENING - timedelta(hours=3),
    )
    assert earlier.status == "queued"

    def req(c, key, topic="lifecycle", template="hello", **kw):  # type: ignore[no-untyped-def]
        return SendRequest(
            merchant_id=tenant.merchant_id,
            customer_id=c.id,
            template=template,
            topic=topic,
            key=key,
            context={"coupon_code": key},
            source={"flow_id": 7, "step": "s1", "flow": "f"},
            **kw,
        )

    requests = [
        req(ok, "ok-1"),
        req(no_consent, "nocons-1"),
        req(no_consent, "nocons-t", topic="transactional"),
        req(bounced, "bounced-1"),
        req(bounced, "bounced-t", topic="transactional"),
        req(paris, "paris-1"),  # quiet hours in Paris
        req(paris, "paris-t", topic="transactional"),
        req(complained, "complained-1"),
        req(complained, "complained-t", topic="transactional"),
        req(busy, "busy-1"),  # the last slot of the day
        req(busy, "busy-2"),  # over the cap: lifecycle defers
        req(busy, "busy-3", topic="newsletter", template="news"),  # over the cap: skipped
        req(busy, "busy-4", topic="winback"),  # over the cap: move on
        req(busy, "busy-t", topic="transactional"),  # no cap
        req(busy, "earlier"),  # a key used before the batch
        req(ok, "ok-1"),  # a key used earlier in the batch
        req(ok, "ok-held", hold_out=True),
        req(paris, "paris-1"),  # deferred the first time: decided again, deferred again
    ]
    with session.begin_nested() as one_by_one:
        expected = [
            service.send(
                session,
                merchant_id=r.merchant_id,
                customer_id=r.customer_id,
                template=r.template,
                topic=r.topic,
                key=r.key,
                now=EVENING,
                channel=r.channel,
                context=r.context,
                source=r.source,
                hold_out=r.hold_out,
            )
            for r in requests
        ]
        expected_named, expected_ledger = _named(session, expected), _ledger(session)
        one_by_one.rollback()
    got = service.send_many(session, requests, EVENING)
    assert _named(session, got) == expected_named
    assert _ledger(session) == expected_ledger
    statuses = [(o.status, o.reason) for o in got]
    assert statuses == [
        ("queued", None),
        ("skipped", "no_consent"),
        ("queued", None),
        ("skipped", "suppressed"),
        ("skipped", "suppressed"),
        ("deferred", "quiet_hours"),
        ("queued", None),
        ("skipped", "complaint_open"),
        ("queued", None),
        ("queued", None),
        ("deferred", "cap"),
        ("skipped", "cap"),
        ("skipped", "cap_next_step"),
        ("queued", None),
        ("duplicate", None),
        ("duplicate", None),
        ("held_out", None),
        ("deferred", "quiet_hours"),
    ]
    assert got[14].send_id == earlier.send_id and got[15].send_id == got[0].send_id
    # and the batch again is all duplicates of its own rows (or deferred again)
    again = service.send_many(session, requests, EVENING)
    assert [o.send_id for o in again if o.status != "deferred"] == [
        o.send_id for o in got if o.status != "deferred"
    ]


def test_send_many_keeps_the_programme_holdout_as_send(session, tenant):
    # The merchant's global holdout (measurement settings) holds back the same customers in
    # a batch as one by one; transactional messages are never held back.
    make_template(session, tenant)
    service.put_policy(session, tenant.merchant_id, {"caps": {}}, T0)
    measurement.put(
        session,
        tenant.merchant_id,
        global_holdout_share=5000,
        click_days=5.0,
        open_days=3.0,
        now=T0,
    )
    people = [make_customer(session, tenant, f"c{i}") for i in range(40)]
    requests = [
        SendRequest(
            merchant_id=tenant.merchant_id,
            customer_id=c.id,
            template="hello",
            topic=topic,
            key=f"{topic}-{c.id}",
        )
        for c in people
        for topic in ("lifecycle", "transactional")
    ]
    with session.begin_nested() as one_by_one:
        expected = [
            service.send(
                session,
                merchant_id=r.merchant_id,
                customer_id=r.customer_id,
                template=r.template,
                topic=r.topic,
                key=r.key,
                now=T0,
            ).status
            for r in requests
        ]
        one_by_one.rollback()
    got = [o.status for o in service.send_many(session, requests, T0)]
    assert got == expected
    held = [r.customer_id for r, status in zip(requests, got, strict=True) if status == "held_out"]
    assert 5 <= len(held) <= 35  # about half of 40, by the customers' hash
    assert all(
        r.topic == "lifecycle" for r, st in zip(requests, got, strict=True) if st == "held_out"
    )
    assert all(
        status == "queued"
        for r, status in zip(requests, got, strict=True)
        if r.topic == "transactional"
    )


def test_send_many_unknown_template_or_customer_is_404(session, tenant):
    import pytest

    from fidele.errors import NotFound

    c = make_customer(session, tenant)
    make_template(session, tenant)
    with pytest.raises(NotFound):
        service.send_many(
            session, [SendRequest(tenant.merchant_id, c.id, "nope", "lifecycle", "k")], T0
        )
    with pytest.raises(NotFound):
        service.send_many(
            session, [SendRequest(tenant.merchant_id, c.id + 999, "hello", "lifecycle", "k")], T0
        )
    assert service.send_many(session, [], T0) == []


def test_caps_hold_under_four_concurrent_batches(committed_engine, backend):
    """Four workers sending batches to the same customers (two in the reverse order): the
    per-customer locks keep the caps, and no batch deadlocks another."""
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
            order = ids if w % 2 == 0 else ids[::-1]
            for attempt in range(3):
                batch = [
                    SendRequest(tenant.merchant_id, cid, "hello", "lifecycle", f"w{w}:{cid}:{a}")
                    for cid in order
                    for a in (2 * attempt, 2 * attempt + 1)
                ]
                with transaction(factory) as session:
                    outs = service.send_many(session, batch, T0)
                outcomes.extend(o.status for o in outs)
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
