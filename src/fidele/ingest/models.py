"""What the shops' webhooks leave to remember between deliveries: each package (Shopify
fulfillment) of an order, so that a webhook about one package can tell whether the whole order
has arrived."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.kit.types import JSONType


class ShopPackage(IdMixin, Base):
    """One fulfillment of an order as the shop last described it: ``live`` (not cancelled),
    its ``lines`` (line id -> quantity; null when only a carrier's event named it) and when
    the carrier delivered it (the first time known stands)."""

    __tablename__ = "shop_packages"
    __table_args__ = (UniqueConstraint("order_id", "package_id"),)

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    package_id: Mapped[str] = mapped_column(String(255))
    live: Mapped[bool] = mapped_column(default=True)
    lines: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime]
