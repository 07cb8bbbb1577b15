"""Membership kept with real commits: an order lands, the running membership loop moves the
customer in within seconds; the worker's jobs do the same once; the scheduled pass handles
conditions that change with the clock alone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.app import create_app
from fidele.db.session import make_sessionmaker, read_only, transaction
from fidele.events.models import Event
from fidele.kit.clock import FrozenClock
from fidele.segments import membership, service
from fidele.settings import Settings
from fidele.worker.runner import run_due
from tests.fixtures.factories import Tenant, make_tenant, order_body

BUYERS = {"field": "orders.count", "op": "gte", "value": 1}
LAPSED = {"field": "orders.last_days", "op": "gt", "value": 90}


@pytest.fixture
def shop(
    committed_engine: Engine, clock: FrozenClock, settings: Settings
) -> Iterator[tuple[sessionmaker[Session], Tenant, TestClient]]:
    factory = make_sessionmaker(committed_engine)
    with transaction(factory) as session:
        tenant = make_tenant(session, clock.now())
    app = create_app(settings, engine=committed_engine, clock=clock, start_worker=False)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {tenant.key}"
        yield factory, tenant, client


def _segment(factory: sessionmaker[Session], tenant: Tenant, name: str, rule: Any, now) -> int:  # type: ignore[no-untyped-def]
    with transaction(factory) as session:
        return service.create(session, tenant.merchant_id, name=name, rule=rule, now=now).id


def _events(factory: sessionmaker[Session], kind: str, segment_id: int) -> list[Event]:
    with transaction(factory) as session:
        rows = session.execute(select(Event).where(Event.type == kind)).scalars().all()
        return [e for e in rows if e.payload["segment_id"] == segment_id]


def test_the_loop_moves_a_buyer_in_within_seconds(shop, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    factory, tenant, client = shop
    assert client.put("/v1/customers/c1", json={"country": "FR"}).status_code == 201
    seg = _segment(factory, tenant, "Buyers", BUYERS, clock.now())
    loop = membership.MembershipLoop(factory, clock, idle_seconds=0.1)
    loop.start()
    try:
        body = order_body("o1", "c1", placed_at="2026-05-30T10:00:00+00:00")
        assert client.post("/v1/orders", json=body).status_code == 201
        landed = time.monotonic()
        while not _events(factory, "segment.entered", seg) and time.monotonic() - landed < 10:
            time.sleep(0.05)
        waited = time.monotonic() - landed
    finally:
        loop.stop()
    entered = _events(factory, "segment.entered", seg)
    assert len(entered) == 1, f"no segment.entered after {waited:.1f} s"
    assert entered[0].payload == {"segment_id": seg, "segment_name": "Buyers"}
    assert waited < 5
    # a second order changes nothing: no second entry
    body = order_body("o2", "c1", placed_at="2026-05-31T10:00:00+00:00")
    assert client.post("/v1/orders", json=body).status_code == 201
    membership.drain(factory, clock)
    assert len(_events(factory, "segment.entered", seg)) == 1


def test_worker_job_and_refund_leaving(shop, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    factory, tenant, client = shop
    big = {"field": "orders.spent", "op": "gte", "value": 2000}
    seg = _segment(factory, tenant, "Big spenders", big, clock.now())
    body = order_body("o1", "c1", placed_at="2026-05-30T10:00:00+00:00")  # 3000
    assert client.post("/v1/orders", json=body).status_code == 201
    runs = run_due(factory, clock, only={"segments.update_members"}, force=True)
    assert [r.error for r in runs] == [None]
    assert len(_events(factory, "segment.entered", seg)) == 1
    refund = {"id": "r1", "amount": 1500, "occurred_at": "2026-05-31T10:00:00+00:00"}
    r = client.post("/v1/orders/o1/refunds", json=refund)
    assert r.status_code == 201, r.text
    run_due(factory, clock, only={"segments.update_members"}, force=True)
    assert len(_events(factory, "segment.left", seg)) == 1
    assert client.get(f"/v1/segments/{seg}").json()["count"] == 0


def test_scheduled_pass_for_clock_only_conditions(shop, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    factory, tenant, client = shop
    body = order_body("o1", "c1", placed_at="2026-05-30T10:00:00+00:00")
    assert client.post("/v1/orders", json=body).status_code == 201
    seg = _segment(factory, tenant, "Lapsed", LAPSED, clock.now())
    assert not _events(factory, "segment.entered", seg)
    clock.advance(timedelta(days=91))
    runs = run_due(factory, clock, only={"segments.refresh"}, force=True)
    assert [r.error for r in runs] == [None]
    assert len(_events(factory, "segment.entered", seg)) == 1
    # they buy again: the order moves them out at once (no need to wait for the pass)
    again = order_body("o2", "c1", placed_at=clock.now().isoformat())
    assert client.post("/v1/orders", json=again).status_code == 201
    membership.drain(factory, clock)
    assert len(_events(factory, "segment.left", seg)) == 1


def test_consent_given_and_withdrawn_moves_the_customer(shop, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    # A consent is not an event of the log: messaging tells segments (in its transaction), so
    # the next drain moves the customer without waiting for the scheduled pass.
    factory, tenant, client = shop
    assert client.put("/v1/customers/c1", json={"country": "FR"}).status_code == 201
    rule = {"field": "consent.newsletter.email", "op": "eq", "value": True}
    seg = _segment(factory, tenant, "Subscribers", rule, clock.now())
    grant = {"topic": "newsletter", "channel": "email", "granted": True}
    assert client.put("/v1/customers/c1/consent", json=grant).status_code == 200
    membership.drain(factory, clock)
    assert len(_events(factory, "segment.entered", seg)) == 1
    r = client.put("/v1/customers/c1/consent", json={**grant, "granted": False})
    assert r.status_code == 200
    membership.drain(factory, clock)
    assert len(_events(factory, "segment.left", seg)) == 1


def test_two_drains_at_once_announce_each_change_once(shop, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    import threading

    factory, tenant, client = shop
    seg = _segment(factory, tenant, "Buyers", BUYERS, clock.now())
    for i in range(40):
        body = order_body(f"o{i}", f"c{i}", placed_at="2026-05-30T10:00:00+00:00")
        assert client.post("/v1/orders", json=body).status_code == 201
    threads = [
        threading.Thread(target=membership.drain, args=(factory, clock), kwargs={"limit": 7})
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entered = _events(factory, "segment.entered", seg)
    assert len(entered) == 40
    assert len({e.customer_id for e in entered}) == 40


def test_new_insights_move_customers_into_builtin_segments(shop, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    from fidele.analytics import service as analytics
    from fidele.analytics.models import CustomerInsight

    factory, tenant, client = shop
    for i in range(6):
        for k in range(i + 1):
            day = 1 + (i * 7 + k * 13) % 28
            body = order_body(
                f"o{i}-{k}", f"c{i}", placed_at=f"2026-0{1 + k % 5}-{day:02d}T10:00:00Z"
            )
            assert client.post("/v1/orders", json=body).status_code == 201
    membership.drain(factory, clock)
    clock.advance(timedelta(hours=3))  # the nightly analytics refresh, after the segments
    with transaction(factory) as session:
        analytics.refresh(session, tenant.merchant_id, clock.now())
    clock.advance(timedelta(seconds=1))
    with transaction(factory) as session:
        assert membership.refresh_insights(session, clock.now()) == 11  # the built-in ones
        named = dict(
            session.execute(select(CustomerInsight.customer_id, CustomerInsight.segment)).all()
        )
        builtins = {
            s.name: s.id
            for s in service.listing(session, tenant.merchant_id, after_id=0, limit=100)
        }
    entered = [
        e for name, seg in builtins.items() for e in _events(factory, "segment.entered", seg)
    ]
    expected = sorted((c, builtins[n]) for c, n in named.items() if n is not None)
    assert expected
    assert sorted((e.customer_id, e.payload["segment_id"]) for e in entered) == expected
    with transaction(factory) as session:  # nothing newer: nothing recomputed
        assert membership.refresh_insights(session, clock.now()) == 0


def test_the_loop_drains_a_buyer_between_builtin_recomputations(shop, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    """After an analytics refresh the loop recomputes the built-in segments one per
    transaction and drains the dirty customers after each: an order placed meanwhile moves
    its customer after the first recomputation, not after all of them."""
    from fidele.analytics import service as analytics

    factory, tenant, client = shop
    for i in range(4):
        for k in range(i + 1):
            body = order_body(f"o{i}-{k}", f"c{i}", placed_at=f"2026-0{1 + k}-0{1 + i}T10:00:00Z")
            assert client.post("/v1/orders", json=body).status_code == 201
    membership.drain(factory, clock)
    clock.advance(timedelta(hours=3))
    with transaction(factory) as session:
        analytics.refresh(session, tenant.merchant_id, clock.now())
    clock.advance(timedelta(seconds=1))
    seg = _segment(
        factory, tenant, "Regulars", {"field": "orders.count", "op": "gte", "value": 3}, clock.now()
    )
    assert client.post("/v1/orders", json=order_body("new", "c1")).status_code == 201  # 3rd
    drained: list[int] = []
    real_recompute = membership.recompute

    def recompute(session, segment, now):  # type: ignore[no-untyped-def]
        with transaction(read_only(factory)) as other:  # what is committed so far
            rows = other.execute(select(Event).where(Event.type == "segment.entered")).scalars()
            drained.append(sum(1 for e in rows if e.payload["segment_id"] == seg))
        return real_recompute(session, segment, now)

    membership.recompute = recompute  # type: ignore[assignment]
    try:
        assert membership.refresh_insights_between(factory, clock) == 11
    finally:
        membership.recompute = real_recompute  # type: ignore[assignment]
    # c2, c3 entered when saved; c1 by the drain after the first built-in recomputation
    assert drained[0] == 2 and drained[1:] == [3] * 10
    with transaction(factory) as session:
        assert membership.refresh_insights(session, clock.now()) == 0  # all fresh now
        assert membership.stale_on_insights(session) == []
