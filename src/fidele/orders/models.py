from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fidele.db.base import Base, IdMixin, TimestampMixin
from fidele.kit.types import BigInt, JSONType


class Order(IdMixin, TimestampMixin, Base):
    """An order as the shop reported it, amounts in minor units of ``currency``."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id"),
        Index("ix_orders_merchant_id_id", "merchant_id", "id"),
        Index("ix_orders_customer_placed", "customer_id", "placed_at"),
        CheckConstraint("refunded_total <= total", name="refund_le_total"),
        CheckConstraint("total >= 0", name="total_nonneg"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    external_id: Mapped[str] = mapped_column(String(255))
    placed_at: Mapped[datetime]
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(BigInt)
    discounts: Mapped[int] = mapped_column(BigInt)
    shipping: Mapped[int] = mapped_column(BigInt)
    tax: Mapped[int] = mapped_column(BigInt)
    # The tax is inside the line, discount and shipping amounts (stored all the same).
    prices_include_tax: Mapped[bool] = mapped_column(default=False)
    # What the shop's total holds beyond lines, discounts, shipping and tax; 0 when they add up.
    adjustment: Mapped[int] = mapped_column(BigInt, default=0)
    total: Mapped[int] = mapped_column(BigInt)
    refunded_total: Mapped[int] = mapped_column(BigInt, default=0)
    status: Mapped[str] = mapped_column(String(20), default="placed")
    payment_status: Mapped[str] = mapped_column(String(20), default="paid")
    paid_at: Mapped[datetime | None] = mapped_column(default=None)
    channel: Mapped[str | None] = mapped_column(String(50), default=None)
    source: Mapped[str] = mapped_column(String(50), default="api")
    shipped_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    payload_hash: Mapped[str] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.line_no", lazy="selectin"
    )
    refunds: Mapped[list[Refund]] = relationship(
        back_populates="order", order_by="Refund.id", lazy="selectin"
    )

    @property
    def net_total(self) -> int:
        return self.total - self.refunded_total


class OrderLine(IdMixin, Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_no"),
        CheckConstraint("quantity > 0", name="qty_pos"),
        CheckConstraint("refunded_quantity <= quantity", name="refund_qty_le_qty"),
    )

    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    line_no: Mapped[int]
    # The shop's id of the line: refunds name it; product and variant say what was bought.
    line_id: Mapped[str | None] = mapped_column(String(255), default=None)
    product_id: Mapped[str] = mapped_column(String(255))
    variant_id: Mapped[str | None] = mapped_column(String(255), default=None)
    name: Mapped[str | None] = mapped_column(String(500), default=None)
    category: Mapped[str | None] = mapped_column(String(255), default=None)
    kind: Mapped[str] = mapped_column(String(20), default="product")
    quantity: Mapped[int]
    unit_price: Mapped[int] = mapped_column(BigInt)
    # This line's share of order-level discounts (largest remainder over line amounts).
    discount: Mapped[int] = mapped_column(BigInt, default=0)
    tax: Mapped[int | None] = mapped_column(BigInt, default=None)
    refunded_quantity: Mapped[int] = mapped_column(default=0)

    order: Mapped[Order] = relationship(back_populates="lines")

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price

    @property
    def net_amount(self) -> int:
        return self.amount - self.discount


class Refund(IdMixin, Base):
    __tablename__ = "refunds"
    __table_args__ = (
        UniqueConstraint("order_id", "external_id"),
        CheckConstraint("amount > 0", name="amount_pos"),
    )

    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    external_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInt)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime]
    payload_hash: Mapped[str] = mapped_column(String(64))

    order: Mapped[Order] = relationship(back_populates="refunds")
