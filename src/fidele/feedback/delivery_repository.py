"""All SQL of delivery experience."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from fidele.feedback.delivery_models import OrderDelivery
from fidele.kit.repository import RepositoryBase, insert_or_twin


class DeliveryRepository(RepositoryBase[OrderDelivery]):
    model = OrderDelivery

    def lock_or_create(
        self, order_id: int, merchant_id: int, customer_id: int, now: datetime
    ) -> OrderDelivery:
        stmt = select(OrderDelivery).where(OrderDelivery.order_id == order_id).with_for_update()
        row = self.one_or_none(stmt)
        if row is None:
            insert_or_twin(
                self.session,
                OrderDelivery(
                    order_id=order_id,
                    merchant_id=merchant_id,
                    customer_id=customer_id,
                    updated_at=now,
                ),
            )
            row = self.one_or_none(stmt)
        assert row is not None
        return row

    def unchecked(self, limit: int) -> Sequence[OrderDelivery]:
        """Delivered with a promise, not judged yet (rows written without the event)."""
        return self.all(
            select(OrderDelivery)
            .where(
                OrderDelivery.delivered_at.is_not(None),
                OrderDelivery.promised_at.is_not(None),
                OrderDelivery.late_checked_at.is_(None),
            )
            .order_by(OrderDelivery.order_id)
            .limit(limit)
        )

    def measured(
        self, merchant_id: int, since: datetime | None, until: datetime
    ) -> Sequence[OrderDelivery]:
        stmt = select(OrderDelivery).where(
            OrderDelivery.merchant_id == merchant_id,
            OrderDelivery.delivered_at.is_not(None),
            OrderDelivery.promised_at.is_not(None),
            OrderDelivery.delivered_at <= until,
        )
        if since is not None:
            stmt = stmt.where(OrderDelivery.delivered_at >= since)
        return self.all(stmt.order_by(OrderDelivery.order_id))
