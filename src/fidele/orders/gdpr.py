"""The orders domain's part of a person's GDPR export and erasure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.gdpr import Erasure, eraser, exporter
from fidele.customers.models import Customer
from fidele.orders import service
from fidele.orders.repository import OrderRepository


@exporter("orders")
def export_orders(session: Session, customer: Customer, now: datetime) -> list[dict[str, Any]]:
    return [
        service.view(session, o, customer.external_id).model_dump(mode="json")
        for o in OrderRepository(session).for_customer(customer.id)
    ]


@eraser
def erase_orders(session: Session, erasure: Erasure) -> None:
    """Orders keep their amounts, lines and dates; their free-form ``attributes`` (shipping
    address, device and payment fingerprints, gift message) and refund reasons go."""
    for order in OrderRepository(session).for_customer(erasure.customer.id):
        order.attributes = {}
        for refund in order.refunds:
            refund.reason = None
