from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base
from fidele.kit.types import BigIntPK, JSONType


class StorefrontSettings(Base):
    """A merchant's storefront: the salt of its token secret, its shop origins, the widget's
    look, and (on a demo shop only) the customer the demo page shows.

    The secret itself is not stored: it is derived from the server secret and ``secret_salt``
    (HMAC, as the webhook secret is), so a stolen database holds no usable secret; rotating
    draws a new salt. No salt yet: no token verifies."""

    __tablename__ = "storefront_settings"

    merchant_id: Mapped[int] = mapped_column(
        BigIntPK, ForeignKey("merchants.id", ondelete="RESTRICT"), primary_key=True
    )
    secret_salt: Mapped[str | None] = mapped_column(String(64), default=None)
    origins: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # colours, launcher text, sign-up link: see schemas.Look
    look: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    demo_customer: Mapped[str | None] = mapped_column(String(255), default=None)
    updated_at: Mapped[datetime]
