"""Conversion attribution: an order is credited to the last message the customer clicked within
the click window before placing it (5 days by default), or else the last one they opened
within the open window (3 days); a click beats an open. One message per order (last touch).

A merchant may change the windows (``PUT /v1/messages/measurement``; 0 turns a kind off)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from fidele.messaging.measure_models import MeasurementSettings
from fidele.messaging.measure_repository import TrackingRepository
from fidele.orders.models import Order

CLICK_DAYS = 5
OPEN_DAYS = 3


def windows(session: Session, merchant_id: int) -> tuple[timedelta, timedelta]:
    """(click window, open window) of the merchant."""
    conf = session.get(MeasurementSettings, merchant_id)
    if conf is None:
        return timedelta(days=CLICK_DAYS), timedelta(days=OPEN_DAYS)
    return timedelta(days=conf.click_days), timedelta(days=conf.open_days)


def attribute(session: Session, order: Order) -> int | None:
    """Record the order's conversion, if a message earned it; the conversion's id or None.
    Idempotent: an order is attributed once."""
    repo = TrackingRepository(session)
    click_window, open_window = windows(session, order.merchant_id)
    placed = order.placed_at
    touch = None
    if click_window:
        touch = repo.last_touch(order.customer_id, "click", placed, placed - click_window)
    if touch is None and open_window:
        touch = repo.last_touch(order.customer_id, "open", placed, placed - open_window)
    if touch is None:
        return None
    return repo.add_conversion(
        {
            "merchant_id": order.merchant_id,
            "customer_id": order.customer_id,
            "order_id": order.id,
            "send_id": touch.send_id,
            "touch": touch.kind,
            "touched_at": min(touch.last_at, placed),
            "placed_at": placed,
        }
    )
