"""The promotions domain's part of a person's GDPR export and erasure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.gdpr import Erasure, eraser, exporter, pseudonym, scrub
from fidele.customers.models import Customer
from fidele.kit.schemas import iso
from fidele.promotions import giftcards
from fidele.promotions.repository import PrivacyRepository, ReferralRepository
from fidele.promotions.schemas import CouponOut

# Keys of a checkout session's request and result that can hold personal data.
_CHECKOUT_KEYS = frozenset({"email", "shipping_address", "billing_address", "attributes", "ip"})


def _emails(customer: Customer) -> frozenset[str]:
    found = {customer.email, customer.email_normalized}
    return frozenset(e.strip().lower() for e in found if e)


@exporter("coupons")
def export_coupons(session: Session, customer: Customer, now: datetime) -> list[dict[str, Any]]:
    """Coupons issued to the person (next-order, referral, personal ones)."""
    rows = PrivacyRepository(session).coupons_of(customer.id)
    return [CouponOut.of(c).model_dump(mode="json") for c in rows]


@exporter("gift_cards")
def export_gift_cards(session: Session, customer: Customer, now: datetime) -> list[dict[str, Any]]:
    """Cards the person bought or was sent: last 4 characters and balance, never the code."""
    emails = _emails(customer)
    cards = PrivacyRepository(session).gift_cards_of(customer.merchant_id, customer.id, emails)
    return [
        {
            **giftcards.view(session, card, now).model_dump(mode="json", exclude={"code"}),
            "recipient_email": card.recipient_email,
            "received": (card.recipient_email or "").lower() in emails,
        }
        for card in cards
    ]


@exporter("referrals")
def export_referrals(session: Session, customer: Customer, now: datetime) -> dict[str, Any]:
    """The person's referral code, the referrals they made or came from, invitations sent."""
    repo, privacy = ReferralRepository(session), PrivacyRepository(session)
    code = repo.code_of(customer.id)
    invitations = privacy.invitations_of(customer.merchant_id, customer.id, _emails(customer))
    return {
        "code": code.code if code else None,
        "referrals": [
            {
                "role": "referrer" if r.referrer_id == customer.id else "referee",
                "status": r.status,
                "created_at": iso(r.created_at),
                "rewarded_at": iso(r.rewarded_at),
            }
            for r in privacy.referrals_of(customer.id)
        ],
        "invitations_sent": sum(1 for i in invitations if i.referrer_id == customer.id),
    }


@eraser
def erase_promotions(session: Session, erasure: Erasure) -> None:
    """Gift cards lose their recipient address, invitations the invitee's address (kept as a
    pseudonym so one address is still invited once), checkout sessions the person's id and
    any personal field of their cart; amounts and codes' uses stay."""
    repo, customer = PrivacyRepository(session), erasure.customer
    for card in repo.gift_cards_of(customer.merchant_id, customer.id, erasure.emails):
        card.recipient_email = None
    for inv in repo.invitations_of(customer.merchant_id, customer.id, erasure.emails):
        if not inv.email_normalized.startswith("erased:"):
            inv.email_normalized = pseudonym(inv.email_normalized)
    replace = {erasure.old_external_id: customer.external_id}
    for row in repo.checkout_sessions_of(
        customer.merchant_id, customer.id, erasure.old_external_id
    ):
        row.customer_ref = customer.external_id
        row.request = scrub(row.request, _CHECKOUT_KEYS, replace)
        row.result = scrub(row.result, _CHECKOUT_KEYS, replace)
