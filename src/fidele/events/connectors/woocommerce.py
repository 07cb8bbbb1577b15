"""WooCommerce webhook payloads (REST API v3 shapes) mapped onto fidele's input models.

Pure functions of the payload. WooCommerce sends money as decimal strings in the order's
``currency``; line ``subtotal`` is the line before coupons, ex tax; ``*_gmt`` times carry no
zone and are UTC. Guests have ``customer_id`` 0 and get a guest id derived from the order."""

from __future__ import annotations

from typing import Any

from fidele.customers.schemas import CustomerIn
from fidele.errors import InvalidInput
from fidele.events.amounts import order_amounts, parse_time, to_minor
from fidele.kit.money import div_round
from fidele.orders.schemas import LineIn, OrderIn, RefundIn

ORDER_TOPICS = ("order.created", "order.updated")
CUSTOMER_TOPICS = ("customer.created", "customer.updated")
# WooCommerce statuses that fidele records as a status change of the order.
STATUS = {"completed": "delivered", "cancelled": "cancelled"}


def customer_id(order: dict[str, Any]) -> str:
    cid = order.get("customer_id")
    return str(cid) if cid not in (None, 0, "0", "") else f"guest-{order['id']}"


def _time(obj: dict[str, Any], name: str) -> Any:
    gmt = obj.get(f"{name}_gmt")
    return parse_time(gmt, naive_is_utc=True, field=f"{name}_gmt") if gmt else None


def _line(item: dict[str, Any], currency: str) -> LineIn:
    quantity = int(item["quantity"])
    subtotal = to_minor(item.get("subtotal"), currency, field="line_items.subtotal")
    product = item.get("variation_id") or item.get("product_id") or item.get("sku") or item["id"]
    return LineIn(
        product_id=str(product),
        name=item.get("name") or None,
        quantity=quantity,
        # a per-unit price that does not divide exactly is reconciled into tax/discounts
        unit_price=div_round(subtotal, quantity),
    )


def order_in(order: dict[str, Any]) -> OrderIn:
    currency = str(order.get("currency") or "").upper()
    lines = [_line(i, currency) for i in order.get("line_items") or [] if int(i["quantity"]) > 0]
    if not lines:
        raise InvalidInput("the order has no line items", field="line_items")
    amounts = order_amounts(
        sum(ln.quantity * ln.unit_price for ln in lines),
        discounts=to_minor(order.get("discount_total"), currency, field="discount_total"),
        shipping=to_minor(order.get("shipping_total"), currency, field="shipping_total"),
        tax=to_minor(order.get("total_tax"), currency, field="total_tax"),
        total=to_minor(order.get("total"), currency, field="total"),
    )
    billing = order.get("billing") or {}
    return OrderIn(
        id=str(order["id"]),
        customer_id=customer_id(order),
        placed_at=_time(order, "date_created"),
        currency=currency,
        lines=lines,
        **amounts,
        channel=order.get("created_via") or "woocommerce",
        email=billing.get("email") or None,
        codes=[c["code"] for c in order.get("coupon_lines") or [] if c.get("code")],
        attributes={"order_number": order.get("number")},
    )


def refunds_in(order: dict[str, Any]) -> list[RefundIn]:
    """The refunds listed on an order (``refunds``: id, reason, negative total)."""
    currency = str(order.get("currency") or "").upper()
    out = []
    for r in order.get("refunds") or []:
        amount = abs(to_minor(r.get("total"), currency, field="refunds.total"))
        if amount:
            out.append(
                RefundIn(id=f"wc-refund-{r['id']}", amount=amount, reason=r.get("reason") or None)
            )
    return out


def customer_in(customer: dict[str, Any]) -> CustomerIn:
    billing = customer.get("billing") or {}
    data = {
        "email": customer.get("email") or billing.get("email") or None,
        "first_name": customer.get("first_name") or billing.get("first_name") or None,
        "last_name": customer.get("last_name") or billing.get("last_name") or None,
        "country": billing.get("country") or None,
    }
    return CustomerIn(**{k: v for k, v in data.items() if v is not None})


def status_time(order: dict[str, Any]) -> Any:
    """When the order reached its current status (completion, else last modification)."""
    return _time(order, "date_completed") or _time(order, "date_modified")
