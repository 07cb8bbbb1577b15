"""Loyalty tables. Balances live in the ledger (``fidele.ledger``, unit ``PTS``); these tables
hold what the ledger cannot: lots with their expiry, members, rewards, vouchers, counters.

Every row here is derived from the event log and the rule versions: ``fidele loyalty replay``
empties them and rebuilds them (rule versions and webhook endpoints are configuration, kept)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.kit.types import BigInt, JSONType


class RuleVersion(IdMixin, Base):
    """The programme's scale (settings, earning rules, tiers, plans) as one validated document.

    Never updated: an edit appends a version, so a replay earns with the rules that were in
    force when each event was received."""

    __tablename__ = "loyalty_rule_versions"
    __table_args__ = (Index("ix_loyalty_rule_versions_prog", "programme_id", "id"),)

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]


class Member(IdMixin, Base):
    """A person in a programme. Customers are merchant-scoped, but a coalition's points follow
    the person across shops, so customers of one programme sharing ``email_normalized`` link to
    one member (a customer without an email gets a member of its own). Balances hang off the
    member's ledger accounts, whose ids are kept here to spare a lookup per operation."""

    __tablename__ = "loyalty_members"
    __table_args__ = (UniqueConstraint("programme_id", "email_normalized"),)

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    email_normalized: Mapped[str | None] = mapped_column(String(320), default=None)
    # Set right after the row is flushed (the accounts' keys need the member id).
    available_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_accounts.id"), default=None
    )
    pending_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_accounts.id"), default=None
    )
    debt_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_accounts.id"), default=None
    )
    tier_rank: Mapped[int] = mapped_column(default=0)
    tier_since: Mapped[datetime | None] = mapped_column(default=None)
    tier_review_at: Mapped[datetime | None] = mapped_column(default=None)
    tier_grace: Mapped[bool] = mapped_column(default=False)
    first_order_at: Mapped[datetime | None] = mapped_column(default=None)
    last_activity_at: Mapped[datetime | None] = mapped_column(default=None)
    lifetime_earned: Mapped[int] = mapped_column(BigInt, default=0)
    lifetime_spent: Mapped[int] = mapped_column(BigInt, default=0)
    created_at: Mapped[datetime]


class CustomerLink(Base):
    __tablename__ = "loyalty_customer_links"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="RESTRICT"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(ForeignKey("loyalty_members.id"), index=True)


class Lot(IdMixin, Base):
    """Points earned together, with their own release and expiry dates. ``remaining`` is what
    is left in the member's pending (status ``pending``) or available account; the sums of
    ``remaining`` per status equal those ledger balances."""

    __tablename__ = "loyalty_lots"
    __table_args__ = (
        UniqueConstraint("programme_id", "source_key"),
        CheckConstraint("remaining >= 0", name="remaining_nonneg"),
        Index("ix_loyalty_lots_member_status", "member_id", "status", "expires_at"),
        Index("ix_loyalty_lots_due", "status", "available_at"),
    )

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    member_id: Mapped[int] = mapped_column(ForeignKey("loyalty_members.id"))
    source_key: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(50))
    points: Mapped[int] = mapped_column(BigInt)
    remaining: Mapped[int] = mapped_column(BigInt)
    clawed: Mapped[int] = mapped_column(BigInt, default=0)
    status: Mapped[str] = mapped_column(String(10))  # pending | available
    earned_at: Mapped[datetime]
    available_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), default=None, index=True)
    order_amount: Mapped[int] = mapped_column(BigInt, default=0)
    refunded_amount: Mapped[int] = mapped_column(BigInt, default=0)
    detail: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)


class Consumption(IdMixin, Base):
    """Points taken from a lot by a redemption, burn, clawback, expiry or debt settlement;
    ``restored`` once a cancelled redemption gave them back to the same lot."""

    __tablename__ = "loyalty_consumptions"
    __table_args__ = (Index("ix_loyalty_consumptions_source", "programme_id", "source_key"),)

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("loyalty_lots.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))  # where it was used
    source_key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))  # redeem | burn | claw | expire | debt
    points: Mapped[int] = mapped_column(BigInt)
    restored: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class Counter(IdMixin, Base):
    """Budget and cap counters (``rule:double:2026-06:all``), incremented atomically."""

    __tablename__ = "loyalty_counters"
    __table_args__ = (UniqueConstraint("programme_id", "key"),)

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    key: Mapped[str] = mapped_column(String(200))
    value: Mapped[int] = mapped_column(BigInt, default=0)


class Refusal(IdMixin, Base):
    """An award a budget or cap refused, kept so the merchant sees what was not given."""

    __tablename__ = "loyalty_refusals"

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    member_id: Mapped[int] = mapped_column(ForeignKey("loyalty_members.id"))
    rule_id: Mapped[str] = mapped_column(String(100))
    source_key: Mapped[str] = mapped_column(String(255))
    points: Mapped[int] = mapped_column(BigInt)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class TierChange(IdMixin, Base):
    __tablename__ = "loyalty_tier_changes"

    member_id: Mapped[int] = mapped_column(ForeignKey("loyalty_members.id"), index=True)
    from_rank: Mapped[int]
    to_rank: Mapped[int]
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Reward(IdMixin, Base):
    __tablename__ = "loyalty_rewards"
    __table_args__ = (
        CheckConstraint("points_cost > 0", name="cost_pos"),
        CheckConstraint("stock IS NULL OR issued <= stock", name="stock"),
    )

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(200))
    points_cost: Mapped[int] = mapped_column(BigInt)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[int] = mapped_column(BigInt, default=0)
    stock: Mapped[int | None] = mapped_column(default=None)
    issued: Mapped[int] = mapped_column(default=0)
    per_customer_limit: Mapped[int | None] = mapped_column(default=None)
    tiers: Mapped[list[str]] = mapped_column(JSONType, default=list)
    members_only: Mapped[bool] = mapped_column(default=False)
    starts_at: Mapped[datetime | None] = mapped_column(default=None)
    ends_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]


class Redemption(Base):
    """``id`` is the id of the ``loyalty.redemption`` event that made it, so it is the same
    after a replay and callers can keep it."""

    __tablename__ = "loyalty_redemptions"

    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=False)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    member_id: Mapped[int] = mapped_column(ForeignKey("loyalty_members.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    reward_id: Mapped[int] = mapped_column(ForeignKey("loyalty_rewards.id"), index=True)
    points: Mapped[int] = mapped_column(BigInt)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | cancelled
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)


class Voucher(IdMixin, Base):
    """A reward's code, consumed at checkout (promotions calls ``use_voucher``)."""

    __tablename__ = "reward_vouchers"
    __table_args__ = (UniqueConstraint("programme_id", "code"),)

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    redemption_id: Mapped[int] = mapped_column(ForeignKey("loyalty_redemptions.id"), unique=True)
    code: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[int] = mapped_column(BigInt, default=0)
    status: Mapped[str] = mapped_column(String(20), default="issued")  # issued|used|cancelled
    order_ref: Mapped[str | None] = mapped_column(String(255), default=None)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]


class Membership(IdMixin, Base):
    """A paid membership, driven by the shop's billing events (``membership.*``)."""

    __tablename__ = "loyalty_memberships"
    __table_args__ = (UniqueConstraint("member_id", "plan"),)

    member_id: Mapped[int] = mapped_column(ForeignKey("loyalty_members.id"))
    plan: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))  # active | cancelled | expired
    started_at: Mapped[datetime]
    period_end: Mapped[datetime]
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
