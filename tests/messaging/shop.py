"""Helpers for the measurement tests: orders through the orders service, as the API does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers import service as customers
from fidele.orders import service as orders
from fidele.orders.models import Order
from fidele.orders.schemas import OrderIn
from tests.fixtures.factories import Tenant, order_body


def place(
    session: Session,
    tenant: Tenant,
    oid: str,
    customer: str,
    products: list[str] | None = None,
    *,
    at: datetime,
    amount: int = 1000,
) -> Order:
    lines = [
        {
            "product_id": p,
            "name": f"Product {p}",
            "category": "cat",
            "quantity": 1,
            "unit_price": amount,
        }
        for p in (products or ["p1"])
    ]
    body = order_body(oid, customer, placed_at=at.isoformat(), lines=lines)
    order, _ = orders.create(session, tenant.caller, OrderIn(**body), at)
    return order


def customer_id(
    session: Session, tenant: Tenant, external_id: str, now: datetime, **kw: Any
) -> int:
    row = customers.get_or_create(session, tenant.caller, external_id, now, source="test")
    for k, v in kw.items():
        setattr(row, k, v)
    session.flush()
    return row.id
