"""Loyalty's subscriptions to the event log. They run in the writer's transaction, so
``POST /v1/orders`` answers with its pending points; :func:`route` is also the replay's path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.events.bus import before_append, on_event, on_programme_created
from fidele.events.models import Event
from fidele.kit.cache import memo
from fidele.loyalty import earning, members, membership, rewards
from fidele.loyalty.config import Action, default_scale
from fidele.loyalty.repository import LoyaltyRepository
from fidele.orders import service as orders
from fidele.orders.models import Order
from fidele.tenancy.models import Programme


def _customer_upserted(session: Session, event: Event, now: datetime) -> None:
    customer = session.get(Customer, event.customer_id) if event.customer_id else None
    if customer is not None and customer.erased_at is None:
        members.member_for(session, customer, now)


ROUTES: dict[str, Callable[[Session, Event, datetime], Any]] = {
    "order.placed": earning.on_order_placed,
    "order.paid": earning.on_order_paid,
    "order.delivered": earning.on_order_delivered,
    "order.cancelled": earning.on_order_cancelled,
    "order.refunded": earning.on_order_refunded,
    "customer.upserted": _customer_upserted,
    "loyalty.redemption": rewards.on_redemption,
    "loyalty.redemption_cancelled": rewards.on_cancel,
    "loyalty.burn": rewards.on_burn,
    "loyalty.burn_refund": rewards.on_burn_refund,
    "loyalty.adjustment": rewards.on_adjustment,
    "loyalty.voucher_used": rewards.on_voucher_used,
    "loyalty.voucher_released": rewards.on_voucher_released,
    **dict.fromkeys(membership.TYPES, membership.on_event),
}
# Written to the log by fidele itself, or outputs of loyalty: nothing to earn.
IGNORED_PREFIXES = ("loyalty.", "order.", "customer.", "promotion.", "campaign.")


def route(session: Session, event: Event, now: datetime) -> None:
    handler = ROUTES.get(event.type)
    if handler is not None:
        handler(session, event, now)
    elif not event.type.startswith(IGNORED_PREFIXES):
        earning.on_action(session, event, now)


@on_event("*")
def on_any(session: Session, event: Event, now: datetime) -> None:
    route(session, event, now)


@before_append
def hold_member(
    session: Session, programme_id: int, event_type: str, customer_id: int, now: datetime
) -> None:
    """Lock the member of an event loyalty will act on before the event gets its id: two
    orders of one customer written at once are then numbered in the order they earn, and the
    replay (in id order) earns each at the same tier, with the same first-order bonus and
    budgets. The read is the one the handler makes anyway (remembered by the transaction)."""
    if not _acts_on(session, programme_id, event_type, now):
        return
    customer = session.get(Customer, customer_id)
    if customer is not None and customer.erased_at is None:
        members.member_for(session, customer, now)


def _acts_on(session: Session, programme_id: int, event_type: str, now: datetime) -> bool:
    if event_type in ROUTES:
        return True
    if event_type.startswith(IGNORED_PREFIXES):
        return False
    scale = members.scale_at(session, programme_id, now)
    return any(isinstance(r, Action) and r.event_type == event_type for r in scale.rules)


@on_programme_created
def install_default_scale(session: Session, programme: Programme, now: datetime) -> None:
    members.set_scale(session, programme.id, default_scale(programme.currency), now)


def order_points(session: Session, order: Order) -> dict[str, Any] | None:
    earned = memo(session, earning.ORDER_LOTS)  # the lot this transaction just wrote, if any
    lot = earned.get(order.id) or LoyaltyRepository(session).order_lot(order.id)
    if lot is None:
        return None
    return {
        "earned": lot.points - lot.clawed,
        "pending": lot.remaining if lot.status == "pending" else 0,
        "status": lot.status,
        "available_at": lot.available_at.isoformat(),
        "rules": lot.detail,
    }


orders.view_extensions["loyalty"] = order_points
