from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.kit.types import JSONType


class WebhookEndpoint(IdMixin, Base):
    """Where a merchant wants its loyalty notifications POSTed. Signed with the merchant's
    derived webhook secret (``tenancy.service.merchant_webhook_secret``): nothing secret is
    stored, and rotating the merchant's salt rotates every endpoint."""

    __tablename__ = "webhook_endpoints"

    merchant_id: Mapped[int] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), index=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    topics: Mapped[list[str]] = mapped_column(JSONType, default=list)  # empty: every topic
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
