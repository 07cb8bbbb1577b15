from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.kit.types import JSONType


class OutboxMessage(IdMixin, Base):
    """Something to send once the transaction that decided it has committed: an outgoing
    webhook, an email. Written in the same transaction as the change (so a rollback sends
    nothing) and delivered by the ``outbox.deliver`` job with retries and backoff.
    ``dedup_key`` is unique: deciding the same message twice queues it once."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    merchant_id: Mapped[int | None] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), default=None
    )
    channel: Mapped[str] = mapped_column(String(20))  # "webhook" | "email" | ...
    topic: Mapped[str] = mapped_column(String(100))  # e.g. "loyalty.tier_changed"
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|sent|dead
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
