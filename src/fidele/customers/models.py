from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin, TimestampMixin
from fidele.kit.types import JSONType


class Customer(IdMixin, TimestampMixin, Base):
    """A shop's customer. ``external_id`` is the shop's own id; erasure blanks every personal
    field and replaces the external id by an opaque token, keeping the row for totals."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("merchant_id", "external_id"),
        Index("ix_customers_merchant_id_id", "merchant_id", "id"),
        Index("ix_customers_programme_email", "programme_id", "email_normalized"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    external_id: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    email_normalized: Mapped[str | None] = mapped_column(String(320), default=None)
    first_name: Mapped[str | None] = mapped_column(String(200), default=None)
    last_name: Mapped[str | None] = mapped_column(String(200), default=None)
    birthday: Mapped[date | None] = mapped_column(default=None)
    locale: Mapped[str | None] = mapped_column(String(35), default=None)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    email_marketing: Mapped[bool] = mapped_column(default=False)
    email_marketing_at: Mapped[datetime | None] = mapped_column(default=None)
    email_marketing_source: Mapped[str | None] = mapped_column(String(100), default=None)
    sms_marketing: Mapped[bool] = mapped_column(default=False)
    sms_marketing_at: Mapped[datetime | None] = mapped_column(default=None)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    erased_at: Mapped[datetime | None] = mapped_column(default=None)
