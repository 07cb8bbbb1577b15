from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.kit.types import JSONType


class Programme(IdMixin, Base):
    """One loyalty scheme. Several merchants in one programme form a coalition."""

    __tablename__ = "programmes"

    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime]


class Merchant(IdMixin, Base):
    """A shop. Every customer, order and event belongs to exactly one merchant."""

    __tablename__ = "merchants"

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(200))
    # The webhook secret is not stored: it is derived from the server secret and this salt
    # (HMAC), so a stolen database holds no usable secret. Rotating = new salt.
    webhook_salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class ApiKey(IdMixin, Base):
    __tablename__ = "api_keys"

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    # Public part of the key, shown in listings and used for lookup.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    # SHA-256 of the whole key: keys are 160-bit random, so a slow hash adds nothing.
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split(","))
