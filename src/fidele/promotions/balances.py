"""Money balances on the double-entry ledger: gift cards and the cashback wallet.

Each balance is three accounts in the currency: ``main`` (spendable), ``held`` (reserved by an
open checkout session) and ``spent`` (taken by confirmed orders). Money enters from a merchant
``issuer`` account that may go negative (it is the merchant's liability). Movements:

    issue    issuer -> main        hold     main -> held       release  held -> main
    capture  held -> spent         refund   spent -> main      clawback main -> issuer

``main``, ``held`` and ``spent`` refuse to go below zero (ledger CHECK + conditional UPDATE), so
concurrent holds can never overspend a card or a wallet."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from fidele.ledger import service as ledger
from fidele.ledger.models import Account


@dataclass(frozen=True)
class Balance:
    main: Account
    held: Account
    spent: Account


def code_hash(norm: str) -> str:
    return hashlib.sha256(norm.encode()).hexdigest()


def _acc(
    session: Session, programme_id: int, kind: str, currency: str, now: datetime, **kw
) -> Account:  # type: ignore[no-untyped-def]
    return ledger.account(
        session, programme_id=programme_id, kind=kind, unit=currency, now=now, **kw
    )


def accounts(
    session: Session,
    *,
    programme_id: int,
    merchant_id: int,
    kind: str,
    currency: str,
    now: datetime,
    customer_id: int | None = None,
    ref: str | None = None,
) -> Balance:
    """The three accounts of a gift card (``kind='gift_card'``, ``ref``=id) or of a customer's
    wallet (``kind='wallet'``, ``customer_id``)."""
    kw = {"merchant_id": merchant_id, "customer_id": customer_id, "ref": ref}
    return Balance(
        _acc(session, programme_id, kind, currency, now, **kw),
        _acc(session, programme_id, f"{kind}_held", currency, now, **kw),
        _acc(session, programme_id, f"{kind}_spent", currency, now, **kw),
    )


def issuer(
    session: Session, programme_id: int, merchant_id: int, kind: str, currency: str, now: datetime
) -> Account:
    return issuer_like(session, programme_id, merchant_id, f"{kind}_issuer", currency, now)


def issuer_like(
    session: Session, programme_id: int, merchant_id: int, name: str, currency: str, now: datetime
) -> Account:
    """A merchant-level account of the currency that may go negative (``gift_card_issuer``,
    ``gift_card_breakage``, ...)."""
    return _acc(
        session, programme_id, name, currency, now, merchant_id=merchant_id, allow_negative=True
    )


def move(
    session: Session,
    *,
    debit: Account,
    credit: Account,
    amount: int,
    source_key: str,
    reason: str,
    now: datetime,
) -> bool:
    """One idempotent transfer; False (and nothing written) when ``debit`` is too low."""
    if amount <= 0:
        return True
    try:
        ledger.transfer(
            session,
            programme_id=debit.programme_id,
            source_key=source_key,
            reason=reason,
            debit=debit,
            credit=credit,
            amount=amount,
            now=now,
        )
    except ledger.InsufficientBalance:
        return False
    return True


def by_ids(session: Session, main_id: int, held_id: int, spent_id: int) -> Balance:
    get = session.get
    main, held, spent = get(Account, main_id), get(Account, held_id), get(Account, spent_id)
    if main is None or held is None or spent is None:
        raise LookupError(f"ledger accounts {main_id}/{held_id}/{spent_id} are missing")
    return Balance(main, held, spent)
