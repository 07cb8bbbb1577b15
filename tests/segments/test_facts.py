"""The customers' order facts (``customer_order_facts``) stay exactly what their orders say
through every path that writes orders: the API (placed, cancelled, refunded, replayed), the
bulk import of a file, the demo's bulk build; and the rules that read them agree."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers.models import Customer
from fidele.db.session import make_sessionmaker, transaction
from fidele.demo import service as demo
from fidele.ingest.importers import runner
from fidele.kit.clock import FrozenClock
from fidele.orders import service as orders
from fidele.orders.models import Order
from fidele.orders.schemas import OrderIn
from fidele.segments import service
from fidele.segments.models import RECENT_K, CustomerOrderFacts
from tests.fixtures.factories import Tenant, make_tenant, order_body
from tests.ingest.importing import order_row, write_csv


def expected(session: Session, customer_id: int) -> dict[str, Any] | None:
    """The facts recomputed in Python from the customer's order rows (None: no counted
    order)."""
    rows = session.execute(select(Order).where(Order.customer_id == customer_id)).scalars()
    counted = sorted(
        (o for o in rows if o.status != "cancelled"),
        key=lambda o: (o.placed_at, o.id),
        reverse=True,
    )
    if not counted:
        return None
    times = [o.placed_at for o in counted]
    return {
        "orders_count": len(counted),
        "spent": sum(o.total - o.refunded_total for o in counted),
        "first_at": min(times),
        "last_at": max(times),
        **{f"recent_{k}": times[k - 1] if k <= len(times) else None for k in range(1, 6)},
    }


def stored(session: Session, customer_id: int) -> dict[str, Any] | None:
    session.expire_all()
    row = session.get(CustomerOrderFacts, customer_id)
    if row is None:
        return None
    cols = ["orders_count", "spent", "first_at", "last_at"]
    cols += [f"recent_{k}" for k in range(1, RECENT_K + 1)]
    return {c: getattr(row, c) for c in cols}


def customer_id(session: Session, merchant_id: int, external: str) -> int:
    stmt = select(Customer.id).where(
        Customer.merchant_id == merchant_id, Customer.external_id == external
    )
    return int(session.execute(stmt).scalar_one())


def at(days_ago: float, now: datetime) -> str:
    return (now - timedelta(days=days_ago)).isoformat()


def test_api_orders_cancellations_refunds_and_replays_keep_the_facts(
    api: TestClient, session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    now = clock.now()
    two_in_a_year = {"field": "orders.count", "op": "gte", "value": 2, "within_days": 365}
    m = tenant.merchant_id
    for i, days in enumerate([400, 200, 100, 50, 20, 10, 5]):
        body = order_body(f"o{i}", "c1", placed_at=at(days, now))
        assert api.post("/v1/orders", json=body).status_code == 201
    cid = customer_id(session, m, "c1")
    facts = stored(session, cid)
    assert facts == expected(session, cid)
    assert facts is not None and facts["orders_count"] == 7 and facts["spent"] == 7 * 3000
    # the replay of an order changes nothing
    replay = api.post("/v1/orders", json=order_body("o6", "c1", placed_at=at(5, now)))
    assert replay.status_code == 200, replay.text
    assert stored(session, cid) == facts
    # cancelled: it counts for nothing; the 2nd most recent order moves back
    assert api.post("/v1/orders/o6/status", json={"status": "cancelled"}).status_code == 200
    assert api.post("/v1/orders/o5/status", json={"status": "delivered"}).status_code == 200
    after = stored(session, cid)
    assert after == expected(session, cid)
    assert (
        after is not None and after["orders_count"] == 6 and after["recent_1"] == facts["recent_2"]
    )
    # refunded: what was spent goes down
    refund = {"id": "r1", "amount": 1000}
    assert api.post("/v1/orders/o5/refunds", json=refund).status_code in (200, 201)
    refunded = stored(session, cid)
    assert refunded == expected(session, cid)
    assert refunded is not None and refunded["spent"] == 6 * 3000 - 1000
    # the rules that read them: >= 2 orders in the year (o5, o4, ... left), spent, last_days
    assert service.count(session, merchant_id=m, rule=two_in_a_year, now=now) == 1
    rule = {"field": "orders.count", "op": "gte", "value": 6, "within_days": 365}
    assert service.count(session, merchant_id=m, rule=rule, now=now) == 0  # above RECENT_K: 5
    rule = {"field": "orders.count", "op": "eq", "value": 5, "within_days": 365}
    assert service.count(session, merchant_id=m, rule=rule, now=now) == 1
    rule = {"field": "orders.spent", "op": "eq", "value": 6 * 3000 - 1000}
    assert service.count(session, merchant_id=m, rule=rule, now=now) == 1
    # a customer whose every order is cancelled has no facts: no order
    assert (
        api.post("/v1/orders", json=order_body("x1", "c2", placed_at=at(3, now))).status_code == 201
    )
    assert api.post("/v1/orders/x1/status", json={"status": "cancelled"}).status_code == 200
    c2 = customer_id(session, m, "c2")
    assert stored(session, c2) is None and expected(session, c2) is None
    rule = {"field": "orders.count", "op": "eq", "value": 0}
    assert service.count(session, merchant_id=m, rule=rule, now=now) == 1
    # erased (GDPR): the orders keep their amounts, the customer matches no rule any more
    assert api.delete("/v1/customers/c1").status_code == 204
    assert stored(session, cid) == expected(session, cid)
    assert service.count(session, merchant_id=m, rule=two_in_a_year, now=now) == 0


def test_bulk_import_of_a_file_keeps_the_facts(
    factory: sessionmaker[Session],
    session: Session,
    tenant: Tenant,
    clock: FrozenClock,
    tmp_path: Path,
    api: TestClient,
) -> None:
    # one customer already has an order through the API; the file adds to it
    assert api.post("/v1/orders", json=order_body("live", "c-1")).status_code == 201
    path = write_csv(tmp_path / "orders.csv", [order_row(i) for i in range(23)])
    summary = runner.run(factory, tenant.caller, path, runner.Options("orders"), clock)
    assert summary.created == 23
    ids = [customer_id(session, tenant.merchant_id, f"c-{i}") for i in range(5)]
    for cid in ids:
        assert stored(session, cid) == expected(session, cid), cid
    assert stored(session, ids[1])["orders_count"] == 6  # type: ignore[index]
    # the same file again creates nothing and changes nothing
    before = [stored(session, cid) for cid in ids]
    runner.run(factory, tenant.caller, path, runner.Options("orders"), clock)
    assert [stored(session, cid) for cid in ids] == before


def test_the_demo_bulk_build_and_the_step_by_step_build_give_the_same_facts(
    factory: sessionmaker[Session], session: Session, clock: FrozenClock
) -> None:
    """The demo's bulk build writes rows without events (facts rebuilt at the end); its
    step-by-step reference goes through the orders service (facts kept by the handler)."""
    now = clock.now()
    built = [
        demo.build(factory, seed=3, n_customers=40, now=now, server_secret="s", reference=ref)
        for ref in (True, False)
    ]
    states = []
    for shop in built:
        stmt = select(Customer.id, Customer.external_id).where(
            Customer.programme_id == shop.programme_id
        )
        people = session.execute(stmt).all()
        assert people
        for cid, _ in people:
            assert stored(session, cid) == expected(session, cid), cid
        states.append(sorted((ext, str(stored(session, cid))) for cid, ext in people))
    assert states[0] == states[1]
    assert any("orders_count" in facts for _, facts in states[0])


def test_rebuild_and_refresh_agree_with_the_orders(
    session: Session, tenant: Tenant, clock: FrozenClock, api: TestClient
) -> None:
    now = clock.now()
    for i in range(4):
        body = order_body(f"r{i}", f"k{i % 2}", placed_at=at(30 * i, now))
        assert api.post("/v1/orders", json=body).status_code == 201
    ids = [customer_id(session, tenant.merchant_id, f"k{i}") for i in range(2)]
    kept = [stored(session, cid) for cid in ids]
    service.rebuild_order_facts(session, tenant.merchant_id)
    assert [stored(session, cid) for cid in ids] == kept == [expected(session, c) for c in ids]
    service.refresh_order_facts(session, ids + ids)
    assert [stored(session, cid) for cid in ids] == kept


def test_two_orders_of_one_customer_written_at_once_are_both_counted(
    committed_engine: Engine, clock: FrozenClock
) -> None:
    """Two transactions each place an order for the same customer: whichever commits last
    recomputes the facts after the other's order is visible (PostgreSQL: the customer's row
    is locked first; SQLite: one writer at a time)."""
    factory = make_sessionmaker(committed_engine)
    now = clock.now()
    with transaction(factory) as session:
        tenant = make_tenant(session, now)
        orders.create(session, tenant.caller, _order("first", now), now)
    first_done = threading.Event()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            first_done.wait(10)
            with transaction(factory) as s2:
                orders.create(s2, tenant.caller, _order("third", now), now)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    worker = threading.Thread(target=second)
    worker.start()
    with transaction(factory) as s1:
        orders.create(s1, tenant.caller, _order("second", now), now)
        first_done.set()
        worker.join(0.5)  # the second writer is now blocked on this transaction (or waits)
    worker.join(30)
    assert not errors, errors
    with transaction(factory) as session:
        cid = customer_id(session, tenant.merchant_id, "c1")
        facts = stored(session, cid)
        assert facts == expected(session, cid)
        assert facts is not None and facts["orders_count"] == 3


def _order(external: str, now: datetime) -> OrderIn:
    return OrderIn.model_validate(order_body(external, "c1", placed_at=now.isoformat()))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    placed=st.lists(
        st.tuples(st.integers(0, 9), st.integers(0, 5000), st.booleans()), min_size=1, max_size=9
    )
)
def test_orders_counted_in_one_by_one_equal_the_recomputation(
    session: Session, tenant: Tenant, clock: FrozenClock, placed: list[tuple[int, int, bool]]
) -> None:
    """The upsert of a new order (any order of arrival, equal times, a recomputation now and
    then in between) leaves what a recomputation from the orders gives."""
    now = clock.now()
    savepoint = session.begin_nested()
    try:
        person = Customer(
            merchant_id=tenant.merchant_id,
            programme_id=tenant.programme_id,
            external_id="p",
            attributes={},
            created_at=now,
            updated_at=now,
        )
        session.add(person)
        session.flush()
        for k, (day, total, recompute) in enumerate(placed):
            order = Order(
                merchant_id=tenant.merchant_id,
                programme_id=tenant.programme_id,
                customer_id=person.id,
                external_id=f"p{k}",
                placed_at=now - timedelta(days=day),
                currency="EUR",
                subtotal=total,
                discounts=0,
                shipping=0,
                tax=0,
                total=total,
                refunded_total=0,
                status="placed",
                payload_hash="x",
                created_at=now,
                updated_at=now,
            )
            session.add(order)
            session.flush()
            service.count_new_order(session, order)
            if recompute:
                service.refresh_order_facts(session, [person.id])
        assert stored(session, person.id) == expected(session, person.id)
    finally:
        savepoint.rollback()
