"""Delivery experience: promised and actual delivery of an order, kept beside the order (one
row per order) so the orders table stays the shop's own record."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base


class OrderDelivery(Base):
    """``late_checked_at`` is set the one time a delivered order is judged (late or not): the
    ``order.delivered_late`` event and the apology gesture happen at most once per order."""

    __tablename__ = "order_deliveries"
    __table_args__ = (
        Index("ix_order_deliveries_merchant_delivered", "merchant_id", "delivered_at"),
    )

    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="RESTRICT"), primary_key=True
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    promised_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    carrier: Mapped[str | None] = mapped_column(String(100), default=None)
    days_late: Mapped[int | None] = mapped_column(default=None)
    late_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime]
