from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select

from fidele.customers.models import Customer
from fidele.kit.repository import RepositoryBase, insert_unless_exists
from fidele.orders.models import Order, Refund

ORDERS: Table = Order.__table__  # type: ignore[assignment]


class OrderRepository(RepositoryBase[Order]):
    model = Order

    def by_external_id(
        self, merchant_id: int, external_id: str, *, lock: bool = False
    ) -> Order | None:
        stmt = select(Order).where(
            Order.merchant_id == merchant_id, Order.external_id == external_id
        )
        if lock:
            stmt = stmt.with_for_update()
        return self.one_or_none(stmt)

    def insert_new(self, values: dict[str, Any]) -> int | None:
        """Insert the order unless its (merchant, external id) exists: the new id, or None
        (one statement, no savepoint: see :func:`insert_unless_exists`)."""
        return insert_unless_exists(self.session, ORDERS, ["merchant_id", "external_id"], values)

    def page(
        self,
        merchant_id: int,
        *,
        after_id: int,
        limit: int,
        updated_since: datetime | None,
        customer_id: int | None = None,
    ) -> Sequence[tuple[Order, str]]:
        stmt = (
            select(Order, Customer.external_id)
            .join(Customer, Customer.id == Order.customer_id)
            .where(Order.merchant_id == merchant_id, Order.id > after_id)
            .order_by(Order.id)
            .limit(limit)
        )
        if updated_since is not None:
            stmt = stmt.where(Order.updated_at >= updated_since)
        if customer_id is not None:
            stmt = stmt.where(Order.customer_id == customer_id)
        return [(o, ext) for o, ext in self.session.execute(stmt).all()]

    def for_customer(self, customer_id: int) -> Sequence[Order]:
        return self.all(select(Order).where(Order.customer_id == customer_id).order_by(Order.id))

    def refund_by_external_id(self, order_id: int, external_id: str) -> Refund | None:
        return self.session.execute(
            select(Refund).where(Refund.order_id == order_id, Refund.external_id == external_id)
        ).scalar_one_or_none()

    def discrepancies(self, merchant_id: int) -> Sequence[tuple[str, int, int]]:
        """Per source (connector): orders whose figures did not add up, and the sum of their
        adjustments' absolute values."""
        stmt = (
            select(
                Order.source, func.count(), func.coalesce(func.sum(func.abs(Order.adjustment)), 0)
            )
            .where(Order.merchant_id == merchant_id, Order.adjustment != 0)
            .group_by(Order.source)
            .order_by(Order.source)
        )
        return [(src, int(n), int(total)) for src, n, total in self.session.execute(stmt).all()]
