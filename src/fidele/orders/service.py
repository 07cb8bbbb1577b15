"""Orders: idempotent creation, status changes and refunds, each appended to the event log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from fidele.customers import service as customers
from fidele.customers.models import Customer
from fidele.errors import Conflict, IdempotencyConflict, NotFound, StateConflict
from fidele.events import domain as ev
from fidele.events import service as events
from fidele.events.domain import payload_hash
from fidele.orders import domain
from fidele.orders.models import Order, OrderLine, Refund
from fidele.orders.repository import OrderRepository
from fidele.orders.schemas import LineOut, OrderIn, OrderOut, RefundIn, RefundOut, StatusIn
from fidele.tenancy.service import Caller

# Other domains add a section to the order's representation (loyalty: points earned).
OrderExtension = Callable[[Session, Order], dict[str, Any] | None]
view_extensions: dict[str, OrderExtension] = {}


def get(session: Session, caller: Caller, external_id: str, *, lock: bool = False) -> Order:
    order = OrderRepository(session).by_external_id(caller.merchant_id, external_id, lock=lock)
    if order is None:
        raise NotFound(f"order {external_id!r} not found")
    return order


def create(
    session: Session, caller: Caller, data: OrderIn, now: datetime, *, source: str = "api"
) -> tuple[Order, bool]:
    """Create an order; replaying the same body returns the first order (``created`` False)."""
    body = canonical(data)
    digest = payload_hash(body)
    repo = OrderRepository(session)
    customer = customers.find(session, caller, data.customer_id)
    if customer is None:
        # Look the order up before creating anyone: a replay (or a later webhook of the same
        # order) naming a customer unknown here must not create that customer.
        existing = repo.by_external_id(caller.merchant_id, data.id)
        if existing is not None:
            return _replayed(existing, digest, data.id), False
        customer = customers.create_guest(
            session, caller, data.customer_id, now, source=source, email=data.email
        )
    order, lines = build_order(caller, customer.id, data, digest, now, source)
    # Insert first, look up only on conflict: a new order costs no SELECT and no savepoint.
    new_id = repo.insert_new(row_of(order))
    if new_id is None:  # this id exists (a replay, or a concurrent twin that committed first)
        twin = repo.by_external_id(caller.merchant_id, data.id)
        if twin is None:  # the twin was rolled back: nothing to replay
            raise Conflict(f"order {data.id!r} was being written concurrently; retry")
        return _replayed(twin, digest, data.id), False
    _persisted(session, order, new_id, lines)
    payload = {k: v for k, v in body.items() if k != "email"}
    events.record(
        session,
        caller,
        type=ev.ORDER_PLACED,
        occurred_at=order.placed_at,
        now=now,
        source=source,
        payload=payload,
        customer_id=customer.id,
        order_id=order.id,
    )
    return order, True


_COLUMNS = [c for c in Order.__table__.columns if c.key != "id"]
# Fields added after orders were first recorded: left out of the body at their default, so
# the hash of an order sent before they existed (and its replays) stays the same.
_LATER_ORDER_FIELDS = {
    "prices_include_tax": False,
    "adjustment": 0,
    "payment_status": "paid",
    "paid_at": None,
}
_LATER_LINE_FIELDS = {"line_id": None, "variant_id": None, "tax": None}


def canonical(data: OrderIn) -> dict[str, Any]:
    """The order's JSON body as hashed and logged (``order.placed`` payload)."""
    body = data.model_dump(mode="json")
    for key, default in _LATER_ORDER_FIELDS.items():
        if body[key] == default:
            del body[key]
    for line in body["lines"]:
        for key in [k for k, d in _LATER_LINE_FIELDS.items() if line[k] == d]:
            del line[key]
    return body


def placed_body(order: Order) -> dict[str, Any]:
    """The order's body as its ``order.placed`` payload holds it, rebuilt from the rows (what
    :func:`fidele.loyalty.earning.facts_of` reads)."""
    return {
        "currency": order.currency,
        "placed_at": order.placed_at.isoformat(),
        "discounts": order.discounts,
        "shipping": order.shipping,
        "tax": order.tax,
        "prices_include_tax": order.prices_include_tax,
        "total": order.total,
        "channel": order.channel,
        "payment_status": order.payment_status,
        "lines": [
            {
                "product_id": ln.product_id,
                "category": ln.category,
                "quantity": ln.quantity,
                "unit_price": ln.unit_price,
                "type": ln.kind,
                "tax": ln.tax,
            }
            for ln in order.lines
        ],
    }


def row_of(order: Order) -> dict[str, Any]:
    """The order's row as inserted (every column but the id)."""
    return {c.key: getattr(order, c.key) for c in _COLUMNS}


def _persisted(session: Session, order: Order, id_: int, lines: list[OrderLine]) -> None:
    """Make the inserted order a persistent instance without reading it back; its lines are
    added (one multi-row INSERT at the next flush) and its collections known, not loaded."""
    order.id = id_
    make_transient_to_detached(order)
    session.add(order)
    set_committed_value(order, "refunds", [])
    for line in lines:
        line.order_id = id_
        set_committed_value(line, "order", order)
    session.add_all(lines)
    set_committed_value(order, "lines", lines)


def _replayed(order: Order, digest: str, external_id: str) -> Order:
    if order.payload_hash != digest:
        raise IdempotencyConflict(f"order {external_id!r} exists with a different body")
    return order


def build_order(
    caller: Caller, customer_id: int, data: OrderIn, digest: str, now: datetime, source: str
) -> tuple[Order, list[OrderLine]]:
    """The new order and its lines as ``create`` inserts them, in no session (``digest`` is
    the body's ``payload_hash``)."""
    amounts = [ln.quantity * ln.unit_price for ln in data.lines]
    shares = domain.line_discounts(amounts, min(data.discounts, sum(amounts)))
    order = Order(
        merchant_id=caller.merchant_id,
        programme_id=caller.programme_id,
        customer_id=customer_id,
        external_id=data.id,
        placed_at=data.placed_at,
        currency=data.currency,
        subtotal=sum(amounts),
        discounts=data.discounts,
        shipping=data.shipping,
        tax=data.tax,
        prices_include_tax=data.prices_include_tax,
        adjustment=data.adjustment,
        total=data.total,
        refunded_total=0,
        status="placed",
        payment_status=data.payment_status,
        paid_at=(data.paid_at or data.placed_at) if data.payment_status == "paid" else None,
        channel=data.channel,
        source=source,
        shipped_at=None,
        delivered_at=None,
        cancelled_at=None,
        payload_hash=digest,
        attributes=data.attributes,
        created_at=now,
        updated_at=now,
    )
    lines = [
        OrderLine(
            line_no=i,
            line_id=ln.line_id,
            product_id=ln.product_id,
            variant_id=ln.variant_id,
            name=ln.name,
            category=ln.category,
            kind=ln.type,
            quantity=ln.quantity,
            unit_price=ln.unit_price,
            discount=share,
            tax=ln.tax,
            refunded_quantity=0,
        )
        for i, (ln, share) in enumerate(zip(data.lines, shares, strict=True))
    ]
    return order, lines


def set_status(
    session: Session,
    caller: Caller,
    external_id: str,
    data: StatusIn,
    now: datetime,
    *,
    source: str = "api",
) -> Order:
    order = get(session, caller, external_id, lock=True)
    if data.status == "paid":
        return _paid(session, caller, order, data.occurred_at or now, now, source)
    if order.status == data.status:
        return order  # a retried status update changes nothing
    if not domain.can_move(order.status, data.status):
        raise Conflict(f"order {external_id!r} is {order.status}; it cannot become {data.status}")
    at, payload = apply_status(order, data, now)
    events.record(
        session,
        caller,
        type=ev.ORDER_STATUS[data.status],
        occurred_at=at,
        now=now,
        source=source,
        payload=payload,
        customer_id=order.customer_id,
        order_id=order.id,
    )
    return order


def _paid(
    session: Session, caller: Caller, order: Order, at: datetime, now: datetime, source: str
) -> Order:
    """Record the payment of a pending order (``order.paid``: loyalty may earn now)."""
    if order.payment_status == "paid":
        return order  # a retried or repeated payment changes nothing
    if order.status == "cancelled":
        raise Conflict(f"order {order.external_id!r} is cancelled; it cannot be paid")
    order.payment_status, order.paid_at, order.updated_at = "paid", at, now
    events.record(
        session,
        caller,
        type=ev.ORDER_PAID,
        occurred_at=at,
        now=now,
        source=source,
        payload={"order_id": order.external_id, "status": "paid"},
        customer_id=order.customer_id,
        order_id=order.id,
    )
    return order


def apply_status(order: Order, data: StatusIn, now: datetime) -> tuple[datetime, dict[str, Any]]:
    """Move ``order`` (allowed by ``domain.can_move``) to ``data.status``; returns when it
    happened and the payload of its event. No I/O: the demo's batch build applies it too."""
    at = data.occurred_at or now
    order.status = data.status
    setattr(order, f"{data.status}_at", at)
    order.updated_at = now
    return at, {"order_id": order.external_id, "status": data.status}


def refund(
    session: Session,
    caller: Caller,
    external_id: str,
    data: RefundIn,
    now: datetime,
    *,
    source: str = "api",
) -> tuple[Refund, bool]:
    order = get(session, caller, external_id, lock=True)
    digest = payload_hash(data.model_dump(mode="json"))
    existing = OrderRepository(session).refund_by_external_id(order.id, data.id)
    if existing is not None:
        if existing.payload_hash != digest:
            raise IdempotencyConflict(f"refund {data.id!r} exists with a different body")
        return existing, False
    row, payload = apply_refund(order, data, digest, now)
    order.refunds.append(row)
    session.flush()
    events.record(
        session,
        caller,
        type=ev.ORDER_REFUNDED,
        occurred_at=row.occurred_at,
        now=now,
        source=source,
        payload=payload,
        customer_id=order.customer_id,
        order_id=order.id,
    )
    return row, True


def apply_refund(
    order: Order, data: RefundIn, digest: str, now: datetime
) -> tuple[Refund, dict[str, Any]]:
    """Refund ``order`` (its lines loaded): the new refund row, not yet attached, and the
    payload of its event; raises on an amount the order cannot take. No I/O: the demo's batch
    build applies it too."""
    external_id = order.external_id
    if order.status == "cancelled":
        raise Conflict(f"order {external_id!r} is cancelled: nothing was paid to refund")
    amount, taken = _refund_amount(order, data)
    remaining = order.total - order.refunded_total
    if amount > remaining:
        raise StateConflict(
            f"refund of {amount} exceeds what remains paid on the order ({remaining})",
            field="amount",
            remaining=remaining,
        )
    if amount <= 0:
        raise StateConflict("nothing left to refund on these lines", field="amount")
    for t in taken:
        order.lines[int(t["line"])].refunded_quantity += int(t["quantity"])
    row = Refund(
        order_id=order.id,
        external_id=data.id,
        amount=amount,
        lines=taken,
        reason=data.reason,
        occurred_at=data.occurred_at or now,
        created_at=now,
        payload_hash=digest,
    )
    order.refunded_total += amount
    order.updated_at = now
    return row, {
        "order_id": external_id,
        "refund_id": data.id,
        "amount": amount,
        "lines": taken,
        "order_total": order.total,
        "refunded_total": order.refunded_total,
    }


def _refund_amount(order: Order, data: RefundIn) -> tuple[int, list[dict[str, Any]]]:
    if data.amount is not None:
        return data.amount, []
    if data.lines is None:  # the whole remainder
        taken = [
            {
                "line": ln.line_no,
                "product_id": ln.product_id,
                "quantity": ln.quantity - ln.refunded_quantity,
                **({"line_id": ln.line_id} if ln.line_id is not None else {}),
            }
            for ln in order.lines
            if ln.quantity > ln.refunded_quantity
        ]
        return order.total - order.refunded_total, taken
    states = [
        domain.LineState(
            ln.product_id, ln.quantity, ln.refunded_quantity, ln.net_amount, ln.line_id
        )
        for ln in order.lines
    ]
    try:
        amount, taken = domain.refund_for_lines(
            states, [(ln.line_id, ln.product_id, ln.quantity) for ln in data.lines]
        )
    except ValueError as exc:
        raise StateConflict(str(exc), field="lines") from exc
    return amount + data.shipping, taken


def discrepancies(session: Session, caller: Caller) -> list[dict[str, Any]]:
    """Orders per source whose lines, discounts, shipping and tax do not add up to their total
    (``adjustment`` non-zero), with the sum of the differences in minor units (mixed
    currencies are summed as they are: a signal, not an amount)."""
    rows = OrderRepository(session).discrepancies(caller.merchant_id)
    return [{"source": s, "orders": n, "adjustment_abs_total": t} for s, n, t in rows]


def list_page(
    session: Session,
    caller: Caller,
    *,
    after_id: int,
    limit: int,
    updated_since: datetime | None,
) -> Sequence[tuple[Order, str]]:
    return OrderRepository(session).page(
        caller.merchant_id, after_id=after_id, limit=limit, updated_since=updated_since
    )


def view(session: Session, order: Order, customer_external_id: str | None = None) -> OrderOut:
    if customer_external_id is None:
        customer = session.get(Customer, order.customer_id)
        assert customer is not None
        customer_external_id = customer.external_id
    extras: dict[str, Any] = {}
    for name, fn in view_extensions.items():
        section = fn(session, order)
        if section is not None:
            extras[name] = section
    return OrderOut(
        id=order.external_id,
        customer_id=customer_external_id,
        placed_at=order.placed_at,
        currency=order.currency,
        lines=[
            LineOut(
                product_id=ln.product_id,
                line_id=ln.line_id,
                variant_id=ln.variant_id,
                name=ln.name,
                category=ln.category,
                quantity=ln.quantity,
                unit_price=ln.unit_price,
                type=ln.kind,
                discount=ln.discount,
                tax=ln.tax,
                refunded_quantity=ln.refunded_quantity,
            )
            for ln in order.lines
        ],
        subtotal=order.subtotal,
        shipping=order.shipping,
        discounts=order.discounts,
        tax=order.tax,
        prices_include_tax=order.prices_include_tax,
        adjustment=order.adjustment,
        total=order.total,
        refunded_total=order.refunded_total,
        status=order.status,
        payment_status=order.payment_status,
        paid_at=order.paid_at,
        channel=order.channel,
        shipped_at=order.shipped_at,
        delivered_at=order.delivered_at,
        cancelled_at=order.cancelled_at,
        refunds=[
            RefundOut(
                id=r.external_id,
                amount=r.amount,
                lines=r.lines,
                reason=r.reason,
                occurred_at=r.occurred_at,
            )
            for r in order.refunds
        ],
        attributes=order.attributes or {},
        created_at=order.created_at,
        updated_at=order.updated_at,
        loyalty=extras.get("loyalty"),
    )
