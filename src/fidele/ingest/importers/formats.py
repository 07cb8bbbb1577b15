"""File layouts of bulk imports, as pure functions from raw rows to API-shaped dicts.

Orders (one order may span several rows; its rows must be contiguous):

- ``fidele``: one order per row with a JSON ``lines`` column, or one row per line with
  ``product_id``/``name``/``category``/``quantity``/``unit_price`` (order columns repeated);
  order columns: ``id, customer_id, placed_at, currency, shipping, discounts, tax, total,
  email, channel``. Money in integer minor units; times ISO 8601 with a zone.
- ``shopify``: Shopify's order export CSV (one row per line item, order columns on the first).
  ``Financial Status`` pending/authorized/partially_paid/expired/voided imports the order as
  unpaid (it earns when paid), ``Paid at`` is when it was paid; ``Cancelled at`` (or a voided
  or expired payment) cancels it and ``Refunded Amount`` refunds that amount, both through the
  orders service after the order is written (``shopify_followups``).
- ``woocommerce``: the WooCommerce order export CSV (``order_id``, ``order_date``,
  ``line_item_1``... as ``name:..|product_id:..|quantity:..|total:..``).

Any layout: optional ``promised_delivery_at``, ``delivered_at`` (times, zone-less ones in the
``--timezone``) and ``carrier`` columns give the order's delivery (``delivery``), recorded
after the order through the delivery service as the connectors do.

Customers: ``id, email, first_name, last_name, birthday, locale, country, timezone,
email_marketing, email_marketing_at, attributes`` (JSON object)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fidele.errors import InvalidInput
from fidele.ingest.amounts import order_amounts, to_minor
from fidele.kit.money import div_round

Row = dict[str, Any]
FORMATS = ("fidele", "shopify", "woocommerce")


def detect(columns: Sequence[str]) -> str:
    cols = set(columns)
    if {"Name", "Lineitem quantity"} <= cols:
        return "shopify"
    if "order_id" in cols and any(c.startswith("line_item_") for c in cols):
        return "woocommerce"
    return "fidele"


def order_key(fmt: str) -> str:
    """The column that identifies the order a row belongs to."""
    return {"fidele": "id", "shopify": "Name", "woocommerce": "order_id"}[fmt]


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _int(v: Any, field: str) -> int:
    if _blank(v):
        return 0
    try:
        return int(str(v).strip())
    except ValueError as exc:
        raise InvalidInput(f"{field}: {v!r} is not an integer", field=field) from exc


def _time(v: Any, tz: ZoneInfo | None = None, field: str = "placed_at") -> str:
    """ISO text of ``v``; a zone-less time gets ``tz`` when given (exports in shop time)."""
    if isinstance(v, datetime):
        parsed = v
    else:
        text = str(v).strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")
            except ValueError as exc:
                raise InvalidInput(f"{v!r} is not a time", field=field) from exc
    if parsed.tzinfo is None and tz is not None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.isoformat()


def fidele_order(rows: Sequence[Row], tz: ZoneInfo | None = None) -> Row:
    first = rows[0]
    if not _blank(first.get("lines")):
        lines = first["lines"]
        lines = json.loads(lines) if isinstance(lines, str) else lines
    else:
        lines = [
            {
                k: r.get(k)
                for k in ("product_id", "name", "category", "quantity", "unit_price")
                if not _blank(r.get(k))
            }
            for r in rows
        ]
    body = {k: first.get(k) for k in ("id", "customer_id", "currency", "email", "channel")}
    body = {k: (str(v) if not isinstance(v, str) else v) for k, v in body.items() if not _blank(v)}
    for k in ("shipping", "discounts", "tax", "total"):
        body[k] = _int(first.get(k), k) if k != "total" or not _blank(first.get(k)) else None
    body["placed_at"] = (
        _time(first.get("placed_at"), tz) if not _blank(first.get("placed_at")) else None
    )
    body["lines"] = lines
    return body


def _money(row: Row, col: str, currency: str) -> int:
    return to_minor(row.get(col) if not _blank(row.get(col)) else None, currency, field=col)


def shopify_order(rows: Sequence[Row], tz: ZoneInfo | None = None) -> Row:
    """Shopify's export: customer id is the email (the export has no customer id)."""
    first = rows[0]
    currency = str(first.get("Currency") or "").strip().upper()
    lines = [
        {
            "product_id": str(r.get("Lineitem sku") or r.get("Lineitem name") or "").strip(),
            "name": r.get("Lineitem name"),
            "quantity": _int(r.get("Lineitem quantity"), "quantity"),
            "unit_price": _money(r, "Lineitem price", currency),
        }
        for r in rows
    ]
    parts = {
        "lines": sum(ln["quantity"] * ln["unit_price"] for ln in lines),
        "discounts": _money(first, "Discount Amount", currency),
        "shipping": _money(first, "Shipping", currency),
        "tax": _money(first, "Taxes", currency),
    }
    total = _money(first, "Total", currency)
    # the export says nothing of taxes_included: a total reached without the tax has it inside
    included = parts["tax"] > 0 and parts["lines"] - parts["discounts"] + parts["shipping"] == total
    amounts = order_amounts(parts.pop("lines"), total=total, prices_include_tax=included, **parts)
    email = str(first.get("Email") or "").strip().lower()
    name = str(first["Name"]).strip()
    paid = _shopify_financial(first) in SHOPIFY_PAID
    return {
        "id": name,
        "customer_id": email or f"guest-{name.lstrip('#')}",
        "placed_at": _time(first.get("Created at"), tz),
        "currency": currency,
        "lines": lines,
        **amounts,
        "prices_include_tax": included,
        "payment_status": "paid" if paid else "pending",
        **({"paid_at": _time(first["Paid at"], tz)} if paid and _present(first, "Paid at") else {}),
        "channel": "shopify",
        **({"email": email} if email else {}),
    }


# Shopify's financial statuses (Order.financialStatus): a blank one (older exports) is paid.
SHOPIFY_PAID = frozenset({"", "paid", "partially_refunded", "refunded"})
SHOPIFY_VOID = frozenset({"voided", "expired"})  # the payment never happened: cancelled


def _present(row: Row, col: str) -> bool:
    return not _blank(row.get(col))


def _shopify_financial(row: Row) -> str:
    return str(row.get("Financial Status") or "").strip().lower().replace(" ", "_")


def shopify_followups(rows: Sequence[Row], tz: ZoneInfo | None = None) -> list[Row]:
    """What happened to an exported order after it was placed, as the orders API's bodies:
    ``{"status": "cancelled", "occurred_at"}`` and ``{"refund": {"id", "amount"}}``. A
    cancelled order's refund is its cancellation (it reverses the whole order)."""
    first = rows[0]
    name = str(first["Name"]).strip()
    if _present(first, "Cancelled at") or _shopify_financial(first) in SHOPIFY_VOID:
        at = first.get("Cancelled at") if _present(first, "Cancelled at") else None
        return [{"status": "cancelled", "occurred_at": _time(at, tz) if at else None}]
    currency = str(first.get("Currency") or "").strip().upper()
    refunded = _money(first, "Refunded Amount", currency)
    if refunded > 0:  # the export has no refund date: it is booked as of the import
        return [{"refund": {"id": f"export-{name}", "amount": refunded}}]
    return []


def _woo_item(text: str, currency: str) -> Row:
    fields = dict(p.split(":", 1) for p in text.split("|") if ":" in p)
    quantity = _int(fields.get("quantity"), "quantity") or 1
    subtotal = to_minor(
        fields.get("sub_total") or fields.get("total") or "0", currency, field="sub_total"
    )
    return {
        "product_id": str(fields.get("product_id") or fields.get("sku") or fields.get("name")),
        "name": fields.get("name"),
        "quantity": quantity,
        "unit_price": div_round(subtotal, quantity),
    }


def woocommerce_order(rows: Sequence[Row], tz: ZoneInfo | None = None) -> Row:
    first = rows[0]
    currency = str(first.get("order_currency") or "").strip().upper()
    items = sorted((k for k in first if k.startswith("line_item_")), key=lambda k: int(k[10:]))
    lines = [_woo_item(str(first[k]), currency) for k in items if not _blank(first[k])]
    amounts = order_amounts(
        sum(ln["quantity"] * ln["unit_price"] for ln in lines),
        discounts=_money(first, "discount_total", currency),
        shipping=_money(first, "shipping_total", currency),
        tax=_money(first, "tax_total", currency),
        total=_money(first, "order_total", currency),
    )
    cid = str(first.get("customer_id") or "").strip()
    email = str(first.get("customer_email") or first.get("billing_email") or "").strip()
    oid = str(first["order_id"]).strip()
    return {
        "id": oid,
        "customer_id": cid if cid not in ("", "0") else f"guest-{oid}",
        "placed_at": _time(first.get("order_date"), tz),
        "currency": currency,
        "lines": lines,
        **amounts,
        "channel": "woocommerce",
        **({"email": email} if email else {}),
    }


DELIVERY_TIMES = ("promised_delivery_at", "delivered_at")


def delivery(rows: Sequence[Row], tz: ZoneInfo | None = None) -> Row | None:
    """``{"promised_at", "delivered_at", "carrier"}`` from the optional delivery columns of
    an order's first row, ``None`` when they are blank or absent."""
    first = rows[0]
    body: Row = {}
    for col, key in zip(DELIVERY_TIMES, ("promised_at", "delivered_at"), strict=True):
        if _present(first, col):
            text = _time(first[col], tz, field=col)
            if datetime.fromisoformat(text).tzinfo is None:
                raise InvalidInput(f"{first[col]!r} has no timezone", field=col)
            body[key] = text
    if _present(first, "carrier"):
        body["carrier"] = str(first["carrier"]).strip()
    return body or None


ORDER_MAPPERS: dict[str, Callable[[Sequence[Row], ZoneInfo | None], Row]] = {
    "fidele": fidele_order,
    "shopify": shopify_order,
    "woocommerce": woocommerce_order,
}


def customer(row: Row) -> tuple[str, Row]:
    """``(external_id, CustomerIn-shaped dict)`` of a customer row."""
    ext = row.get("id")
    if _blank(ext):
        raise InvalidInput("the id column is empty", field="id")
    body: Row = {}
    for k in ("email", "first_name", "last_name", "birthday", "locale", "country", "timezone"):
        if not _blank(row.get(k)):
            body[k] = str(row[k]).strip()
    if not _blank(row.get("email_marketing")):
        opted = str(row["email_marketing"]).strip().lower() in ("1", "true", "yes", "y")
        body["consent"] = {"email_marketing": opted, "source": "import"}
        if not _blank(row.get("email_marketing_at")):
            body["consent"]["at"] = _time(row["email_marketing_at"])
    if not _blank(row.get("attributes")):
        attrs = row["attributes"]
        body["attributes"] = json.loads(attrs) if isinstance(attrs, str) else attrs
    return str(ext).strip(), body
