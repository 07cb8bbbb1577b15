from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from fidele.kit.repository import RepositoryBase, insert_unless_exists, prebuilt
from fidele.ledger.models import Account, Entry, Posting


class LedgerRepository(RepositoryBase[Account]):
    model = Account

    def __init__(self, session: Session) -> None:
        super().__init__(session)

    def by_key(self, key: str) -> Account | None:
        return self.one_or_none(select(Account).where(Account.key == key))

    def posting(self, programme_id: int, source_key: str) -> Posting | None:
        return self.session.execute(
            select(Posting).where(
                Posting.programme_id == programme_id, Posting.source_key == source_key
            )
        ).scalar_one_or_none()

    def insert_posting(self, posting: Posting) -> int | None:
        """Insert ``posting`` unless its (programme, source) exists: the new id, or None."""
        values = {
            c.key: getattr(posting, c.key) for c in Posting.__table__.columns if c.key != "id"
        }
        return insert_unless_exists(self.session, POSTINGS, ["programme_id", "source_key"], values)

    def apply(self, account_id: int, amount: int) -> bool:
        """Atomic ``balance += amount`` refused (False) if it would go below zero where that
        is not allowed. On PostgreSQL the UPDATE row-locks the account until commit."""
        result = self.session.execute(
            prebuilt(self.session, "ledger.apply", _apply), {"aid": account_id, "amt": amount}
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def insert_entries(self, posting_id: int, legs: Sequence[tuple[int, int]]) -> None:
        self.session.execute(
            insert(Entry),
            [{"posting_id": posting_id, "account_id": a, "amount": n} for a, n in legs],
        )

    def balances(self, account_ids: Sequence[int]) -> dict[int, int]:
        rows = self.session.execute(
            select(Account.id, Account.balance).where(Account.id.in_(account_ids))
        ).all()
        return {i: b for i, b in rows}

    def entries(
        self, account_id: int, *, after_id: int = 0, limit: int = 100
    ) -> Sequence[tuple[Entry, Posting]]:
        stmt = (
            select(Entry, Posting)
            .join(Posting, Posting.id == Entry.posting_id)
            .where(Entry.account_id == account_id, Entry.id > after_id)
            .order_by(Entry.id)
            .limit(limit)
        )
        return [(e, p) for e, p in self.session.execute(stmt).all()]

    def mismatches(self) -> list[tuple[int, str, int, int]]:
        """Accounts whose cached balance differs from the sum of their entries."""
        sums = (
            select(Entry.account_id, func.coalesce(func.sum(Entry.amount), 0).label("total"))
            .group_by(Entry.account_id)
            .subquery()
        )
        stmt = (
            select(Account.id, Account.key, Account.balance, func.coalesce(sums.c.total, 0))
            .outerjoin(sums, sums.c.account_id == Account.id)
            .where(Account.balance != func.coalesce(sums.c.total, 0))
        )
        return [(a, k, b, int(t)) for a, k, b, t in self.session.execute(stmt).all()]

    def unbalanced_postings(self) -> list[tuple[int, int]]:
        stmt = (
            select(Entry.posting_id, func.sum(Entry.amount))
            .group_by(Entry.posting_id)
            .having(func.sum(Entry.amount) != 0)
        )
        return [(p, int(s)) for p, s in self.session.execute(stmt).all()]

    def totals_by_unit(self) -> list[tuple[int, str, int]]:
        stmt = select(Account.programme_id, Account.unit, func.sum(Account.balance)).group_by(
            Account.programme_id, Account.unit
        )
        return [(p, u, int(s)) for p, u, s in self.session.execute(stmt).all()]

    def customer_accounts(self, customer_id: int) -> Sequence[Account]:
        return self.all(select(Account).where(Account.customer_id == customer_id))

    def sum_between(self, account_id: int, start: datetime, end: datetime) -> int:
        stmt = (
            select(func.coalesce(func.sum(Entry.amount), 0))
            .join(Posting, Posting.id == Entry.posting_id)
            .where(
                and_(
                    Entry.account_id == account_id,
                    Posting.created_at >= start,
                    Posting.created_at < end,
                )
            )
        )
        return int(self.session.execute(stmt).scalar_one())

    def lock(self, account_ids: Sequence[int]) -> None:
        """Row-lock accounts in id order (a no-op UPDATE: PostgreSQL holds the lock until
        commit; SQLite's BEGIN IMMEDIATE already serialises writers)."""
        for account_id in sorted(set(account_ids)):
            self.session.execute(
                update(Account)
                .where(Account.id == account_id)
                .values(balance=Account.balance)
                .execution_options(synchronize_session=False)
            )


POSTINGS: Table = Posting.__table__  # type: ignore[assignment]
ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]


def _apply(_insert: Any) -> Any:
    c = ACCOUNTS.c
    amount = bindparam("amt", type_=BigInteger)
    return (
        update(ACCOUNTS)
        .where(c.id == bindparam("aid"), or_(c.allow_negative, c.balance + amount >= 0))
        .values(balance=c.balance + amount)
    )
