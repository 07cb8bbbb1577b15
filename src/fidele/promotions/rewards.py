"""After-order rewards: next-order coupons on delivery, cashback after the return window."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.kit.money import mul_bp
from fidele.orders.models import Order
from fidele.promotions import coupons, domain, mail, referrals, wallet
from fidele.promotions.models import Coupon, PendingReward
from fidele.promotions.repository import (
    CouponRepository,
    PendingRepository,
    ReferralRepository,
    insert_or_twin,
)


def issue_next_order(session: Session, order: Order, now: datetime) -> Coupon | None:
    """A single-use coupon for the customer's next order, worth more the sooner it is used,
    with its customer-facing text (parcel insert or email)."""
    cfg = coupons.config(session, order.merchant_id)
    rule = cfg.next_order
    if not rule.enabled or order.subtotal < rule.min_subtotal or not rule.schedule:
        return None
    issued = order.delivered_at or now
    longest = max(days for days, _ in rule.schedule)
    coupon = coupons.issue_personal(
        session,
        programme_id=order.programme_id,
        merchant_id=order.merchant_id,
        customer_id=order.customer_id,
        source_ref=f"next_order:{order.id}",
        now=now,
        kind="percent_off",
        value=0,
        schedule=[list(s) for s in rule.schedule],
        starts_at=issued,
        ends_at=issued + timedelta(days=longest),
        name="next order",
        origin="next_order",
    )
    if coupon.text is None:
        coupon.text = domain.next_order_text(
            coupon.display_code or "", rule.schedule, issued, cfg.shop_name
        )
    if rule.email:
        _email_next_order(session, order, coupon, rule.schedule, issued, now)
    return coupon


def _email_next_order(
    session: Session,
    order: Order,
    coupon: Coupon,
    schedule: list[tuple[int, int]],
    issued: datetime,
    now: datetime,
) -> None:
    """The coupon by email, to a customer with an address who accepts marketing email (a
    coupon is marketing); queued once per coupon, whatever the deliveries replayed."""
    customer = session.get(Customer, order.customer_id) if order.customer_id else None
    if customer is None or not customer.email or not customer.email_marketing:
        return
    mail.queue(
        session,
        programme_id=order.programme_id,
        merchant_id=order.merchant_id,
        topic="next_order_coupon.issued",
        dedup_key=f"next_order_coupon.issued:{coupon.id}",
        to=customer.email,
        now=now,
        code=coupon.display_code,
        text=coupon.text,
        order_id=order.external_id,
        ladder=[
            {"percent_bp": bp, "until": (issued + timedelta(days=days)).isoformat()}
            for days, bp in sorted(schedule)
        ],
        expires_at=coupon.ends_at.isoformat() if coupon.ends_at else None,
    )


def next_order_coupon(session: Session, merchant_id: int, order_id: int) -> Coupon | None:
    return CouponRepository(session).by_source_ref(merchant_id, f"next_order:{order_id}")


def schedule(session: Session, order: Order, now: datetime) -> None:
    """Cashback (when on) and the referral reward of a referee's first order wait for the
    return window after delivery."""
    cfg = coupons.config(session, order.merchant_id)
    referral = ReferralRepository(session).by_order(order.id)
    kinds = ["cashback"] if cfg.cashback_bp > 0 else []
    kinds += ["referral"] if referral is not None and referral.status == "pending" else []
    due = (order.delivered_at or now) + timedelta(days=cfg.return_window_days)
    for kind in kinds:
        row = PendingReward(
            merchant_id=order.merchant_id,
            kind=kind,
            order_id=order.id,
            due_at=due,
            status="pending",
        )
        insert_or_twin(session, row)


def run_due(session: Session, now: datetime, *, limit: int = 500) -> int:
    """Credit cashback and referral rewards whose return window has passed (the job)."""
    done = 0
    for pending in PendingRepository(session).due(now, limit):
        order = session.get(Order, pending.order_id)
        assert order is not None
        pending.amount = (_cashback if pending.kind == "cashback" else referrals.reward)(
            session, pending, order, now
        )
        pending.status = "done" if pending.amount else "void"
        pending.done_at = now
        done += 1
    return done


def _cashback(session: Session, pending: PendingReward, order: Order, now: datetime) -> int:
    bp = coupons.config(session, order.merchant_id).cashback_bp
    amount = mul_bp(order.net_total, bp)
    customer = session.get(Customer, order.customer_id)
    assert customer is not None
    wallet.credit(
        session,
        customer,
        amount=amount,
        currency=order.currency,
        source_key=f"cashback:{order.id}",
        reason="cashback",
        now=now,
    )
    return amount


def claw_back_cashback(
    session: Session, order: Order, payload: dict[str, Any], now: datetime
) -> int:
    """A refund after the cashback was credited takes back its share (never below zero)."""
    pending = PendingRepository(session).of_order("cashback", order.id)
    if pending is None or pending.status != "done":
        return 0
    after = int(payload["refunded_total"])
    [share] = domain.refund_shares(
        [pending.amount], order.total, after - int(payload["amount"]), after
    )
    customer = session.get(Customer, order.customer_id)
    assert customer is not None
    return wallet.claw_back(
        session,
        customer,
        amount=share,
        currency=order.currency,
        source_key=f"cashback:{order.id}:refund:{payload['refund_id']}",
        now=now,
    )
