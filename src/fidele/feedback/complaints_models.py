"""Tables of complaints: the complaint, its notes, the merchant's complaint settings (SLA,
business hours, recovery budget, late-delivery rule) and the ledger of recovery gestures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin, TimestampMixin
from fidele.kit.types import BigInt, JSONType

_MERCHANT = "merchants.id"


class Complaint(IdMixin, TimestampMixin, Base):
    """A customer's complaint. ``first_response_due``/``resolution_due`` are computed once at
    opening from the SLA of its category on the merchant's business hours; ``source_ref`` makes
    opening idempotent (an ``Idempotency-Key``, a helpdesk ticket, a survey answer)."""

    __tablename__ = "complaints"
    __table_args__ = (
        UniqueConstraint("merchant_id", "source_ref"),
        Index("ix_complaints_merchant_status", "merchant_id", "status", "id"),
        Index("ix_complaints_customer_status", "customer_id", "status"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="RESTRICT"), default=None
    )
    category: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(30))
    source: Mapped[str] = mapped_column(String(20), default="api")  # api|helpdesk|survey
    source_ref: Mapped[str | None] = mapped_column(String(255), default=None)
    payload_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="open")
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("dashboard_users.id", ondelete="RESTRICT"), default=None
    )
    opened_at: Mapped[datetime]
    first_response_due: Mapped[datetime]
    resolution_due: Mapped[datetime]
    first_response_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    resolution: Mapped[str | None] = mapped_column(Text, default=None)
    gesture_kind: Mapped[str | None] = mapped_column(String(20), default=None)
    gesture_value: Mapped[int | None] = mapped_column(BigInt, default=None)


class ComplaintNote(IdMixin, Base):
    __tablename__ = "complaint_notes"
    __table_args__ = (Index("ix_complaint_notes_complaint_id", "complaint_id", "id"),)

    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id", ondelete="RESTRICT"))
    author: Mapped[str | None] = mapped_column(String(200), default=None)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class ComplaintSettings(Base):
    """What the merchant set (``document``, validated by ``ComplaintSettingsIn``); no row or a
    missing key means fidele's defaults (``complaints_domain``)."""

    __tablename__ = "complaint_settings"

    merchant_id: Mapped[int] = mapped_column(
        ForeignKey(_MERCHANT, ondelete="RESTRICT"), primary_key=True
    )
    document: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime]


class RecoveryGesture(IdMixin, Base):
    """One service-recovery gesture granted, append-only: its money ``cost`` (minor units of
    the programme's currency) counts against the merchant's budget of its ``month`` (in the
    merchant's zone). ``source_ref`` (``complaint:12``, ``late:345``) grants it once."""

    __tablename__ = "recovery_gestures"
    __table_args__ = (
        UniqueConstraint("merchant_id", "source_ref"),
        Index("ix_recovery_gestures_merchant_month", "merchant_id", "month"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    complaint_id: Mapped[int | None] = mapped_column(
        ForeignKey("complaints.id", ondelete="RESTRICT"), default=None
    )
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="RESTRICT"), default=None
    )
    source_ref: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[int] = mapped_column(BigInt)  # points, or minor units
    cost: Mapped[int] = mapped_column(BigInt)  # minor units
    month: Mapped[str] = mapped_column(String(7))
    reference: Mapped[str | None] = mapped_column(String(100), default=None)  # a coupon code
    created_at: Mapped[datetime]
