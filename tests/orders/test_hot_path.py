"""POST /v1/orders' short path: insert first, look up only on conflict, answer from memory."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from fidele.customers import service as customers
from fidele.customers.models import Customer
from fidele.db.session import make_sessionmaker, transaction
from fidele.errors import IdempotencyConflict
from fidele.orders import service
from fidele.orders.models import Order, OrderLine
from fidele.orders.schemas import OrderIn
from tests.fixtures.factories import Tenant, make_tenant, order_body


def _order(**kw: Any) -> OrderIn:
    return OrderIn.model_validate(order_body(**kw))


def test_new_order_answers_without_reading_back(session: Session, tenant: Tenant, clock) -> None:  # type: ignore[no-untyped-def]
    customers.get_or_create(session, tenant.caller, "c1", clock.now(), source="api")
    seen: list[str] = []
    conn = session.connection()
    listener = lambda *a: seen.append(" ".join(a[2].split()))  # noqa: E731
    event.listen(conn, "before_cursor_execute", listener)
    order, created = service.create(session, tenant.caller, _order(), clock.now())
    out = service.view(session, order, "c1")
    event.remove(conn, "before_cursor_execute", listener)
    # Other domains' handlers (loyalty) add their own statements; the orders path itself
    # neither looks the order up first nor reads it back, and takes no savepoint around it.
    assert created
    assert not [
        q for q in seen if q.startswith("SELECT") and re.search(r"FROM order(s|_lines)\b", q)
    ]
    insert = next(i for i, q in enumerate(seen) if q.startswith("INSERT INTO orders "))
    assert not seen[insert - 1].startswith("SAVEPOINT")
    assert [ln.product_id for ln in out.lines] == ["p1"] and out.refunds == []
    stored = session.execute(select(OrderLine).where(OrderLine.order_id == order.id)).scalars()
    assert [(ln.line_no, ln.quantity) for ln in stored] == [(0, 2)]


def test_conflicting_replay_naming_unknown_customer_creates_nobody(
    session: Session, tenant: Tenant, clock
) -> None:  # type: ignore[no-untyped-def]
    service.create(session, tenant.caller, _order(), clock.now())
    with pytest.raises(IdempotencyConflict):
        service.create(session, tenant.caller, _order(customer_id="c-other"), clock.now())
    assert customers.find(session, tenant.caller, "c-other") is None


def test_replay_with_known_customer_returns_the_first(
    session: Session, tenant: Tenant, clock
) -> None:  # type: ignore[no-untyped-def]
    first, _ = service.create(session, tenant.caller, _order(), clock.now())
    again, created = service.create(session, tenant.caller, _order(), clock.now())
    assert (again.id, created) == (first.id, False)


def test_concurrent_twins_make_one_order(committed_engine: Engine, clock) -> None:  # type: ignore[no-untyped-def]
    factory = make_sessionmaker(committed_engine)
    with transaction(factory) as s:
        tenant = make_tenant(s, clock.now())
        customers.get_or_create(s, tenant.caller, "c1", clock.now(), source="api")
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(4)

    def place() -> None:
        barrier.wait()
        with transaction(factory) as s:
            order, created = service.create(s, tenant.caller, _order(), clock.now())
            results.append((order.id, created))

    threads = [threading.Thread(target=place) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({i for i, _ in results}) == 1 and sorted(c for _, c in results) == [0, 0, 0, 1]
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 1
        assert s.scalar(select(func.count()).select_from(OrderLine)) == 1
        assert s.scalar(select(func.count()).select_from(Customer)) == 1
