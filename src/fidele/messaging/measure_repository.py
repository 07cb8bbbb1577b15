"""SQL of the measurement side of messaging (recommendations, tracking, conversions,
broadcasts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from fidele.kit.repository import dialect_insert, insert_unless_exists
from fidele.messaging.measure_models import (
    MessageConversion,
    MessageInteraction,
    ProductRecommendation,
)
from fidele.orders.models import Order, OrderLine
from fidele.tenancy.models import Merchant


class RecommendationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _bought(self):  # type: ignore[no-untyped-def]
        """Product lines of orders that stand: not cancelled, not fully refunded."""
        return (
            select(Order.customer_id, OrderLine.product_id)
            .join(Order, Order.id == OrderLine.order_id)
            .where(
                OrderLine.kind == "product",
                Order.cancelled_at.is_(None),
                Order.status != "cancelled",
                OrderLine.refunded_quantity < OrderLine.quantity,
            )
        )

    def baskets(self, merchant_id: int) -> list[tuple[int, str]]:
        """Distinct (customer id, product id) pairs of the merchant's standing orders."""
        stmt = self._bought().where(Order.merchant_id == merchant_id).distinct()
        return [(c, p) for c, p in self.session.execute(stmt).all()]

    def product_names(self, merchant_id: int) -> dict[str, tuple[str | None, str | None]]:
        """Each product's name and category as its latest line gave them."""
        latest = (
            select(func.max(OrderLine.id))
            .join(Order, Order.id == OrderLine.order_id)
            .where(Order.merchant_id == merchant_id, OrderLine.kind == "product")
            .group_by(OrderLine.product_id)
        )
        stmt = select(OrderLine.product_id, OrderLine.name, OrderLine.category).where(
            OrderLine.id.in_(latest)
        )
        return {p: (n, c) for p, n, c in self.session.execute(stmt).all()}

    def bought_by(self, merchant_id: int, customer_id: int) -> set[str]:
        stmt = self._bought().where(
            Order.merchant_id == merchant_id, Order.customer_id == customer_id
        )
        return {p for _, p in self.session.execute(stmt).all()}

    def replace(self, merchant_id: int, rows: Sequence[dict[str, Any]]) -> None:
        self.session.execute(
            delete(ProductRecommendation).where(ProductRecommendation.merchant_id == merchant_id)
        )
        if rows:
            self.session.execute(insert(ProductRecommendation), list(rows))

    def for_products(
        self, merchant_id: int, products: Sequence[str]
    ) -> Sequence[ProductRecommendation]:
        stmt = (
            select(ProductRecommendation)
            .where(
                ProductRecommendation.merchant_id == merchant_id,
                ProductRecommendation.product_id.in_(list(products)),
            )
            .order_by(ProductRecommendation.product_id, ProductRecommendation.rank)
        )
        return self.session.execute(stmt).scalars().all()

    def computed_at(self, merchant_id: int) -> datetime | None:
        stmt = select(func.max(ProductRecommendation.computed_at)).where(
            ProductRecommendation.merchant_id == merchant_id
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def orders_changed_since(self, merchant_id: int, since: datetime) -> bool:
        stmt = (
            select(Order.id)
            .where(Order.merchant_id == merchant_id, Order.updated_at > since)
            .limit(1)
        )
        return self.session.execute(stmt).first() is not None

    def merchant_ids(self) -> list[int]:
        return list(self.session.execute(select(Merchant.id).order_by(Merchant.id)).scalars())

    def has_orders(self, merchant_id: int) -> bool:
        stmt = select(Order.id).where(Order.merchant_id == merchant_id).limit(1)
        return self.session.execute(stmt).first() is not None


class TrackingRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def touch(self, *, now: datetime, **values: Any) -> None:
        table = MessageInteraction.__table__
        stmt = dialect_insert(self.session)(table).values(
            **values, count=1, first_at=now, last_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["send_id", "kind", "url_hash"],
            set_={"count": table.c.count + 1, "last_at": stmt.excluded.last_at},
        )
        self.session.execute(stmt)

    def last_touch(
        self, customer_id: int, kind: str, placed_at: datetime, since: datetime
    ) -> MessageInteraction | None:
        """The customer's latest ``kind`` interaction inside [since, placed_at]: its last
        repeat within the window, or a first one before the order when repeats went on
        after it."""
        stmt = (
            select(MessageInteraction)
            .where(
                MessageInteraction.customer_id == customer_id,
                MessageInteraction.kind == kind,
                MessageInteraction.first_at <= placed_at,
                MessageInteraction.last_at >= since,
            )
            .order_by(MessageInteraction.last_at.desc(), MessageInteraction.id.desc())
            .limit(1)
        )
        return self.session.execute(stmt).scalars().first()

    def add_conversion(self, values: dict[str, Any]) -> int | None:
        return insert_unless_exists(
            self.session,
            MessageConversion.__table__,
            ["order_id"],
            values,  # type: ignore[arg-type]
        )
