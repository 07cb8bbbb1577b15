"""Event subscribers; they run in the transaction of the write that appended the event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.events.bus import on_event
from fidele.events.models import Event
from fidele.orders.models import Order
from fidele.promotions import giftcards, referrals, rewards, service


def _order(session: Session, event: Event) -> Order | None:
    return None if event.order_id is None else session.get(Order, event.order_id)


@on_event("order.placed")
def order_placed(session: Session, event: Event, now: datetime) -> None:
    """Gift card lines create gift cards (one per unit); a referral code records a referral."""
    order = _order(session, event)
    if order is None:
        return
    for line in order.lines:
        if line.kind == "gift_card":
            _gift_cards_of_line(session, order, line.line_no, line.quantity, line.unit_price, now)
    referrals.on_order_placed(session, order, list(event.payload.get("codes") or []), now)


def _gift_cards_of_line(
    session: Session, order: Order, line_no: int, quantity: int, amount: int, now: datetime
) -> None:
    customer = session.get(Customer, order.customer_id)
    to = (order.attributes or {}).get("gift_card_recipient") or (customer and customer.email)
    for unit in range(quantity):
        giftcards.issue(
            session,
            programme_id=order.programme_id,
            merchant_id=order.merchant_id,
            amount=amount,
            currency=order.currency,
            now=now,
            recipient_email=to,
            order_id=order.id,
            source_ref=f"order:{order.id}:{line_no}:{unit}",
        )


@on_event("order.delivered")
def order_delivered(session: Session, event: Event, now: datetime) -> None:
    order = _order(session, event)
    if order is None:
        return
    rewards.issue_next_order(session, order, now)
    rewards.schedule(session, order, now)


@on_event("order.refunded")
def order_refunded(session: Session, event: Event, now: datetime) -> None:
    """Restore gift card / wallet shares of the refund and claw back credited cashback."""
    order = _order(session, event)
    if order is None:
        return
    service.restore_on_refund(session, order.merchant_id, event.payload, now)
    rewards.claw_back_cashback(session, order, event.payload, now)
