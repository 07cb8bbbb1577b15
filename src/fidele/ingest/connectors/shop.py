"""What every connector maps a shop's order onto: the order as placed, and the payment,
cancellation, fulfilment and refunds the shop reports for it."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import TypeAdapter

from fidele.customers.schemas import CustomerIn
from fidele.feedback.delivery_schemas import DeliveryIn
from fidele.kit.schemas import ExternalId
from fidele.orders.schemas import OrderIn, RefundIn

_EXTERNAL_ID: TypeAdapter[str] = TypeAdapter(ExternalId)


def external_id(payload: dict[str, Any], key: str = "id") -> str:
    """A payload's id, held to the API's rules for ids (1-255 characters, no slash)."""
    return _EXTERNAL_ID.validate_python(str(payload[key]))


Fulfilled = tuple[Literal["shipped", "delivered"], datetime | None]


@dataclass(frozen=True)
class Package:
    """One package (a Shopify fulfillment) of an order: ``live`` unless cancelled, its
    ``lines`` (the shop's line id -> quantity; None when the payload does not list them, as a
    carrier's event) and when the carrier delivered it."""

    package_id: str
    live: bool
    lines: dict[str, int] | None
    delivered_at: datetime | None


@dataclass(frozen=True)
class ShopOrder:
    """``data`` is the order as first recorded (``payment_status`` pending unless paid);
    ``paid_at`` set once the shop has the money; ``cancelled_at`` once it cancelled the order
    (before or after payment); ``fulfilled`` a later status (shipped, delivered) and its time;
    ``customer`` the order's customer record (names), used when the customer is unknown;
    ``delivery`` the promised and actual delivery and the carrier, when the shop gives any;
    ``packages`` the order's packages as the payload lists them (remembered for the webhooks
    that later speak of one package alone)."""

    data: OrderIn
    paid_at: datetime | None = None
    cancelled_at: datetime | None = None
    fulfilled: Fulfilled | None = None
    customer: CustomerIn | None = None
    refunds: list[RefundIn] = field(default_factory=list)
    delivery: DeliveryIn | None = None
    packages: list[Package] = field(default_factory=list)


def delivery_in(
    promised_at: datetime | None, delivered_at: datetime | None, carrier: object
) -> DeliveryIn | None:
    """What a shop says of the delivery, or ``None`` without a promise or a carrier: a bare
    delivery is the order's ``delivered`` status alone (judged if a promise comes later)."""
    name = str(carrier).strip()[:100] if carrier not in (None, "") else None
    if promised_at is None and not name:
        return None
    return DeliveryIn(promised_at=promised_at, delivered_at=delivered_at, carrier=name or None)


def line_name(value: object) -> str | None:
    """A line's name as shown to people: HTML entities decoded (WooCommerce sends ``&ndash;``)."""
    if value is None or value == "":
        return None
    return html.unescape(str(value)).strip()[:500] or None
