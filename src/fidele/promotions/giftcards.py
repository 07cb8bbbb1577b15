"""Gift cards: issued by the merchant or bought in the shop, spent across several orders."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from fidele.errors import NotFound
from fidele.kit import codes
from fidele.ledger import service as ledger
from fidele.promotions import balances, domain, mail, ratelimit
from fidele.promotions.coupons import config
from fidele.promotions.models import GiftCard
from fidele.promotions.repository import GiftCardRepository, insert_or_twin
from fidele.promotions.schemas import GiftCardOut
from fidele.tenancy.service import Caller

KIND = "gift_card"


@dataclass(frozen=True)
class Issued:
    card: GiftCard
    code: str | None  # None when the card already existed (replayed issue)


def issue(
    session: Session,
    *,
    programme_id: int,
    merchant_id: int,
    amount: int,
    currency: str,
    now: datetime,
    recipient_email: str | None = None,
    message: str | None = None,
    order_id: int | None = None,
    source_ref: str | None = None,
) -> Issued:
    """Create a card credited with ``amount`` from the merchant's issuer account, and queue its
    email to the recipient. Idempotent on ``source_ref``."""
    repo = GiftCardRepository(session)
    if source_ref is not None and (found := repo.by_source_ref(merchant_id, source_ref)):
        return Issued(found, None)
    display = codes.generate("G")
    norm = codes.normalise(display)
    days = config(session, merchant_id).gift_card_validity_days
    card = GiftCard(
        programme_id=programme_id,
        merchant_id=merchant_id,
        code_hash=balances.code_hash(norm),
        last4=norm[-4:],
        currency=currency,
        initial_amount=amount,
        recipient_email=recipient_email,
        order_id=order_id,
        source_ref=source_ref,
        expires_at=now + timedelta(days=days) if days else None,
        status="active",
        created_at=now,
    )
    if not insert_or_twin(session, card):
        twin = repo.by_source_ref(merchant_id, source_ref or "")
        assert twin is not None
        return Issued(twin, None)
    _fund(session, card, now)
    if recipient_email:
        _email(session, card, display, message, now)
    return Issued(card, display)


def _fund(session: Session, card: GiftCard, now: datetime) -> None:
    bal = account_of(session, card, now)
    src = balances.issuer(session, card.programme_id, card.merchant_id, KIND, card.currency, now)
    balances.move(
        session,
        debit=src,
        credit=bal.main,
        amount=card.initial_amount,
        source_key=f"gift_card:{card.id}:issue",
        reason="gift_card.issued",
        now=now,
    )


def _email(session: Session, card: GiftCard, code: str, message: str | None, now: datetime) -> None:
    assert card.recipient_email is not None
    mail.queue(
        session,
        programme_id=card.programme_id,
        merchant_id=card.merchant_id,
        topic="gift_card.issued",
        dedup_key=f"gift_card.issued:{card.id}",
        to=card.recipient_email,
        now=now,
        code=code,
        amount=card.initial_amount,
        currency=card.currency,
        message=message,
        expires_at=card.expires_at.isoformat() if card.expires_at else None,
    )


def write_off_expired(session: Session, now: datetime, *, batch: int = 500) -> int:
    """Expired cards' remaining balance goes to the merchant's ``gift_card_breakage`` account
    (a balanced posting: the liability ends, the ledger still sums to zero) and the card is
    marked ``expired``; returns the number of cards written off. Money still held by an open
    checkout waits for that session to end (confirm captures it, cancel or expiry releases it,
    then the next run writes it off); money a refund brings back to an expired card is written
    off by the next run too. Safe to run in several processes at once (row locks, skip
    locked) and to run again (a card with nothing left is only marked)."""
    done = 0
    for card in GiftCardRepository(session).expired_with_money(now, batch):
        bal = account_of(session, card, now)
        ledger.lock(session, [bal.main, bal.held])
        if bal.held.balance > 0:
            continue  # an open checkout holds part of it: after that session ends
        if bal.main.balance > 0:
            breakage = balances.issuer_like(
                session, card.programme_id, card.merchant_id, f"{KIND}_breakage", card.currency, now
            )
            balances.move(
                session,
                debit=bal.main,
                credit=breakage,
                amount=bal.main.balance,
                source_key=f"gift_card:{card.id}:expired:{now.isoformat()}",
                reason="gift_card.expired",
                now=now,
            )
            done += 1
        card.status = "expired"
    return done


def account_of(session: Session, card: GiftCard, now: datetime) -> balances.Balance:
    return balances.accounts(
        session,
        programme_id=card.programme_id,
        merchant_id=card.merchant_id,
        kind=KIND,
        currency=card.currency,
        now=now,
        ref=str(card.id),
    )


def find(session: Session, merchant_id: int, raw_codes: Sequence[str]) -> dict[str, GiftCard]:
    """Cards by normalised code (well-formed codes only, compared by hash in constant time)."""
    hashes = {balances.code_hash(n): n for n in raw_codes}
    rows = GiftCardRepository(session).by_hashes(merchant_id, list(hashes))
    out = {}
    for h, norm in hashes.items():
        card = rows.get(h)
        if card is not None and hmac.compare_digest(card.code_hash, h):
            out[norm] = card
    return out


def refusal(card: GiftCard | None, currency: str, now: datetime) -> str | None:
    if card is None:
        return "unknown"
    if card.status == "expired" or (card.expires_at is not None and card.expires_at <= now):
        return "expired"
    if card.status != "active":
        return "disabled"
    return "currency_mismatch" if card.currency != currency else None


def lookup(session: Session, caller: Caller, code: str, now: datetime) -> GiftCardOut:
    """The card of ``code``; a failed lookup counts against the key's lookup limit (429 once
    it is used up), as at checkout, so codes cannot be enumerated here either."""
    rate_keys = ratelimit.keys(caller)
    limit = config(session, caller.merchant_id).failed_lookups_per_minute
    with ratelimit.lookups(session, rate_keys, now, 1, limit) as tally:
        norm, bad = domain.check_code(code)
        card = None if bad else find(session, caller.merchant_id, [norm]).get(norm)
        tally.found = int(card is not None)
    if card is None:
        raise NotFound("gift card not found")
    return view(session, card, now)


def view(session: Session, card: GiftCard, now: datetime, code: str | None = None) -> GiftCardOut:
    bal = account_of(session, card, now)
    return GiftCardOut(
        id=card.id,
        code=code,
        last4=card.last4,
        currency=card.currency,
        initial_amount=card.initial_amount,
        balance=bal.main.balance,
        expires_at=card.expires_at,
        status=card.status,
    )
