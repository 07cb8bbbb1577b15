from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.kit.types import JSONType


class Event(IdMixin, Base):
    """The immutable event log: every accepted input is appended here once. Loyalty, analytics
    and campaigns derive from it, and a replay of it rebuilds their state."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("merchant_id", "idempotency_key"),
        Index("ix_events_merchant_type_id", "merchant_id", "type", "id"),
        Index("ix_events_customer", "customer_id"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="RESTRICT"), default=None
    )
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="RESTRICT"), default=None
    )
    type: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(50))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    payload_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class SyncCursor(Base):
    """Where an incremental pull (PrestaShop webservice, ...) stopped, per merchant and source."""

    __tablename__ = "sync_cursors"

    merchant_id: Mapped[int] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime]


class ConnectorSecret(Base):
    """A shop platform's own signing secret for a merchant (Shopify signs webhooks with its app
    secret). It must be usable for HMAC, so it cannot be hashed: it is stored encrypted with
    Fernet under a key derived from ``FIDELE_SECRET_KEY`` (rotate that key = set it again)."""

    __tablename__ = "connector_secrets"

    merchant_id: Mapped[int] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), primary_key=True
    )
    platform: Mapped[str] = mapped_column(String(50), primary_key=True)
    encrypted: Mapped[str] = mapped_column(String(500))
    updated_at: Mapped[datetime]
