"""WooCommerce webhook payloads mapped onto fidele's input models. Pure functions.

Every format a WooCommerce webhook can still be configured to send is read: "WP REST API
Integration" v3 and v2 (``*_gmt`` times), v1 (``date_created`` and ``date_modified`` in UTC
without ``_gmt``), and "Legacy API v3" (the order wrapped in ``{"order": ...}``, ``created_at``
in UTC). :func:`normalise` turns the last two into the v3 shape. Money is decimal strings in
the order's ``currency``; WooCommerce line ``subtotal``/``total``, ``discount_total`` and
``shipping_total`` are without tax whatever ``prices_include_tax`` says, and ``total_tax`` is
apart, so orders are stored tax-exclusive with their tax. Guests have ``customer_id`` 0 and get
a guest id derived from the order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fidele.customers.schemas import CustomerIn
from fidele.errors import InvalidInput
from fidele.ingest.amounts import order_amounts, parse_time, to_minor
from fidele.ingest.connectors.shop import Fulfilled, ShopOrder, delivery_in, line_name
from fidele.kit.money import div_round
from fidele.orders.schemas import LineIn, OrderIn, RefundIn

ORDER_TOPICS = ("order.created", "order.updated", "order.restored")
CUSTOMER_TOPICS = ("customer.created", "customer.updated")
# Statuses with the money in; pending, on-hold (awaiting a transfer or check), failed and
# checkout-draft have not paid; cancelled cancels; refunded is paid then refunded (its
# ``refunds`` carry the money).
PAID = frozenset({"processing", "completed", "refunded"})
CANCELLED = frozenset({"cancelled"})
# Order meta read for the delivery: the Shipment Tracking extension's items (carrier, date
# shipped), and the promised / actual delivery under the API's own names, for a plugin or a
# snippet to write (ISO 8601 with a zone, or a Unix timestamp).
TRACKING_META = "_wc_shipment_tracking_items"
PROMISED_META, DELIVERED_META = "promised_delivery_at", "delivered_at"


def normalise(payload: dict[str, Any]) -> dict[str, Any]:
    """The order in the REST v2/v3 shape, whichever format the webhook sends."""
    order = payload.get("order")
    if isinstance(order, dict) and "line_items" not in payload:
        return _from_legacy(order)
    if "date_created_gmt" not in payload and payload.get("date_created"):
        # REST v1: date_created and date_modified are UTC (date_paid/completed are local)
        out = dict(payload)
        out["date_created_gmt"] = payload["date_created"]
        out["date_modified_gmt"] = payload.get("date_modified")
        out["date_paid_gmt"] = None
        out["date_completed_gmt"] = None
        out["paid"] = bool(payload.get("date_paid"))
        return out
    return payload


def _utc(value: Any) -> Any:
    return str(value).removesuffix("Z") if value else None


def _from_legacy(order: dict[str, Any]) -> dict[str, Any]:
    billing = order.get("billing_address") or {}
    customer = order.get("customer") or {}
    return {
        "id": order["id"],
        "number": order.get("order_number"),
        "status": order.get("status"),
        "currency": order.get("currency"),
        "date_created_gmt": _utc(order.get("created_at")),
        "date_modified_gmt": _utc(order.get("updated_at")),
        "date_completed_gmt": _utc(order.get("completed_at")),
        "paid": bool((order.get("payment_details") or {}).get("paid")),
        "discount_total": order.get("total_discount"),
        "shipping_total": order.get("total_shipping"),
        "total_tax": order.get("total_tax"),
        "total": order.get("total"),
        "customer_id": order.get("customer_id"),
        "billing": billing,
        "customer": customer,
        "line_items": order.get("line_items") or [],
        "coupon_lines": order.get("coupon_lines") or [],
        "refunds": [],
    }


def customer_id(order: dict[str, Any]) -> str:
    cid = order.get("customer_id")
    return str(cid) if cid not in (None, 0, "0", "") else f"guest-{order['id']}"


def _time(obj: dict[str, Any], name: str) -> datetime | None:
    gmt = obj.get(f"{name}_gmt")
    return parse_time(gmt, naive_is_utc=True, field=f"{name}_gmt") if gmt else None


def _line(item: dict[str, Any], currency: str) -> tuple[LineIn, int]:
    """The line and what its per-unit price lost to rounding against ``subtotal``."""
    quantity = int(item["quantity"])
    subtotal = to_minor(item.get("subtotal"), currency, field="line_items.subtotal")
    unit_price = div_round(subtotal, quantity)
    variation = item.get("variation_id")
    product = item.get("product_id") or variation or item.get("sku") or item["id"]
    line = LineIn(
        product_id=str(product),
        line_id=str(item["id"]),
        variant_id=str(variation) if variation else None,
        name=line_name(item.get("name")),
        quantity=quantity,
        unit_price=unit_price,
        tax=to_minor(item.get("total_tax"), currency, field="line_items.total_tax"),
    )
    return line, subtotal - quantity * unit_price


def order_in(order: dict[str, Any]) -> OrderIn:
    """A (normalised) order payload as an :class:`OrderIn`."""
    currency = str(order.get("currency") or "").upper()
    items = [_line(i, currency) for i in order.get("line_items") or [] if int(i["quantity"]) > 0]
    if not items:
        raise InvalidInput("the order has no line items", field="line_items")
    lines = [ln for ln, _ in items]
    amounts = order_amounts(
        sum(ln.quantity * ln.unit_price for ln in lines),
        discounts=to_minor(order.get("discount_total"), currency, field="discount_total"),
        shipping=to_minor(order.get("shipping_total"), currency, field="shipping_total"),
        tax=to_minor(order.get("total_tax"), currency, field="total_tax"),
        total=to_minor(order.get("total"), currency, field="total"),
        rounding=sum(r for _, r in items),
    )
    billing = order.get("billing") or {}
    customer = order.get("customer") or {}  # Legacy v3 only: the account, not the billing
    contact = billing.get("email") or None
    email = customer.get("email") or contact
    attributes = {
        "order_number": order.get("number"),
        "shop_prices_include_tax": bool(order.get("prices_include_tax")),
    }
    if contact and contact != email:
        attributes["contact_email"] = contact
    return OrderIn(
        id=str(order["id"]),
        customer_id=customer_id(order),
        placed_at=_time(order, "date_created"),
        currency=currency,
        lines=lines,
        **amounts,
        payment_status="paid" if _paid(order) else "pending",
        channel=order.get("created_via") or "woocommerce",
        email=email,
        codes=[c["code"] for c in order.get("coupon_lines") or [] if c.get("code")],
        attributes=attributes,
    )


def _paid(order: dict[str, Any]) -> bool:
    return bool(order.get("date_paid_gmt") or order.get("paid")) or order.get("status") in PAID


def shop_order(payload: dict[str, Any]) -> ShopOrder:
    """The order, its payment, cancellation, completion and refunds, from any format."""
    order = normalise(payload)
    data = order_in(order)
    status = str(order.get("status"))
    modified = _time(order, "date_modified")
    meta = _meta(order)
    tracking = meta.get(TRACKING_META)
    items = [t for t in tracking if isinstance(t, dict)] if isinstance(tracking, list) else []
    promised = _meta_time(meta.get(PROMISED_META), f"meta_data.{PROMISED_META}")
    delivered = _meta_time(meta.get(DELIVERED_META), f"meta_data.{DELIVERED_META}")
    if delivered is not None and delivered < data.placed_at:
        raise InvalidInput(
            "delivered before the order was placed", field=f"meta_data.{DELIVERED_META}"
        )
    shipped = [
        _meta_time(t.get("date_shipped"), f"meta_data.{TRACKING_META}.date_shipped") for t in items
    ]
    fulfilled: Fulfilled | None = None
    if status == "completed" or delivered is not None:
        fulfilled = ("delivered", delivered or _time(order, "date_completed") or modified)
    elif any(shipped) and status not in CANCELLED:
        fulfilled = ("shipped", min(s for s in shipped if s is not None))
    carrier = next(
        (t.get("tracking_provider") or t.get("custom_tracking_provider") for t in items), None
    )
    person = order.get("customer") or order.get("billing") or {}
    registered = not customer_id(order).startswith("guest-")
    return ShopOrder(
        data=data,
        paid_at=(_time(order, "date_paid") or modified) if _paid(order) else None,
        cancelled_at=(modified or data.placed_at) if status in CANCELLED else None,
        fulfilled=fulfilled,
        customer=_person(person) if registered else None,
        refunds=refunds_in(order, modified),
        delivery=delivery_in(
            promised, fulfilled[1] if fulfilled and fulfilled[0] == "delivered" else None, carrier
        ),
    )


def _meta(order: dict[str, Any]) -> dict[str, Any]:
    return {
        str(m["key"]): m.get("value")
        for m in order.get("meta_data") or []
        if isinstance(m, dict) and m.get("key")
    }


def _meta_time(value: Any, field: str) -> datetime | None:
    """A meta date: a Unix timestamp (Shipment Tracking's ``date_shipped``) or ISO 8601 with
    its zone; anything else is a 422 naming the meta key."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text.isdigit():
        try:
            return datetime.fromtimestamp(int(text), UTC)
        except (OverflowError, ValueError, OSError) as exc:
            raise InvalidInput(f"{text[:40]!r} is not a time", field=field) from exc
    return parse_time(text, field=field)


def _person(person: dict[str, Any]) -> CustomerIn:
    data = {
        "email": person.get("email") or None,
        "first_name": person.get("first_name") or None,
        "last_name": person.get("last_name") or None,
        "country": person.get("country") or None,
    }
    return CustomerIn(**{k: v for k, v in data.items() if v is not None})


def refunds_in(order: dict[str, Any], modified: datetime | None = None) -> list[RefundIn]:
    """The refunds listed on an order (``refunds``: id, reason, negative total). An order's
    refund list carries no dates: a refund is dated by its own ``date_created_gmt`` when the
    payload has one, else by the order's modification (the refund modified it), never by the
    time fidele received the webhook."""
    currency = str(order.get("currency") or "").upper()
    out = []
    for r in order.get("refunds") or []:
        amount = abs(to_minor(r.get("total"), currency, field="refunds.total"))
        if amount:
            out.append(
                RefundIn(
                    id=f"wc-refund-{r['id']}",
                    amount=amount,
                    reason=r.get("reason") or r.get("refund") or None,
                    occurred_at=_time(r, "date_created") or modified,
                )
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
