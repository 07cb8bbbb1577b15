"""Shopify webhook payloads (REST Admin API shapes) mapped onto fidele's input models.

Pure functions of the payload: no I/O. Money arrives as decimal strings in the order's
``currency`` and becomes integer minor units exactly. With ``taxes_included`` the tax is inside
the prices: the order is stored with ``prices_include_tax`` and its tax (total and per line),
so points are earned on the same tax-free base as for a tax-exclusive shop."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from fidele.customers.schemas import ConsentIn, CustomerIn
from fidele.errors import InvalidInput
from fidele.feedback.delivery_schemas import DeliveryIn
from fidele.ingest.amounts import order_amounts, parse_time, to_minor
from fidele.ingest.connectors.shop import (
    Fulfilled,
    Package,
    ShopOrder,
    delivery_in,
    external_id,
    line_name,
)
from fidele.kit.clock import as_utc
from fidele.orders.schemas import LineIn, OrderIn, RefundIn

ORDER_TOPICS = (
    "orders/create",
    "orders/updated",
    "orders/paid",
    "orders/cancelled",
    "orders/fulfilled",
)
REFUND_TOPIC = "refunds/create"
EVENT_TOPIC = "fulfillment_events/create"
FULFILLMENT_TOPICS = ("fulfillments/create", "fulfillments/update", EVENT_TOPIC)
# A fulfillment's ``status``: cancelled, error and failure shipped nothing.
LIVE_FULFILLMENT = frozenset({"success", "open", "pending"})
CUSTOMER_TOPIC = "customers/create"
# ``financial_status``: captured money; pending, authorized (not captured), partially_paid
# and unpaid earn nothing yet; voided and expired were never paid (the order is cancelled).
PAID = frozenset({"paid", "partially_refunded", "refunded"})
NEVER_PAID = frozenset({"voided", "expired"})


def customer_id(order: dict[str, Any]) -> str:
    """The shop's customer id, or a guest id derived from the order for guest checkouts."""
    customer = order.get("customer") or {}
    if customer.get("id") is not None:
        return str(customer["id"])
    return f"guest-{order['id']}"


def _tax_of(obj: dict[str, Any], currency: str, field: str) -> int:
    return sum(to_minor(t.get("price"), currency, field=field) for t in obj.get("tax_lines") or [])


def _line(item: dict[str, Any], currency: str, per_line_tax: bool) -> LineIn:
    product = item.get("product_id") or item.get("variant_id") or item.get("sku") or item["id"]
    variant = item.get("variant_id")
    return LineIn(
        product_id=str(product),
        line_id=str(item["id"]),
        variant_id=str(variant) if variant is not None else None,
        name=line_name(item.get("name") or item.get("title")),
        category=item.get("product_type") or None,
        quantity=int(item["quantity"]),
        unit_price=to_minor(item.get("price"), currency, field="line_items.price"),
        # without tax lines on any line, the split of the order's tax is not known
        tax=_tax_of(item, currency, "line_items.tax_lines") if per_line_tax else None,
    )


def _shipping(order: dict[str, Any], currency: str) -> int:
    lines = order.get("shipping_lines") or []
    if lines:
        return sum(to_minor(s.get("price"), currency, field="shipping_lines.price") for s in lines)
    shop_money = (order.get("total_shipping_price_set") or {}).get("shop_money") or {}
    return to_minor(shop_money.get("amount"), currency, field="total_shipping_price_set")


def order_in(order: dict[str, Any]) -> OrderIn:
    """An order payload (``orders/*`` topics) as an :class:`OrderIn`."""
    currency = str(order.get("currency") or "").upper()
    items = [i for i in order.get("line_items") or [] if int(i["quantity"]) > 0]
    per_line_tax = any(i.get("tax_lines") for i in items)
    lines = [_line(i, currency, per_line_tax) for i in items]
    if not lines:
        raise InvalidInput("the order has no line items", field="line_items")
    included = bool(order.get("taxes_included"))
    amounts = order_amounts(
        sum(ln.quantity * ln.unit_price for ln in lines),
        discounts=to_minor(order.get("total_discounts"), currency, field="total_discounts"),
        shipping=_shipping(order, currency),
        tax=to_minor(order.get("total_tax"), currency, field="total_tax"),
        total=to_minor(order.get("total_price"), currency, field="total_price"),
        prices_include_tax=included,
    )
    customer = order.get("customer") or {}
    contact = order.get("contact_email") or order.get("email") or None
    email = customer.get("email") or contact
    attributes = {"shopify_name": order.get("name"), "order_number": order.get("order_number")}
    if contact and contact != email:
        attributes["contact_email"] = contact
    return OrderIn(
        id=str(order["id"]),
        customer_id=customer_id(order),
        placed_at=parse_time(order.get("created_at") or order.get("processed_at")),
        currency=currency,
        lines=lines,
        **amounts,
        prices_include_tax=included,
        payment_status="paid" if order.get("financial_status") in PAID else "pending",
        channel=order.get("source_name") or "shopify",
        email=email,
        codes=[d["code"] for d in order.get("discount_codes") or [] if d.get("code")],
        attributes=attributes,
    )


def shop_order(order: dict[str, Any]) -> ShopOrder:
    """The order with its payment and cancellation as Shopify reports them."""
    data = order_in(order)
    updated = _when(order, "updated_at") or data.placed_at
    cancelled = order.get("cancelled_at") or order.get("financial_status") in NEVER_PAID
    customer = order.get("customer") or {}
    delivery, delivered_at = order_delivery(order, data.placed_at)
    fulfilled: Fulfilled | None = None
    if order.get("fulfillment_status") == "fulfilled":
        fulfilled = ("delivered", delivered_at) if delivered_at else ("shipped", updated)
    fulfillments = [f for f in order.get("fulfillments") or [] if f.get("id") is not None]
    return ShopOrder(
        data=data,
        # no payment time in the payload: the order changed when it was paid
        paid_at=updated if data.payment_status == "paid" else None,
        cancelled_at=(_when(order, "cancelled_at") or updated) if cancelled else None,
        fulfilled=fulfilled,
        customer=customer_in(customer) if customer.get("id") is not None else None,
        delivery=delivery,
        packages=[package(f, data.placed_at, "fulfillments.") for f in fulfillments],
    )


def _when(obj: dict[str, Any], key: str, field: str | None = None) -> datetime | None:
    return parse_time(obj[key], field=field or key) if obj.get(key) else None


def _facts(
    f: dict[str, Any], placed_at: datetime, prefix: str
) -> tuple[datetime | None, datetime | None]:
    """A fulfillment's carrier estimate, and its delivery (``shipment_status`` delivered: the
    fulfillment's ``updated_at``, the REST payload having no delivery time of its own)."""
    promised = _when(f, "estimated_delivery_at", f"{prefix}estimated_delivery_at")
    delivered = None
    if f.get("shipment_status") == "delivered":
        delivered = _when(f, "updated_at", f"{prefix}updated_at")
        _after(delivered, placed_at, f"{prefix}updated_at")
    return promised, delivered


def _after(at: datetime | None, placed_at: datetime, field: str) -> None:
    if at is not None and at < as_utc(placed_at):
        raise InvalidInput("delivered before the order was placed", field=field)


def order_delivery(
    order: dict[str, Any], placed_at: datetime
) -> tuple[DeliveryIn | None, datetime | None]:
    """The order's delivery from its ``fulfillments``: the earliest carrier estimate
    (``estimated_delivery_at``) as the promise, the first ``tracking_company`` as the carrier,
    and delivered (at the last package's time) once the order is ``fulfilled`` and every live
    fulfillment's ``shipment_status`` is ``delivered``."""
    live = [
        f
        for f in order.get("fulfillments") or []
        if (f.get("status") or "success") in LIVE_FULFILLMENT
    ]
    facts = [_facts(f, placed_at, "fulfillments.") for f in live]
    promises = [p for p, _ in facts if p is not None]
    done = [d for _, d in facts if d is not None]
    delivered = None
    if live and len(done) == len(live) and order.get("fulfillment_status") == "fulfilled":
        delivered = max(done)
    carrier = next((f["tracking_company"] for f in live if f.get("tracking_company")), None)
    return delivery_in(min(promises, default=None), delivered, carrier), delivered


def fulfillment(f: dict[str, Any], placed_at: datetime) -> tuple[DeliveryIn | None, Package]:
    """A ``fulfillments/create|update`` payload: the carrier and its estimate (none for a
    cancelled fulfillment), and the package (the order is delivered once all its packages
    are: see :func:`packages_delivered`)."""
    p = package(f, placed_at)
    if not p.live:
        return None, p
    promised = _when(f, "estimated_delivery_at")
    return delivery_in(promised, p.delivered_at, f.get("tracking_company")), p


def package(f: dict[str, Any], placed_at: datetime, prefix: str = "") -> Package:
    """A fulfillment (a ``fulfillments/*`` payload, or one of an order's ``fulfillments``) as
    a package: live unless cancelled or failed, its line items' quantities, its delivery."""
    live = (f.get("status") or "success") in LIVE_FULFILLMENT
    lines = None
    if isinstance(f.get("line_items"), list):
        counted: Counter[str] = Counter()
        for item in f["line_items"]:
            counted[str(item["id"])] += int(item["quantity"])
        lines = dict(counted)
    delivered = _facts(f, placed_at, prefix)[1] if live else None
    return Package(external_id(f, "id"), live, lines, delivered)


def packages_delivered(
    to_ship: Mapping[str, int] | None, packages: Sequence[Package]
) -> datetime | None:
    """When the order arrived, from its packages known so far (at the last one's delivery),
    or None: every live package fidele knows of is delivered and, when their lines are known
    (``to_ship``: line id -> quantity not refunded; None when a line of the order has no id),
    together they hold every line still to ship. A package known only from a carrier's event
    has no lines: then the packages known are taken for the whole order (a package fidele
    never heard of cannot hold it back)."""
    live = [p for p in packages if p.live]
    if not live or any(p.delivered_at is None for p in live):
        return None
    if to_ship is not None and all(p.lines is not None for p in live):
        shipped: Counter[str] = Counter()
        for p in live:
            shipped.update(p.lines or {})
        if any(shipped[line] < quantity for line, quantity in to_ship.items()):
            return None
    return max(p.delivered_at for p in live if p.delivered_at is not None)


def fulfillment_event(
    event: dict[str, Any], placed_at: datetime
) -> tuple[DeliveryIn | None, Package]:
    """A ``fulfillment_events/create`` payload: any event's ``estimated_delivery_at`` is the
    carrier's estimate; the package it speaks of is live, delivered at ``happened_at`` when
    ``status`` is delivered, its lines unknown (the event does not list them)."""
    promised = _when(event, "estimated_delivery_at")
    delivered = None
    if event.get("status") == "delivered":
        delivered = parse_time(event.get("happened_at"), field="happened_at")
        _after(delivered, placed_at, "happened_at")
    p = Package(external_id(event, "fulfillment_id"), True, None, delivered)
    return delivery_in(promised, delivered, None), p


def refund_in(refund: dict[str, Any], currency: str) -> RefundIn | None:
    """A ``refunds/create`` payload: the money actually paid back, from its successful
    ``refund`` transactions. ``None`` when no money went back (a ``void`` of an uncaptured
    payment, or a restock without refund): fidele never books money that was not returned."""
    paid_back = [
        t
        for t in refund.get("transactions") or []
        if t.get("kind") == "refund" and t.get("status", "success") == "success"
    ]
    amount = sum(
        to_minor(t.get("amount"), t.get("currency") or currency, field="transactions.amount")
        for t in paid_back
    )
    if not amount:
        return None
    return RefundIn(
        id=str(refund["id"]),
        amount=amount,
        reason=(refund.get("note") or None),
        occurred_at=refund_time(refund),
    )


def refund_time(refund: dict[str, Any]) -> datetime:
    return parse_time(refund.get("created_at") or refund.get("processed_at"), field="created_at")


def is_void(refund: dict[str, Any]) -> bool:
    """A refund whose transactions are only successful voids: the payment was never captured,
    so the order is cancelled rather than refunded."""
    kinds = {
        t.get("kind")
        for t in refund.get("transactions") or []
        if t.get("status", "success") == "success"
    }
    return kinds == {"void"}


def customer_in(customer: dict[str, Any]) -> CustomerIn:
    """A ``customers/create`` payload (or an order's ``customer``); consent from
    ``email_marketing_consent`` (current API) or ``accepts_marketing`` (older versions)."""
    address = customer.get("default_address") or {}
    data: dict[str, Any] = {
        "email": customer.get("email") or None,
        "first_name": customer.get("first_name") or None,
        "last_name": customer.get("last_name") or None,
        "country": address.get("country_code") or None,
    }
    if customer.get("locale"):
        data["locale"] = customer["locale"]
    consent = _consent(customer)
    if consent is not None:
        data["consent"] = consent
    return CustomerIn(**{k: v for k, v in data.items() if v is not None})


def _consent(customer: dict[str, Any]) -> ConsentIn | None:
    emc = customer.get("email_marketing_consent")
    if isinstance(emc, dict) and emc.get("state"):
        at = emc.get("consent_updated_at")
        return ConsentIn(
            email_marketing=emc["state"] == "subscribed",
            at=parse_time(at, field="consent_updated_at") if at else None,
            source="shopify",
        )
    if "accepts_marketing" in customer:
        return ConsentIn(email_marketing=bool(customer["accepts_marketing"]), source="shopify")
    return None
