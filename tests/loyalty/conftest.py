"""Loyalty test helpers: orders and events through the services, balances in one call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from fidele.customers import service as customers
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


@pytest.fixture
def shop(session: Session, tenant: Tenant, clock: FrozenClock) -> Shop:
    return Shop(session, tenant, clock)
