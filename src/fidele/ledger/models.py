from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.kit.types import BigInt, JSONType


class Account(IdMixin, Base):
    """A ledger account, in points (``unit='PTS'``) or money (an ISO 4217 code).

    ``balance`` is a cache of ``SUM(entries.amount)`` kept in the same transaction as the
    entries; ``fidele loyalty verify`` checks it. The CHECK makes a negative balance impossible
    for accounts that do not allow one, whatever the application does."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint("allow_negative OR balance >= 0", name="balance_nonneg"),
        Index("ix_ledger_accounts_customer", "customer_id"),
    )

    # "<programme>:<merchant|->:<customer|->:<kind>:<unit>:<ref|->", unique: one account each.
    key: Mapped[str] = mapped_column(String(300), unique=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    merchant_id: Mapped[int | None] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), default=None
    )
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="RESTRICT"), default=None
    )
    kind: Mapped[str] = mapped_column(String(50))
    unit: Mapped[str] = mapped_column(String(3))
    ref: Mapped[str | None] = mapped_column(String(100), default=None)
    balance: Mapped[int] = mapped_column(BigInt, default=0)
    allow_negative: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class Posting(IdMixin, Base):
    """One balanced movement: its entries sum to zero. ``source_key`` names what caused it
    (``order:42:earn``, ``redemption:7``) and is unique per programme: posting the same source
    twice posts once."""

    __tablename__ = "ledger_postings"
    __table_args__ = (
        Index("uq_ledger_postings_source", "programme_id", "source_key", unique=True),
    )

    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    source_key: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime]
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Entry(IdMixin, Base):
    """Append-only: entries are never updated or deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_account_id", "account_id", "id"),
        Index("ix_ledger_entries_posting_id", "posting_id"),
    )

    posting_id: Mapped[int] = mapped_column(ForeignKey("ledger_postings.id", ondelete="RESTRICT"))
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id", ondelete="RESTRICT"))
    amount: Mapped[int] = mapped_column(BigInt)
