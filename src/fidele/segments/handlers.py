"""Event subscriptions of segments: a customer's own events mark them dirty (re-evaluated
within seconds by the membership loop); built-in segments for every new merchant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fidele.events import domain as ev
from fidele.events.bus import on_event, on_merchant_created
from fidele.events.models import Event
from fidele.feedback import domain as feedback
from fidele.feedback.complaints_service import COMPLAINT_OPENED
from fidele.messaging.consent import on_consent_changed
from fidele.orders.models import Order
from fidele.segments import membership, service
from fidele.segments.repository import DirtyRepository
from fidele.tenancy.models import Merchant

# What feedback writes about a customer (the ``feedback.*`` fields): an answer given or
# changed (``survey.answered`` is the webhook's spelling, should a shop record it itself), a
# review posted, a complaint opened, resolved or rejected.
FEEDBACK_EVENTS = frozenset(
    {
        *feedback.ANSWER_EVENTS,
        feedback.WEBHOOK_SURVEY_ANSWERED,
        feedback.REVIEW_POSTED,
        COMPLAINT_OPENED,
        ev.COMPLAINT_RESOLVED,
        ev.COMPLAINT_REJECTED,
    }
)


def change_kinds(event_type: str) -> set[str]:
    """What an event of this type can change about its customer (``membership.KIND_BITS``)."""
    if event_type.startswith("segment."):
        return set()  # our own output: re-evaluating on it would loop
    if event_type == ev.CUSTOMER_UPSERTED:
        return {"customer", "consent", "event"}
    if event_type.startswith("order."):
        return {"order", "loyalty", "event"}
    if event_type.startswith(("loyalty.", "membership.")):
        return {"loyalty", "event"}
    if event_type in FEEDBACK_EVENTS:
        return {"feedback", "event", "loyalty"}  # answers and reviews may earn points
    if "consent" in event_type or "subscri" in event_type:
        return {"consent", "event", "loyalty"}
    return {"event", "loyalty"}  # a custom action may earn points


@on_event(ev.ORDER_PLACED, ev.ORDER_STATUS["cancelled"], ev.ORDER_REFUNDED)
def order_facts(session: Session, event: Event, now: datetime) -> None:
    """An order placed, cancelled or refunded: the customer's order facts follow in the same
    transaction (the compiler reads them): a new order is counted in (one upsert), anything
    else recomputes them from the orders. Other status changes (paid, shipped, delivered)
    change no fact. Specific-type handlers run before the ``*`` ones, so a flow trigger
    evaluating a rule on this event sees them."""
    if event.customer_id is None:
        return
    order = None
    if event.type == ev.ORDER_PLACED and event.order_id is not None:
        order = session.get(Order, event.order_id)  # in the session already: no SELECT
    if order is not None and order.status != "cancelled" and order.customer_id == event.customer_id:
        service.count_new_order(session, order)
    else:
        service.refresh_order_facts(session, [event.customer_id])


@on_event("*")
def mark_dirty(session: Session, event: Event, now: datetime) -> None:
    if event.customer_id is None:
        return
    if event.type == ev.CUSTOMER_ERASED:
        return  # the GDPR eraser (segments.gdpr) drops the memberships
    kinds = change_kinds(event.type)
    if kinds:
        mask = membership.kinds_mask(kinds)
        DirtyRepository(session).mark(event.merchant_id, event.customer_id, mask, now)


@on_merchant_created
def install_builtins(session: Session, merchant: Merchant, now: datetime) -> None:
    service.ensure_builtins(session, merchant.id, now)


@on_consent_changed
def consent_changed(session: Session, merchant_id: int, customer_id: int, now: datetime) -> None:
    """A consent given or withdrawn (API, unsubscribe link, preference page, a journey's
    goodbye) reaches the consent rules within seconds, like an event would."""
    membership.mark_changed(
        session, merchant_id=merchant_id, customer_id=customer_id, kinds={"consent"}, now=now
    )
