"""Referral (parrainage): codes and links, invitations, fraud rules, rewards after the return
window of the referee's first order."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from fidele.customers import service as customers
from fidele.customers.models import Customer
from fidele.kit import codes
from fidele.orders.models import Order
from fidele.promotions import coupons, domain, wallet
from fidele.promotions.loyalty_port import default_loyalty
from fidele.promotions.models import (
    PendingReward,
    Referral,
    ReferralCode,
    ReferralInvitation,
    ReferralRefusal,
)
from fidele.promotions.repository import OrderFacts, ReferralRepository, insert_or_twin
from fidele.promotions.schemas import InvitationIn, ReferralOut
from fidele.tenancy.service import Caller


def code_for(session: Session, customer: Customer, now: datetime) -> ReferralCode:
    """The customer's referral code, created on first use."""
    repo = ReferralRepository(session)
    found = repo.code_of(customer.id)
    if found is not None:
        return found
    row = ReferralCode(
        customer_id=customer.id,
        merchant_id=customer.merchant_id,
        code=codes.normalise(codes.generate("R")),
        created_at=now,
    )
    if not insert_or_twin(session, row):
        twin = repo.code_of(customer.id)
        assert twin is not None
        return twin
    return row


def view(session: Session, caller: Caller, customer_ref: str, now: datetime) -> ReferralOut:
    customer = customers.get(session, caller, customer_ref)
    row = code_for(session, customer, now)
    link = coupons.config(session, caller.merchant_id).referral.link_template
    return ReferralOut(
        customer_id=customer_ref,
        code=row.code,
        link=link.format(code=row.code),
        stats=ReferralRepository(session).stats(caller.merchant_id, customer.id),
    )


def programme_stats(session: Session, caller: Caller) -> dict[str, int]:
    return ReferralRepository(session).stats(caller.merchant_id)


def invite(session: Session, caller: Caller, data: InvitationIn, now: datetime) -> bool:
    """Record a "send to a friend" invitation; False when it was already recorded."""
    customer = customers.get(session, caller, data.customer_id)
    row = ReferralInvitation(
        merchant_id=caller.merchant_id,
        referrer_id=customer.id,
        email_normalized=customers.normalise_email(data.email) or data.email,
        created_at=now,
    )
    return insert_or_twin(session, row)


def _identity(customer: Customer, orders: Iterable[Order]) -> domain.Identity:
    attrs = [o.attributes or {} for o in orders]
    addresses = {domain.normalise_address(a.get("shipping_address")) for a in attrs}
    return domain.Identity(
        customer_id=customer.id,
        emails=frozenset({customer.email_normalized} - {None}),  # type: ignore[arg-type]
        addresses=frozenset(addresses - {None}),  # type: ignore[arg-type]
        devices=frozenset(
            str(a["device_fingerprint"]) for a in attrs if a.get("device_fingerprint")
        ),
        payments=frozenset(
            str(a["payment_fingerprint"]) for a in attrs if a.get("payment_fingerprint")
        ),
    )


def _typed_code(
    session: Session, merchant_id: int, candidates: list[object]
) -> ReferralCode | None:
    repo = ReferralRepository(session)
    for raw in candidates:
        if raw:
            norm, bad = domain.check_code(str(raw))
            found = None if bad else repo.by_code(merchant_id, norm)
            if found is not None:
                return found
    return None


def on_order_placed(
    session: Session, order: Order, codes_typed: list[str], now: datetime
) -> str | None:
    """Record the referral an order carries, or its refusal with the reason; returns the reason."""
    candidates = [(order.attributes or {}).get("referral_code"), *codes_typed]
    code = _typed_code(session, order.merchant_id, candidates)
    if code is None or not coupons.config(session, order.merchant_id).referral.enabled:
        return None
    referee, referrer = (
        session.get(Customer, order.customer_id),
        session.get(Customer, code.customer_id),
    )
    assert referee is not None
    assert referrer is not None
    reason = _refusal(session, order, referrer, referee, now)
    row: Referral | ReferralRefusal
    if reason is None:
        row = Referral(
            merchant_id=order.merchant_id,
            referrer_id=referrer.id,
            referee_id=referee.id,
            order_id=order.id,
            status="pending",
            created_at=now,
        )
    else:
        row = ReferralRefusal(
            merchant_id=order.merchant_id,
            referrer_id=referrer.id,
            referee_id=referee.id,
            order_id=order.id,
            reason=reason,
            created_at=now,
        )
    if not insert_or_twin(session, row) and reason is None:
        insert_or_twin(
            session,
            ReferralRefusal(
                merchant_id=order.merchant_id,
                referrer_id=referrer.id,
                referee_id=referee.id,
                order_id=order.id,
                reason="already_referred",
                created_at=now,
            ),
        )
        return "already_referred"
    return reason


def _refusal(
    session: Session, order: Order, referrer: Customer, referee: Customer, now: datetime
) -> str | None:
    facts, repo = OrderFacts(session), ReferralRepository(session)
    cfg = coupons.config(session, order.merchant_id).referral
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return domain.referral_refusal(
        _identity(referrer, facts.orders_of(referrer.id)),
        _identity(referee, [order]),
        already_referred=repo.of_referee(referee.id) is not None,
        first_order=facts.count_for_customer(referee.id, before_id=order.id) == 0,
        this_month=repo.count_since(referrer.id, month_start),
        monthly_cap=cfg.monthly_cap,
    )


def reward(session: Session, pending: PendingReward, order: Order, now: datetime) -> int:
    """Reward the referrer once the referee's first order kept its value past the window."""
    referral = ReferralRepository(session).by_order(order.id)
    if referral is None or referral.status != "pending" or order.net_total <= 0:
        if referral is not None:
            referral.status = "void"
        return 0
    cfg = coupons.config(session, order.merchant_id).referral
    referrer = session.get(Customer, referral.referrer_id)
    assert referrer is not None
    if cfg.reward_kind == "points":
        default_loyalty.award_points(
            session,
            customer=referrer,
            points=cfg.reward_value,
            reason="referral.reward",
            key=f"referral:{referral.id}",
            now=now,
        )
    elif cfg.reward_kind == "credit":
        wallet.credit(
            session,
            referrer,
            amount=cfg.reward_value,
            currency=order.currency,
            source_key=f"referral:{referral.id}",
            reason="referral.reward",
            now=now,
        )
    else:
        coupons.issue_personal(
            session,
            programme_id=order.programme_id,
            merchant_id=order.merchant_id,
            customer_id=referrer.id,
            source_ref=f"referral:{referral.id}",
            now=now,
            kind="amount_off",
            value=cfg.reward_value,
            name="referral reward",
            origin="referral",
        )
    referral.status, referral.rewarded_at = "rewarded", now
    return cfg.reward_value
