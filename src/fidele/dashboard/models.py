from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.kit.types import JSONType


class DashboardUser(IdMixin, Base):
    """A person of the merchant who signs in to the dashboard. Emails are unique across the
    installation: the login form asks for an email, not a shop."""

    __tablename__ = "dashboard_users"

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # argon2id, in the PHC string format (parameters and salt included)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    language: Mapped[str | None] = mapped_column(String(5), default=None)
    created_at: Mapped[datetime]
    # Sessions carry a fingerprint of the hash: changing the password ends the other sessions.
    password_changed_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)


class DashboardActivity(IdMixin, Base):
    """Who changed what, when, and on which page: one row per change made in the dashboard.
    Customers are referred to by internal id, so an erasure leaves no identifier here."""

    __tablename__ = "dashboard_activity"
    __table_args__ = (Index("ix_dashboard_activity_merchant_id_id", "merchant_id", "id"),)

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("dashboard_users.id", ondelete="SET NULL"), default=None
    )
    user_email: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(50))
    page: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    at: Mapped[datetime]
