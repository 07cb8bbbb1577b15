"""Loyalty test helpers: orders and events through the services, balances in one call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from fidele.customers import service as customers
from fidele.errors import FideleError
from fidele.kit.clock import FrozenClock
from fidele.loyalty import members, service
from fidele.loyalty.config import Scale, parse
from fidele.orders import service as orders
from fidele.orders.schemas import OrderIn, RefundIn, StatusIn
from fidele.tenancy.service import Caller
from tests.fixtures.factories import Tenant, order_body


class Shop:
    """Drive one merchant through the services, as the API would, at the clock's time."""

    def __init__(self, session: Session, tenant: Tenant, clock: FrozenClock) -> None:
        self.session, self.tenant, self.clock = session, tenant, clock

    @property
    def caller(self) -> Caller:
        return self.tenant.caller

    def order(self, oid: str, customer: str = "c1", amount: int = 10_000, **kw: Any) -> Any:
        lines = kw.pop("lines", None) or [
            {"product_id": "p1", "category": "apparel", "quantity": 1, "unit_price": amount}
        ]
        body = order_body(oid, customer, placed_at=self.clock.now().isoformat(), lines=lines, **kw)
        order, _ = orders.create(self.session, self.caller, OrderIn(**body), self.clock.now())
        return order

    def status(self, oid: str, status: str) -> None:
        orders.set_status(self.session, self.caller, oid, StatusIn(status=status), self.clock.now())

    def refund(self, oid: str, rid: str, amount: int | None = None) -> None:
        orders.refund(
            self.session, self.caller, oid, RefundIn(id=rid, amount=amount), self.clock.now()
        )

    def customer(self, external_id: str = "c1") -> Any:
        return customers.get_or_create(
            self.session, self.caller, external_id, self.clock.now(), source="test"
        )

    def summary(self, external_id: str = "c1") -> dict[str, Any]:
        return service.summary(self.session, self.customer(external_id), self.clock.now())

    def rules(self, data: dict[str, Any] | Scale, at: datetime | None = None) -> Scale:
        scale = data if isinstance(data, Scale) else parse(data)
        members.set_scale(self.session, self.tenant.programme_id, scale, at or self.clock.now())
        return scale


def parallel(n: int, work: Callable[[int], object]) -> list[str]:
    """Run ``work(i)`` for ``i < n`` in ``n`` threads released together (each opens its own
    connection); returns the codes of the refusals (``FideleError``), re-raises anything
    else in the caller's thread."""
    barrier = threading.Barrier(n)
    refused: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except FideleError as exc:
            with lock:
                refused.append(exc.code)
        except BaseException as exc:
            with lock:
                failures.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return refused


@pytest.fixture
def shop(session: Session, tenant: Tenant, clock: FrozenClock) -> Shop:
    return Shop(session, tenant, clock)
