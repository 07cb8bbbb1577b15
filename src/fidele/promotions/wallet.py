"""The cashback wallet: store credit per customer and currency, on the ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.promotions import balances

KIND = "wallet"


def account_of(
    session: Session, customer: Customer, currency: str, now: datetime
) -> balances.Balance:
    return balances.accounts(
        session,
        programme_id=customer.programme_id,
        merchant_id=customer.merchant_id,
        kind=KIND,
        currency=currency,
        now=now,
        customer_id=customer.id,
    )


def credit(
    session: Session,
    customer: Customer,
    *,
    amount: int,
    currency: str,
    source_key: str,
    reason: str,
    now: datetime,
) -> None:
    """Credit store credit from the merchant's issuer account (idempotent on ``source_key``)."""
    bal = account_of(session, customer, currency, now)
    src = balances.issuer(session, customer.programme_id, customer.merchant_id, KIND, currency, now)
    balances.move(
        session,
        debit=src,
        credit=bal.main,
        amount=amount,
        source_key=source_key,
        reason=reason,
        now=now,
    )


def claw_back(
    session: Session,
    customer: Customer,
    *,
    amount: int,
    currency: str,
    source_key: str,
    now: datetime,
) -> int:
    """Take back up to ``amount`` (never below zero: what was spent already stays spent)."""
    bal = account_of(session, customer, currency, now)
    take = min(amount, bal.main.balance)
    src = balances.issuer(session, customer.programme_id, customer.merchant_id, KIND, currency, now)
    balances.move(
        session,
        debit=bal.main,
        credit=src,
        amount=take,
        source_key=source_key,
        reason="wallet.clawback",
        now=now,
    )
    return take


def balance(session: Session, customer: Customer, currency: str, now: datetime) -> int:
    return account_of(session, customer, currency, now).main.balance
