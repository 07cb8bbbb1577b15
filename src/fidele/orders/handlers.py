"""The orders domain's part of a person's GDPR export."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.gdpr import exporter
from fidele.customers.models import Customer
from fidele.orders import service
from fidele.orders.repository import OrderRepository


@exporter("orders")
def export_orders(session: Session, customer: Customer) -> list[dict[str, Any]]:
    return [
        service.view(session, o, customer.external_id).model_dump(mode="json")
        for o in OrderRepository(session).for_customer(customer.id)
    ]
