"""Set-based writes of many orders at once: the bulk path of ``fidele import`` (all its SQL).

On PostgreSQL rows are COPied into temporary staging tables and moved with ``INSERT ... SELECT
... ON CONFLICT DO NOTHING RETURNING`` (lines and events, which belong to new orders only, are
COPied straight in); on SQLite they go in with multi-row ``INSERT ... ON CONFLICT DO NOTHING
RETURNING``. Either way a replayed file creates nothing twice and concurrent importers cannot
duplicate. Each new order gets its lines and one
``order.placed`` event (source ``import``), and each new customer a ``customer.upserted`` event,
exactly as ``POST /v1/orders`` would write them, but the in-transaction handlers of other
domains are NOT dispatched: a historical import awards no points; loyalty rebuilds from the
log with its replay command. Message conversions are the exception: the new orders are
credited to the message that earned them by the same rule as online
(``messaging.conversions.attribute_orders``, one query per batch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.customers.service import normalise_email
from fidele.events import domain as ev
from fidele.events.domain import payload_hash
from fidele.events.models import Event
from fidele.messaging import conversions
from fidele.orders.domain import line_discounts
from fidele.orders.models import Order, OrderLine
from fidele.orders.schemas import OrderIn
from fidele.orders.service import canonical
from fidele.segments import service as segments
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


class Store(Protocol):
    """Where a batch goes: the four set-based operations the bulk path needs."""

    def insert_new(self, table: Table, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Insert rows whose (merchant_id, external_id) is new; ``{external_id: id}`` of those."""
        ...

    def append(self, table: Table, rows: list[dict[str, Any]]) -> None: ...

    def lookup(
        self, table: Table, column: str, merchant_id: int, external_ids: list[str]
    ) -> dict[str, Any]:
        """``{external_id: column value}`` of the merchant's existing rows."""
        ...


class InsertStore:
    """Multi-row INSERT (SQLAlchemy insertmanyvalues): SQLite, and any backend."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    def insert_new(self, table: Table, rows: list[dict[str, Any]]) -> dict[str, int]:
        if not rows:
            return {}
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = (
            insert(table)
            .on_conflict_do_nothing(index_elements=["merchant_id", "external_id"])
            .returning(table.c.id, table.c.external_id)
        )
        return {ext: id_ for id_, ext in self.session.execute(stmt, rows).all()}

    def append(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if rows:  # an empty list would insert one row of defaults
            self.session.execute(table.insert(), rows)

    def lookup(
        self, table: Table, column: str, merchant_id: int, external_ids: list[str]
    ) -> dict[str, Any]:
        stmt = select(table.c.external_id, table.c[column]).where(
            table.c.merchant_id == merchant_id, table.c.external_id.in_(external_ids)
        )
        return dict(self.session.execute(stmt).all())


def store_for(session: Session) -> Store:
    if session.get_bind().dialect.name == "postgresql":
        from fidele.ingest.importers.bulk_pg import CopyStore

        return CopyStore(session)
    return InsertStore(session)


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
    store = store_for(session)
    bodies = {o.id: canonical(o) for o in orders}
    hashes = {oid: payload_hash(body) for oid, body in bodies.items()}
    customers, new_customers = _ensure_customers(store, caller, orders, now, source)
    order_ids = store.insert_new(
        ORDERS, [_order_row(caller, o, customers, hashes, now, source) for o in orders]
    )
    fresh = [o for o in orders if o.id in order_ids]
    store.append(LINES, [row for o in fresh for row in line_rows(o, order_ids[o.id])])
    store.append(
        EVENTS,
        [
            event_row(
                caller,
                ev.ORDER_PLACED,
                o.placed_at,
                now,
                source,
                {k: v for k, v in bodies[o.id].items() if k != "email"},
                customers[o.customer_id],
                order_ids[o.id],
            )
            for o in fresh
        ],
    )
    # the customers' order facts (segments), as the order events' handler keeps them
    segments.refresh_order_facts(session, [customers[o.customer_id] for o in fresh])
    # Conversions are credited whatever path wrote the order (the online path does it in its
    # ``order.placed`` handler, not dispatched here): same rule, once per order.
    conversions.attribute_orders(
        session,
        [
            conversions.Placed(
                order_ids[o.id], caller.merchant_id, customers[o.customer_id], o.placed_at
            )
            for o in fresh
        ],
    )
    stale = [o.id for o in orders if o.id not in order_ids]
    existing = store.lookup(ORDERS, "payload_hash", caller.merchant_id, stale) if stale else {}
    out = Written(customers_created=new_customers)
    for o in orders:
        if o.id in order_ids:
            out.created.append(o.id)
        elif existing.get(o.id) == hashes[o.id]:
            out.unchanged.append(o.id)
        else:
            out.conflicts[o.id] = f"order {o.id!r} exists with a different body"
    return out


def _ensure_customers(
    store: Store, caller: Caller, orders: Sequence[OrderIn], now: datetime, source: str
) -> tuple[dict[str, int], int]:
    emails: dict[str, str | None] = {}
    for o in orders:
        emails.setdefault(o.customer_id, o.email)
    created = store.insert_new(
        CUSTOMERS,
        [
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
        ],
    )
    ids = dict(created)
    missing = [ext for ext in emails if ext not in ids]
    if missing:
        ids.update(store.lookup(CUSTOMERS, "id", caller.merchant_id, missing))
    store.append(
        EVENTS,
        [
            event_row(
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
                cid,
                None,
            )
            for ext, cid in created.items()
        ],
    )
    return ids, len(created)


def _order_row(
    caller: Caller,
    o: OrderIn,
    customers: dict[str, int],
    hashes: dict[str, str],
    now: datetime,
    source: str,
) -> dict[str, Any]:
    return {
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
        "prices_include_tax": o.prices_include_tax,
        "adjustment": o.adjustment,
        "total": o.total,
        "refunded_total": 0,
        "status": "placed",
        "payment_status": o.payment_status,
        "paid_at": (o.paid_at or o.placed_at) if o.payment_status == "paid" else None,
        "channel": o.channel,
        "source": source,
        "payload_hash": hashes[o.id],
        "attributes": o.attributes,
        "created_at": now,
        "updated_at": now,
    }


def line_rows(order: OrderIn, order_id: int) -> list[dict[str, Any]]:
    """The order's lines with their share of the order discount, as the API stores them."""
    amounts = [ln.quantity * ln.unit_price for ln in order.lines]
    shares = line_discounts(amounts, min(order.discounts, sum(amounts)))
    return [
        {
            "order_id": order_id,
            "line_no": i,
            "line_id": ln.line_id,
            "product_id": ln.product_id,
            "variant_id": ln.variant_id,
            "name": ln.name,
            "category": ln.category,
            "kind": ln.type,
            "quantity": ln.quantity,
            "unit_price": ln.unit_price,
            "discount": share,
            "tax": ln.tax,
            "refunded_quantity": 0,
        }
        for i, (ln, share) in enumerate(zip(order.lines, shares, strict=True))
    ]


def event_row(
    caller: Caller,
    type_: str,
    occurred_at: datetime,
    now: datetime,
    source: str,
    payload: dict[str, Any],
    customer_id: int,
    order_id: int | None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """One row of the event log as ``events.record`` writes it (received at ``now``)."""
    return {
        "merchant_id": caller.merchant_id,
        "programme_id": caller.programme_id,
        "customer_id": customer_id,
        "order_id": order_id,
        "type": type_,
        "source": source,
        "occurred_at": occurred_at,
        "received_at": now,
        "idempotency_key": idempotency_key,
        "payload_hash": payload_hash(payload),
        "payload": payload,
    }
