"""Tables of the measurement side of messaging: recommendations, tracking, conversions and
broadcasts. Imported by ``fidele.messaging.models`` so ``Base.metadata`` knows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin, TimestampMixin
from fidele.kit.types import BigInt, JSONType


class ProductRecommendation(IdMixin, Base):
    """ "Customers who bought ``product_id`` also bought ``recommended_product_id``", computed
    by the ``messaging.recommendations`` job from order lines. ``product_id`` ``"*"`` holds the
    merchant's most bought products (the fallback for a customer with no co-purchases).
    Aggregates over at least ``min_support`` customers: no personal data."""

    __tablename__ = "product_recommendations"
    __table_args__ = (UniqueConstraint("merchant_id", "product_id", "rank"),)

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    product_id: Mapped[str] = mapped_column(String(255))
    rank: Mapped[int]
    recommended_product_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(500), default=None)
    category: Mapped[str | None] = mapped_column(String(255), default=None)
    # customers who bought both; lift = support * N / (n_product * n_recommended)
    support: Mapped[int]
    lift: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    computed_at: Mapped[datetime]


class MessageInteraction(IdMixin, Base):
    """Opens (pixel) and clicks (redirect links) of one sent message: one row per (send, kind,
    link), counting repeats; ``last_at`` anchors the attribution window."""

    __tablename__ = "message_interactions"
    __table_args__ = (
        UniqueConstraint("send_id", "kind", "url_hash"),
        Index("ix_message_interactions_customer_last", "customer_id", "last_at"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    send_id: Mapped[int] = mapped_column(BigInt)
    kind: Mapped[str] = mapped_column(String(10))  # "open" | "click"
    url: Mapped[str] = mapped_column(Text, default="")
    url_hash: Mapped[str] = mapped_column(String(64), default="")
    count: Mapped[int] = mapped_column(default=1)
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]


class MessageConversion(IdMixin, Base):
    """An order attributed to the last message the customer clicked (within the click window)
    or else opened (within the open window) before placing it."""

    __tablename__ = "message_conversions"
    __table_args__ = (UniqueConstraint("order_id"), Index("ix_message_conversions_send", "send_id"))

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    send_id: Mapped[int] = mapped_column(BigInt)
    touch: Mapped[str] = mapped_column(String(10))  # "click" | "open"
    touched_at: Mapped[datetime]
    placed_at: Mapped[datetime]


class Broadcast(IdMixin, TimestampMixin, Base):
    """A one-off message to a segment. Membership is frozen into ``broadcast_recipients`` when
    it starts; each recipient is then sent through ``messaging.send`` with the key
    ``broadcast:{id}:{customer_id}``."""

    __tablename__ = "broadcasts"
    __table_args__ = (
        Index("ix_broadcasts_status_send_at", "status", "send_at"),
        Index("ix_broadcasts_merchant_id_id", "merchant_id", "id"),
        UniqueConstraint("merchant_id", "idempotency_key"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    segment_id: Mapped[int] = mapped_column(BigInt)
    template_id: Mapped[int] = mapped_column(BigInt)
    topic: Mapped[str] = mapped_column(String(50))
    channel: Mapped[str] = mapped_column(String(20), default="email")
    send_at: Mapped[datetime]
    # Deliver at send_at's wall-clock time in each customer's own timezone.
    local_time: Mapped[bool] = mapped_column(default=False)
    holdout_bp: Mapped[int] = mapped_column(default=0)
    # [{"name": "a", "template_id": 3, "weight": 1}, ...]; empty: one message, template_id
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # with variants: the share that gets the split first (0: everyone)
    test_bp: Mapped[int] = mapped_column(default=0)
    winner_mode: Mapped[str] = mapped_column(String(10), default="manual")  # manual|auto
    winner: Mapped[str | None] = mapped_column(String(50), default=None)
    # scheduled -> sending -> sent; scheduled -> cancelled
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    recipients: Mapped[int] = mapped_column(default=0)
    processed: Mapped[int] = mapped_column(default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)


class BroadcastRecipient(IdMixin, Base):
    """A customer of a broadcast's frozen audience, and what became of their message."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "customer_id"),
        Index("ix_broadcast_recipients_due", "broadcast_id", "state", "due_at"),
        Index("ix_broadcast_recipients_customer_id", "customer_id"),
    )

    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    variant: Mapped[str | None] = mapped_column(String(50), default=None)
    held_out: Mapped[bool] = mapped_column(default=False)
    due_at: Mapped[datetime]
    # pending (due at due_at) | waiting (for the A/B winner) | done
    state: Mapped[str] = mapped_column(String(10), default="pending")
    outcome: Mapped[str | None] = mapped_column(String(20), default=None)
    reason: Mapped[str | None] = mapped_column(String(50), default=None)
    send_id: Mapped[int | None] = mapped_column(BigInt, default=None)
    done_at: Mapped[datetime | None] = mapped_column(default=None)


class MeasurementSettings(Base):
    """A merchant's measurement settings (``GET/PUT /v1/messages/measurement``); no row: the
    defaults (no programme holdout, 5 days after a click, 3 after an open)."""

    __tablename__ = "messaging_measurement"

    merchant_id: Mapped[int] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), primary_key=True
    )
    # Share of customers (basis points) kept back from every marketing message: the
    # programme's global holdout.
    global_holdout_bp: Mapped[int] = mapped_column(default=0)
    click_days: Mapped[float] = mapped_column(Float, default=5.0)
    open_days: Mapped[float] = mapped_column(Float, default=3.0)
    updated_at: Mapped[datetime]
