"""Event subscribers of messaging; they run in the transaction of the write that appended the
event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fidele.events.bus import on_event
from fidele.events.models import Event
from fidele.messaging import conversions
from fidele.orders.models import Order


@on_event("order.placed")
def attribute_conversion(session: Session, event: Event, now: datetime) -> None:
    """Credit the order to the message the customer last clicked or opened, if any."""
    order = None if event.order_id is None else session.get(Order, event.order_id)
    if order is not None:
        conversions.attribute(session, order)
