"""Shopify webhook payloads (REST Admin API shapes) mapped onto fidele's input models.

Pure functions of the payload: no I/O. Money arrives as decimal strings in the order's
``currency`` and becomes integer minor units exactly. With ``taxes_included`` the tax is inside
the prices, so it counts as 0 in the ``total`` equation."""

from __future__ import annotations

from typing import Any

from fidele.customers.schemas import ConsentIn, CustomerIn
from fidele.errors import InvalidInput
from fidele.events.amounts import order_amounts, parse_time, to_minor
from fidele.orders.schemas import LineIn, OrderIn, RefundIn

ORDER_TOPICS = ("orders/create", "orders/paid")
REFUND_TOPIC = "refunds/create"
CUSTOMER_TOPIC = "customers/create"


def customer_id(order: dict[str, Any]) -> str:
    """The shop's customer id, or a guest id derived from the order for guest checkouts."""
    customer = order.get("customer") or {}
    if customer.get("id") is not None:
        return str(customer["id"])
    return f"guest-{order['id']}"


def _line(item: dict[str, Any], currency: str) -> LineIn:
    product = item.get("product_id") or item.get("variant_id") or item.get("sku") or item["id"]
    return LineIn(
        product_id=str(product),
        name=(item.get("title") or item.get("name") or None),
        category=item.get("product_type") or None,
        quantity=int(item["quantity"]),
        unit_price=to_minor(item.get("price"), currency, field="line_items.price"),
    )


def _shipping(order: dict[str, Any], currency: str) -> int:
    lines = order.get("shipping_lines") or []
    if lines:
        return sum(to_minor(s.get("price"), currency, field="shipping_lines.price") for s in lines)
    shop_money = (order.get("total_shipping_price_set") or {}).get("shop_money") or {}
    return to_minor(shop_money.get("amount"), currency, field="total_shipping_price_set")


def order_in(order: dict[str, Any]) -> OrderIn:
    """An ``orders/create`` or ``orders/paid`` payload as an :class:`OrderIn`."""
    currency = str(order.get("currency") or "").upper()
    lines = [_line(i, currency) for i in order.get("line_items") or [] if int(i["quantity"]) > 0]
    if not lines:
        raise InvalidInput("the order has no line items", field="line_items")
    tax = (
        0
        if order.get("taxes_included")
        else to_minor(order.get("total_tax"), currency, field="total_tax")
    )
    amounts = order_amounts(
        sum(ln.quantity * ln.unit_price for ln in lines),
        discounts=to_minor(order.get("total_discounts"), currency, field="total_discounts"),
        shipping=_shipping(order, currency),
        tax=tax,
        total=to_minor(order.get("total_price"), currency, field="total_price"),
    )
    customer = order.get("customer") or {}
    return OrderIn(
        id=str(order["id"]),
        customer_id=customer_id(order),
        placed_at=parse_time(order.get("created_at") or order.get("processed_at")),
        currency=currency,
        lines=lines,
        **amounts,
        channel=order.get("source_name") or "shopify",
        email=order.get("email") or customer.get("email") or None,
        codes=[d["code"] for d in order.get("discount_codes") or [] if d.get("code")],
        attributes={"shopify_name": order.get("name"), "order_number": order.get("order_number")},
    )


def refund_in(refund: dict[str, Any], currency: str) -> RefundIn:
    """A ``refunds/create`` payload: the amount actually paid back (its successful refund
    transactions), or, without transactions, the refunded line items."""
    paid_back = [
        t
        for t in refund.get("transactions") or []
        if t.get("kind") == "refund" and t.get("status", "success") == "success"
    ]
    occurred_at = parse_time(
        refund.get("created_at") or refund.get("processed_at"), field="created_at"
    )
    common = {
        "id": str(refund["id"]),
        "reason": (refund.get("note") or None),
        "occurred_at": occurred_at,
    }
    if paid_back:
        amount = sum(
            to_minor(t.get("amount"), t.get("currency") or currency, field="transactions.amount")
            for t in paid_back
        )
        return RefundIn(amount=amount, **common)
    items = refund.get("refund_line_items") or []
    if not items:
        raise InvalidInput("the refund has neither transactions nor line items", field="refund")
    return RefundIn(
        lines=[{"product_id": _refund_product(i), "quantity": int(i["quantity"])} for i in items],
        **common,
    )


def _refund_product(item: dict[str, Any]) -> str:
    line = item.get("line_item") or {}
    product = line.get("product_id") or line.get("variant_id") or line.get("sku")
    return str(product or item.get("line_item_id"))


def customer_in(customer: dict[str, Any]) -> CustomerIn:
    """A ``customers/create`` payload; consent from ``email_marketing_consent`` (current API)
    or ``accepts_marketing`` (older versions)."""
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
