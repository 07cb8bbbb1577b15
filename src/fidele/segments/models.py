from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.kit.types import BigInt, JSONType


class Segment(IdMixin, Base):
    """A merchant's named rule. ``depends`` lists the change kinds that can move a customer in
    or out (``segments.domain.depends_on``), so an order re-evaluates only the segments on
    orders. Built-in segments (one per RFM name) cannot be edited or deleted."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("merchant_id", "name"),)

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(200))
    rule: Mapped[dict[str, Any]] = mapped_column(JSONType)
    builtin: Mapped[bool] = mapped_column(default=False)
    depends: Mapped[str] = mapped_column(String(200), default="")
    member_count: Mapped[int] = mapped_column(BigInt, default=0)
    computed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SegmentMember(Base):
    """Who is in a segment now, kept by ``segments.membership``."""

    __tablename__ = "segment_members"
    __table_args__ = (Index("ix_segment_members_customer", "customer_id"),)

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    entered_at: Mapped[datetime]


class SegmentDirty(Base):
    """A customer whose own events may have changed their memberships, written in the same
    transaction as the event; the membership loop re-evaluates and deletes it. ``kinds`` is a
    bit set of what changed (``segments.membership.KIND_BITS``)."""

    __tablename__ = "segment_dirty"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    kinds: Mapped[int] = mapped_column(default=0)
    marked_at: Mapped[datetime]


RECENT_K = 5  # how many of a customer's most recent order times the facts row keeps


class CustomerOrderFacts(Base):
    """A customer's counted orders (not cancelled) summed up, kept in the transaction of every
    order write (``segments.facts``): what the compiler reads instead of aggregating the
    orders for ``orders.count``/``spent``/``avg_value``/``last_days``/``first_days``, and for
    "at least k orders in the last N days" (k <= ``RECENT_K``): ``recent_k`` is the k-th most
    recent order time, so the test is ``recent_k >= now - N days``. No row: no order."""

    __tablename__ = "customer_order_facts"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    orders_count: Mapped[int] = mapped_column(BigInt)
    spent: Mapped[int] = mapped_column(BigInt)
    first_at: Mapped[datetime | None]
    last_at: Mapped[datetime | None]
    recent_1: Mapped[datetime | None]
    recent_2: Mapped[datetime | None]
    recent_3: Mapped[datetime | None]
    recent_4: Mapped[datetime | None]
    recent_5: Mapped[datetime | None]
