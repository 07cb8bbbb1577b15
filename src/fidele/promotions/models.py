from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.kit.types import BigInt, JSONType

_MERCHANT = "merchants.id"
_CUSTOMER = "customers.id"


class PromotionSettings(Base):
    """A merchant's promotion settings (see ``settings.py`` for the fields and defaults)."""

    __tablename__ = "promotion_settings"

    merchant_id: Mapped[int] = mapped_column(
        ForeignKey(_MERCHANT, ondelete="RESTRICT"), primary_key=True
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime]


class Coupon(IdMixin, Base):
    """A coupon (typed code) or an automatic promotion (``automatic``, no code).

    ``used_count`` and ``held_count`` only change by atomic conditional UPDATEs (a hold at
    checkout evaluate, a use at confirm); the CHECKs make going over ``usage_limit``, used and
    held together, impossible whatever the application does."""

    __tablename__ = "coupons"
    __table_args__ = (
        UniqueConstraint("merchant_id", "code"),
        UniqueConstraint("merchant_id", "source_ref"),
        CheckConstraint("usage_limit IS NULL OR used_count <= usage_limit", name="used_le_limit"),
        CheckConstraint("used_count >= 0", name="used_nonneg"),
        CheckConstraint(
            "usage_limit IS NULL OR used_count + held_count <= usage_limit", name="held_le_limit"
        ),
        CheckConstraint("held_count >= 0", name="held_nonneg"),
        Index("ix_coupons_merchant_automatic", "merchant_id", "automatic", "status"),
        Index("ix_coupons_batch", "merchant_id", "batch"),
    )

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    code: Mapped[str | None] = mapped_column(String(40), default=None)  # normalised
    display_code: Mapped[str | None] = mapped_column(String(60), default=None)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[int] = mapped_column(BigInt, default=0)
    cap: Mapped[int | None] = mapped_column(BigInt, default=None)
    product_id: Mapped[str | None] = mapped_column(String(255), default=None)
    rule: Mapped[str | None] = mapped_column(String(30), default=None)
    buy: Mapped[int] = mapped_column(default=0)
    get: Mapped[int] = mapped_column(default=0)
    priority: Mapped[int] = mapped_column(default=0)
    exclusive: Mapped[bool] = mapped_column(default=False)
    automatic: Mapped[bool] = mapped_column(default=False)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Next-order coupons: [[days, bp], ...], the value is decided at checkout.
    schedule: Mapped[list[Any] | None] = mapped_column(JSONType, default=None)
    starts_at: Mapped[datetime | None] = mapped_column(default=None)
    ends_at: Mapped[datetime | None] = mapped_column(default=None)
    usage_limit: Mapped[int | None] = mapped_column(default=None)
    per_customer_limit: Mapped[int | None] = mapped_column(default=None)
    used_count: Mapped[int] = mapped_column(default=0)
    # Uses held by open checkout sessions (``coupon_holds``), counted against ``usage_limit``.
    held_count: Mapped[int] = mapped_column(default=0, server_default="0")
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey(_CUSTOMER, ondelete="RESTRICT"), default=None
    )
    batch: Mapped[str | None] = mapped_column(String(40), default=None)
    origin: Mapped[str] = mapped_column(String(20), default="merchant")
    # What issued it, unique per merchant ("next_order:42"), so handlers issue once.
    source_ref: Mapped[str | None] = mapped_column(String(100), default=None)
    text: Mapped[str | None] = mapped_column(String(2000), default=None)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime]


class CouponCustomerUse(Base):
    """Per-customer usage counter, changed by atomic conditional UPDATEs like ``used_count``."""

    __tablename__ = "coupon_customer_uses"
    __table_args__ = (CheckConstraint("used >= 0", name="used_nonneg"),)

    coupon_id: Mapped[int] = mapped_column(
        ForeignKey("coupons.id", ondelete="RESTRICT"), primary_key=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey(_CUSTOMER, ondelete="RESTRICT"), primary_key=True
    )
    used: Mapped[int] = mapped_column(default=0)


class CouponHold(Base):
    """A use of a limited coupon held by an open checkout session, from evaluate until the
    session is confirmed (the hold becomes a use), cancelled or expired (released)."""

    __tablename__ = "coupon_holds"
    __table_args__ = (Index("ix_coupon_holds_coupon_customer", "coupon_id", "customer_id"),)

    session_id: Mapped[str] = mapped_column(
        ForeignKey("checkout_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    coupon_id: Mapped[int] = mapped_column(
        ForeignKey("coupons.id", ondelete="RESTRICT"), primary_key=True
    )
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey(_CUSTOMER, ondelete="RESTRICT"), default=None
    )
    created_at: Mapped[datetime]


class GiftCard(IdMixin, Base):
    """A gift card. Its balance lives in the ledger (account ``gift_card``, ref = id); only the
    SHA-256 of its code is stored, so a read of the database does not leak spendable codes."""

    __tablename__ = "gift_cards"
    __table_args__ = (
        UniqueConstraint("code_hash"),
        UniqueConstraint("merchant_id", "source_ref"),
        CheckConstraint("initial_amount > 0", name="amount_pos"),
    )

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    code_hash: Mapped[str] = mapped_column(String(64))
    last4: Mapped[str] = mapped_column(String(4))
    currency: Mapped[str] = mapped_column(String(3))
    initial_amount: Mapped[int] = mapped_column(BigInt)
    recipient_email: Mapped[str | None] = mapped_column(String(320), default=None)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="RESTRICT"), default=None
    )
    source_ref: Mapped[str | None] = mapped_column(String(100), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime]


class CheckoutSession(Base):
    """One evaluated cart. Its ``result`` is what confirm consumes; gift card and wallet amounts
    are held in the ledger from evaluate until confirm, cancel or expiry."""

    __tablename__ = "checkout_sessions"
    __table_args__ = (
        UniqueConstraint("merchant_id", "order_ref"),
        Index("ix_checkout_sessions_open", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey(_CUSTOMER, ondelete="RESTRICT"), default=None
    )
    customer_ref: Mapped[str] = mapped_column(String(255))
    api_key_id: Mapped[int | None] = mapped_column(default=None)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20), default="open")
    request: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    total: Mapped[int] = mapped_column(BigInt)
    order_ref: Mapped[str | None] = mapped_column(String(255), default=None)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None] = mapped_column(default=None)


class Redemption(IdMixin, Base):
    """Audit: one row per thing a confirmed session consumed, traceable to session, order and
    API key. Unique per session and thing, so a session consumes each code once."""

    __tablename__ = "promotion_redemptions"
    __table_args__ = (
        UniqueConstraint("session_id", "kind", "ref"),
        Index("ix_promotion_redemptions_order", "merchant_id", "order_ref"),
    )

    session_id: Mapped[str] = mapped_column(ForeignKey("checkout_sessions.id", ondelete="RESTRICT"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey(_CUSTOMER, ondelete="RESTRICT"), default=None
    )
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(100))
    code: Mapped[str | None] = mapped_column(String(60), default=None)
    amount: Mapped[int] = mapped_column(BigInt)
    order_ref: Mapped[str] = mapped_column(String(255))
    api_key_id: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime]


class PendingReward(IdMixin, Base):
    """Cashback or a referral reward waiting for its order's return window to pass."""

    __tablename__ = "promotion_pending"
    __table_args__ = (
        UniqueConstraint("kind", "order_id"),
        Index("ix_promotion_pending_due", "status", "due_at"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(20))  # cashback, referral
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    amount: Mapped[int] = mapped_column(BigInt, default=0)
    done_at: Mapped[datetime | None] = mapped_column(default=None)


class ReferralCode(Base):
    __tablename__ = "referral_codes"
    __table_args__ = (UniqueConstraint("merchant_id", "code"),)

    customer_id: Mapped[int] = mapped_column(
        ForeignKey(_CUSTOMER, ondelete="RESTRICT"), primary_key=True
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]


class Referral(IdMixin, Base):
    """An accepted referral; ``referee_id`` is unique: one referrer per referee."""

    __tablename__ = "referrals"
    __table_args__ = (
        UniqueConstraint("referee_id"),
        Index("ix_referrals_referrer", "referrer_id", "created_at"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    referrer_id: Mapped[int] = mapped_column(ForeignKey(_CUSTOMER, ondelete="RESTRICT"))
    referee_id: Mapped[int] = mapped_column(ForeignKey(_CUSTOMER, ondelete="RESTRICT"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    created_at: Mapped[datetime]
    rewarded_at: Mapped[datetime | None] = mapped_column(default=None)


class ReferralRefusal(IdMixin, Base):
    __tablename__ = "referral_refusals"
    __table_args__ = (UniqueConstraint("order_id"),)

    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    referrer_id: Mapped[int] = mapped_column(ForeignKey(_CUSTOMER, ondelete="RESTRICT"))
    referee_id: Mapped[int] = mapped_column(ForeignKey(_CUSTOMER, ondelete="RESTRICT"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    reason: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime]


class ReferralInvitation(IdMixin, Base):
    __tablename__ = "referral_invitations"
    __table_args__ = (UniqueConstraint("referrer_id", "email_normalized"),)

    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    referrer_id: Mapped[int] = mapped_column(ForeignKey(_CUSTOMER, ondelete="RESTRICT"))
    email_normalized: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]


class RateCounter(Base):
    """Fixed-window counters of failed code lookups, shared by every process through the
    database (incremented by one atomic upsert)."""

    __tablename__ = "promotion_rate_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
