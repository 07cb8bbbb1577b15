"""The loyalty domain's part of a person's GDPR export and erasure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.gdpr import Erasure, eraser, exporter
from fidele.customers.models import Customer
from fidele.kit.schemas import iso
from fidele.loyalty import service
from fidele.loyalty.repository import LoyaltyRepository
from fidele.loyalty.rewards import pretty

_PAGE = 1000


@exporter("loyalty")
def export_loyalty(session: Session, customer: Customer, now: datetime) -> dict[str, Any]:
    """Balances, tier and membership, and the whole points statement."""
    statement: list[dict[str, Any]] = []
    while True:
        after = statement[-1]["id"] if statement else 0
        page = service.statement(session, customer, after_id=after, limit=_PAGE)
        statement += page
        if len(page) < _PAGE:
            break
    return {
        **service.summary(session, customer, now),
        "statement": [{**line, "at": iso(line["at"])} for line in statement],
    }


@exporter("vouchers")
def export_vouchers(session: Session, customer: Customer, now: datetime) -> list[dict[str, Any]]:
    """Each redemption of a reward, with its voucher code."""
    return [
        {
            "redemption_id": r.id,
            "reward_id": r.reward_id,
            "points": r.points,
            "status": r.status,
            "created_at": iso(r.created_at),
            "cancelled_at": iso(r.cancelled_at),
            "code": pretty(v.code) if v else None,
            "voucher_status": v.status if v else None,
            "used_at": iso(v.used_at) if v else None,
        }
        for r, v in LoyaltyRepository(session).redemptions_of(customer.id)
    ]


@eraser
def erase_member_email(session: Session, erasure: Erasure) -> None:
    """The member keeps its balances and history but no longer its email, unless a customer
    of another shop of the coalition, not erased, still shares the member and that email."""
    repo = LoyaltyRepository(session)
    member = repo.member_of(erasure.customer.id)
    if member is None or member.email_normalized is None:
        return
    others = [
        c
        for c in repo.customers_of(member.id)
        if c.id != erasure.customer.id and c.erased_at is None
    ]
    if not any(c.email_normalized == member.email_normalized for c in others):
        member.email_normalized = None
