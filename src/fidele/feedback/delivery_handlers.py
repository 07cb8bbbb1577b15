"""Event subscriptions of delivery experience."""

from __future__ import annotations

from fidele.events import domain as ev
from fidele.events.bus import on_event
from fidele.feedback import delivery_service

on_event(ev.ORDER_PLACED)(delivery_service.on_placed)
on_event(ev.ORDER_STATUS["delivered"])(delivery_service.on_delivered)
