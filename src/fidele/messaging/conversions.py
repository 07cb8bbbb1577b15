"""Conversion attribution: an order is credited to the last message the customer clicked within
the click window before placing it (5 days by default), or else the last one they opened
within the open window (3 days); a click beats an open. One message per order (last touch).

A merchant may change the windows (``PUT /v1/messages/measurement``; 0 turns a kind off)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from fidele.kit.cache import ProcessCache
from fidele.messaging.measure_models import MeasurementSettings
from fidele.messaging.measure_repository import TrackingRepository
from fidele.orders.models import Order

CLICK_DAYS = 5
OPEN_DAYS = 3


# Every order reads its merchant's windows: per process, for 2 s (a change through this
# process applies at once, through another within that time).
_windows: ProcessCache[tuple[timedelta, timedelta]] = ProcessCache(
    "conversion_windows",
    2.0,
    lambda objects: any(isinstance(o, MeasurementSettings) for o in objects),
)


def windows(session: Session, merchant_id: int) -> tuple[timedelta, timedelta]:
    """(click window, open window) of the merchant."""

    def load() -> tuple[timedelta, timedelta]:
        conf = session.get(MeasurementSettings, merchant_id)
        if conf is None:
            return timedelta(days=CLICK_DAYS), timedelta(days=OPEN_DAYS)
        return timedelta(days=conf.click_days), timedelta(days=conf.open_days)

    return _windows.get(session, merchant_id, load)


def attribute(session: Session, order: Order) -> int | None:
    """Record the order's conversion, if a message earned it; the conversion's id or None.
    Idempotent: an order is attributed once."""
    repo = TrackingRepository(session)
    click_window, open_window = windows(session, order.merchant_id)
    placed = order.placed_at
    touch = repo.last_touch_of(
        order.customer_id,
        placed,
        placed - click_window if click_window else None,
        placed - open_window if open_window else None,
    )
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
