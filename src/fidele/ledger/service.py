"""A double-entry ledger for points and money (gift cards, wallets).

Every movement is one :class:`Posting` whose entries sum to zero, idempotent on its
``source_key``. Balances are updated by atomic conditional UPDATEs taken in account-id order
(no deadlocks between two postings touching the same accounts), inside a savepoint: a refused
leg undoes the whole posting and nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from fidele.kit.repository import insert_or_twin
from fidele.ledger.errors import InsufficientBalance, UnbalancedPosting
from fidele.ledger.models import Account, Posting
from fidele.ledger.repository import LedgerRepository

POINTS = "PTS"


def account_key(
    programme_id: int,
    kind: str,
    unit: str,
    merchant_id: int | None = None,
    customer_id: int | None = None,
    ref: str | None = None,
) -> str:
    return f"{programme_id}:{merchant_id or '-'}:{customer_id or '-'}:{kind}:{unit}:{ref or '-'}"


def account(session: Session, **fields: Any) -> Account:
    """Get or create the account of ``fields`` (those of :func:`new_account`), race-safe: a
    concurrent creator wins, we read theirs."""
    repo = LedgerRepository(session)
    acc = new_account(**fields)
    key = acc.key
    found = repo.by_key(key)
    if found is not None:
        return found
    if insert_or_twin(session, acc):
        return acc
    twin = repo.by_key(key)
    assert twin is not None, f"account {key} refused as a duplicate but not found"
    return twin


def new_account(
    *,
    programme_id: int,
    kind: str,
    unit: str,
    now: datetime,
    merchant_id: int | None = None,
    customer_id: int | None = None,
    ref: str | None = None,
    allow_negative: bool = False,
) -> Account:
    """An account row not yet added: for callers that know it cannot exist (its key names a
    row they just created); everyone else uses :func:`account`."""
    return Account(
        key=account_key(programme_id, kind, unit, merchant_id, customer_id, ref),
        programme_id=programme_id,
        merchant_id=merchant_id,
        customer_id=customer_id,
        kind=kind,
        unit=unit,
        ref=ref,
        balance=0,
        allow_negative=allow_negative,
        created_at=now,
    )


@dataclass(frozen=True)
class Leg:
    account: Account
    amount: int


def post(
    session: Session,
    *,
    programme_id: int,
    source_key: str,
    reason: str,
    legs: Sequence[Leg],
    now: datetime,
    meta: dict[str, Any] | None = None,
    fresh: bool = False,
) -> tuple[Posting, bool]:
    """Post balanced legs once per ``source_key``; returns ``(posting, created)``.

    ``fresh``: the caller has just seen that nothing was posted for this source (the loyalty
    lot of the same source, written in the same transaction, does not exist), so the lookup
    is skipped; a concurrent twin is still caught by the unique source key.

    Raises :class:`InsufficientBalance` (409) if a leg would take a non-negative account below
    zero; the posting is then not written at all."""
    legs = [leg for leg in legs if leg.amount != 0]
    _check_balanced(legs)
    repo = LedgerRepository(session)
    existing = None if fresh else repo.posting(programme_id, source_key)
    if existing is not None:
        return existing, False
    unit = legs[0].account.unit if legs else POINTS
    posting = Posting(
        programme_id=programme_id,
        source_key=source_key,
        reason=reason,
        unit=unit,
        created_at=now,
        meta=meta or {},
    )
    if all(leg.amount > 0 or leg.account.allow_negative for leg in legs):
        return _post_unrefusable(session, posting, legs)
    try:
        with session.begin_nested():
            session.add(posting)
            session.flush()
            # Lock order: ascending account id, so concurrent postings never deadlock.
            for leg in sorted(legs, key=lambda x: x.account.id):
                if not repo.apply(leg.account.id, leg.amount):
                    raise InsufficientBalance(
                        f"{leg.account.kind} balance is too low for {-leg.amount}",
                        account=leg.account.kind,
                    )
            repo.insert_entries(posting.id, [(leg.account.id, leg.amount) for leg in legs])
    except IntegrityError:
        twin = repo.posting(programme_id, source_key)
        if twin is None:
            raise
        return twin, False
    for leg in legs:
        session.expire(leg.account, ["balance"])
    return posting, True


def _post_unrefusable(
    session: Session, posting: Posting, legs: Sequence[Leg]
) -> tuple[Posting, bool]:
    """No leg can be refused (each credits, or debits an account allowed to go negative), so
    no savepoint is needed: the posting goes in with ``ON CONFLICT DO NOTHING`` (a concurrent
    twin waits for this transaction, then inserts nothing instead of failing it), then its
    balances and entries. Two statements fewer than the savepoint path."""
    repo = LedgerRepository(session)
    new_id = repo.insert_posting(posting)
    if new_id is None:
        twin = repo.posting(posting.programme_id, posting.source_key)
        assert twin is not None, f"posting {posting.source_key!r} refused but not found"
        return twin, False
    posting.id = new_id
    make_transient_to_detached(posting)
    session.add(posting)
    for leg in sorted(legs, key=lambda x: x.account.id):  # ascending id: no deadlocks
        applied = repo.apply(leg.account.id, leg.amount)
        assert applied, f"unrefusable leg on account {leg.account.id} refused"
    repo.insert_entries(new_id, [(leg.account.id, leg.amount) for leg in legs])
    for leg in legs:
        session.expire(leg.account, ["balance"])
    return posting, True


def _check_balanced(legs: Sequence[Leg]) -> None:
    if sum(leg.amount for leg in legs) != 0:
        raise UnbalancedPosting(f"legs sum to {sum(leg.amount for leg in legs)}, not 0")
    if len({leg.account.unit for leg in legs}) > 1:
        raise UnbalancedPosting("a posting cannot mix units")


def transfer(
    session: Session,
    *,
    programme_id: int,
    source_key: str,
    reason: str,
    debit: Account,
    credit: Account,
    amount: int,
    now: datetime,
    meta: dict[str, Any] | None = None,
    fresh: bool = False,
) -> tuple[Posting, bool]:
    """Move ``amount`` from ``debit`` to ``credit`` (a two-leg posting)."""
    return post(
        session,
        programme_id=programme_id,
        source_key=source_key,
        reason=reason,
        now=now,
        legs=[Leg(debit, -amount), Leg(credit, amount)],
        meta=meta,
        fresh=fresh,
    )


@dataclass(frozen=True)
class Verification:
    mismatched_accounts: list[tuple[int, str, int, int]]
    unbalanced_postings: list[tuple[int, int]]
    nonzero_totals: list[tuple[int, str, int]]

    @property
    def ok(self) -> bool:
        return not (self.mismatched_accounts or self.unbalanced_postings or self.nonzero_totals)


def verify(session: Session) -> Verification:
    """Check every cached balance against its entries, every posting sums to zero, and every
    programme's accounts sum to zero per unit."""
    repo = LedgerRepository(session)
    return Verification(
        repo.mismatches(),
        repo.unbalanced_postings(),
        [t for t in repo.totals_by_unit() if t[2] != 0],
    )


def lock(session: Session, accounts: Sequence[Account]) -> None:
    """Lock ``accounts`` (ascending id) until the transaction ends, so a read-then-post
    sequence (which lots to expire, what a clawback can take) sees no concurrent change."""
    LedgerRepository(session).lock([a.id for a in accounts])
    for acc in accounts:
        session.expire(acc, ["balance"])
