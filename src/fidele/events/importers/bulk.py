"""Set-based writes of many orders at once: the bulk path of ``fidele import`` (all its SQL).

Rows go in with multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (SQLAlchemy's
insertmanyvalues: one statement per ~1000 rows on both backends), so a replayed file creates
nothing twice and concurrent importers cannot duplicate. Each new order gets its lines and one
``order.placed`` event (source ``import``), and each new customer a ``customer.upserted`` event,
exactly as ``POST /v1/orders`` would write them, but the in-transaction handlers of other
domains are NOT dispatched: a historical import awards no points; loyalty rebuilds from the
log with its replay command."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.customers.service import normalise_email
from fidele.events import domain as ev
from fidele.events.domain import payload_hash
from fidele.events.models import Event
from fidele.orders.domain import line_discounts
from fidele.orders.models import Order, OrderLine
from fidele.orders.schemas import OrderIn
from fidele.tenancy.service import Caller

CUSTOMERS: Table = Customer.__table__  # type: ignore[assignment]
ORDERS: Table = Order.__table__  # type: ignore[assignment]
LINES: Table = OrderLine.__table__  # type: ignore[assignment]
EVENTS: Table = Event.__table__  # type: ignore[assignment]


@dataclass
class Written:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # order id -> why it was refused (same id, different body: the API's 409)
    conflicts: dict[str, str] = field(default_factory=dict)
    customers_created: int = 0


def _insert(session: Session, table: Table) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def write_orders(
    session: Session,
    caller: Caller,
    orders: Sequence[OrderIn],
    now: datetime,
    *,
    source: str = "import",
) -> Written:
    """Write ``orders`` (already validated, unique ids) for ``caller``'s merchant."""
    if not orders:
        return Written()
    hashes = {o.id: payload_hash(o.model_dump(mode="json")) for o in orders}
    customers, new_customers = _ensure_customers(session, caller, orders, now, source)
    order_ids = _insert_orders(session, caller, orders, customers, hashes, now, source)
    out = Written(customers_created=new_customers)
    fresh = [o for o in orders if o.id in order_ids]
    _insert_lines(session, fresh, order_ids)
    _insert_order_events(session, caller, fresh, customers, order_ids, now, source)
    existing = _hashes(session, caller, [o.id for o in orders if o.id not in order_ids])
    for o in orders:
        if o.id in order_ids:
            out.created.append(o.id)
        elif existing.get(o.id) == hashes[o.id]:
            out.unchanged.append(o.id)
        else:
            out.conflicts[o.id] = f"order {o.id!r} exists with a different body"
    return out


def _ensure_customers(
    session: Session, caller: Caller, orders: Sequence[OrderIn], now: datetime, source: str
) -> tuple[dict[str, int], int]:
    emails: dict[str, str | None] = {}
    for o in orders:
        emails.setdefault(o.customer_id, o.email)
    rows = [
        {
            "merchant_id": caller.merchant_id,
            "programme_id": caller.programme_id,
            "external_id": ext,
            "email": email,
            "email_normalized": normalise_email(email),
            "email_marketing": False,
            "sms_marketing": False,
            "attributes": {},
            "created_at": now,
            "updated_at": now,
        }
        for ext, email in emails.items()
    ]
    stmt = (
        _insert(session, CUSTOMERS)
        .on_conflict_do_nothing(index_elements=["merchant_id", "external_id"])
        .returning(CUSTOMERS.c.id, CUSTOMERS.c.external_id)
    )
    created = dict(session.execute(stmt, rows).all()) if rows else {}
    ids = {ext: cid for cid, ext in created.items()}
    missing = [ext for ext in emails if ext not in ids]
    if missing:
        ids.update(_customer_ids(session, caller.merchant_id, missing))
    events = [
        _event(
            caller,
            ev.CUSTOMER_UPSERTED,
            now,
            now,
            source,
            {
                "customer_id": ext,
                "created": True,
                **({"email": emails[ext]} if emails[ext] else {}),
            },
            ids[ext],
            None,
        )
        for ext in created.values()
    ]
    if events:
        session.execute(EVENTS.insert(), events)
    return ids, len(created)


def _customer_ids(session: Session, merchant_id: int, external_ids: list[str]) -> dict[str, int]:
    stmt = select(CUSTOMERS.c.external_id, CUSTOMERS.c.id).where(
        CUSTOMERS.c.merchant_id == merchant_id, CUSTOMERS.c.external_id.in_(external_ids)
    )
    return dict(session.execute(stmt).all())


def _insert_orders(
    session: Session,
    caller: Caller,
    orders: Sequence[OrderIn],
    customers: dict[str, int],
    hashes: dict[str, str],
    now: datetime,
    source: str,
) -> dict[str, int]:
    rows = [
        {
            "merchant_id": caller.merchant_id,
            "programme_id": caller.programme_id,
            "customer_id": customers[o.customer_id],
            "external_id": o.id,
            "placed_at": o.placed_at,
            "currency": o.currency,
            "subtotal": sum(ln.quantity * ln.unit_price for ln in o.lines),
            "discounts": o.discounts,
            "shipping": o.shipping,
            "tax": o.tax,
            "total": o.total,
            "refunded_total": 0,
            "status": "placed",
            "channel": o.channel,
            "source": source,
            "payload_hash": hashes[o.id],
            "attributes": o.attributes,
            "created_at": now,
            "updated_at": now,
        }
        for o in orders
    ]
    stmt = (
        _insert(session, ORDERS)
        .on_conflict_do_nothing(index_elements=["merchant_id", "external_id"])
        .returning(ORDERS.c.id, ORDERS.c.external_id)
    )
    return {ext: oid for oid, ext in session.execute(stmt, rows).all()}


def line_rows(order: OrderIn, order_id: int) -> list[dict[str, Any]]:
    """The order's lines with their share of the order discount, as the API stores them."""
    amounts = [ln.quantity * ln.unit_price for ln in order.lines]
    shares = line_discounts(amounts, min(order.discounts, sum(amounts)))
    return [
        {
            "order_id": order_id,
            "line_no": i,
            "product_id": ln.product_id,
            "name": ln.name,
            "category": ln.category,
            "kind": ln.type,
            "quantity": ln.quantity,
            "unit_price": ln.unit_price,
            "discount": share,
            "refunded_quantity": 0,
        }
        for i, (ln, share) in enumerate(zip(order.lines, shares, strict=True))
    ]


def _insert_lines(session: Session, orders: Sequence[OrderIn], ids: dict[str, int]) -> None:
    rows = [row for o in orders for row in line_rows(o, ids[o.id])]
    if rows:
        session.execute(LINES.insert(), rows)


def _insert_order_events(
    session: Session,
    caller: Caller,
    orders: Sequence[OrderIn],
    customers: dict[str, int],
    ids: dict[str, int],
    now: datetime,
    source: str,
) -> None:
    rows = [
        _event(
            caller,
            ev.ORDER_PLACED,
            o.placed_at,
            now,
            source,
            o.model_dump(mode="json", exclude={"email"}),
            customers[o.customer_id],
            ids[o.id],
        )
        for o in orders
    ]
    if rows:
        session.execute(EVENTS.insert(), rows)


def _event(
    caller: Caller,
    type_: str,
    occurred_at: datetime,
    now: datetime,
    source: str,
    payload: dict[str, Any],
    customer_id: int,
    order_id: int | None,
) -> dict[str, Any]:
    return {
        "merchant_id": caller.merchant_id,
        "programme_id": caller.programme_id,
        "customer_id": customer_id,
        "order_id": order_id,
        "type": type_,
        "source": source,
        "occurred_at": occurred_at,
        "received_at": now,
        "idempotency_key": None,
        "payload_hash": payload_hash(payload),
        "payload": payload,
    }


def _hashes(session: Session, caller: Caller, external_ids: list[str]) -> dict[str, str]:
    if not external_ids:
        return {}
    stmt = select(ORDERS.c.external_id, ORDERS.c.payload_hash).where(
        ORDERS.c.merchant_id == caller.merchant_id, ORDERS.c.external_id.in_(external_ids)
    )
    return dict(session.execute(stmt).all())
