"""The demo's story written in bulk: customers, orders with their lines, status changes,
refunds and the event log, built row by row with the online services' own builders
(``customers.build_new``, ``orders.build_order``, ``orders.apply_status``,
``orders.apply_refund``, the importers' ``event_row``) and inserted table by table through the
importers' store (COPY on PostgreSQL, multi-row INSERT on SQLite).

Nothing is dispatched: loyalty is rebuilt afterwards from the log by its replay, as after an
import; the consents that messaging's handler records from each sign-up's ``email_marketing``
are built by its own ``flag_rows``. The other subscribers of these events (promotions:
gift-card lines, referral codes, next-order coupons and cashback) have nothing to do in the
demo shop, which has none of them; :func:`check_quiet` refuses a shop where they would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, inspect
from sqlalchemy.orm import Session

from fidele.customers import service as customers
from fidele.customers.models import Customer
from fidele.demo.story import STATUSES, Step
from fidele.events import domain as ev
from fidele.events.domain import payload_hash
from fidele.ingest.importers.bulk import CUSTOMERS, EVENTS, LINES, ORDERS, event_row, store_for
from fidele.messaging import consent
from fidele.messaging.models import Consent
from fidele.orders import service as orders
from fidele.orders.models import Order, OrderLine, Refund
from fidele.orders.schemas import RefundIn, StatusIn
from fidele.promotions import coupons
from fidele.segments import service as segments
from fidele.tenancy.service import Caller

REFUNDS: Table = Refund.__table__  # type: ignore[assignment]
CONSENTS: Table = Consent.__table__  # type: ignore[assignment]
SOURCE = "demo"
CHUNK = 5000  # rows per insert between two progress reports

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class _Shop:
    """The story's rows before they are written, in story order."""

    people: dict[str, Customer] = field(default_factory=dict)
    # order id -> (order, its lines, its refunds, its customer's id)
    orders: dict[str, tuple[Order, list[OrderLine], list[Refund], str]] = field(
        default_factory=dict
    )
    # (customer ext id, granted, at, source) of the sign-ups' email_marketing answers
    consents: list[tuple[str, bool, datetime, str]] = field(default_factory=list)
    # (type, occurred_at, received_at, payload, customer ext id, order ext id, idempotency key)
    events: list[tuple[str, datetime, datetime, dict[str, Any], str, str | None, str | None]] = (
        field(default_factory=list)
    )


def write(session: Session, caller: Caller, story: list[Step], progress: Progress) -> None:
    """Write ``story`` for ``caller``'s (new) shop in ``session``'s transaction."""
    check_quiet(session, caller)
    shop = _Shop()
    for i, step in enumerate(story):
        _apply(shop, caller, step)
        if i % CHUNK == 0:
            progress("story", i, len(story))
    store = store_for(session)
    people = _insert(store, CUSTOMERS, [_row(c) for c in shop.people.values()], progress)
    consents = [
        row
        for cid, granted, at, source in shop.consents
        for row in consent.flag_rows(caller.merchant_id, people[cid], granted, at, source)
    ]
    _append(store, CONSENTS, consents, "consents", progress)
    built = list(shop.orders.values())
    rows = [orders.row_of(o) | {"customer_id": people[c]} for o, _, _, c in built]
    ids = _insert(store, ORDERS, rows, progress)
    lines = [_row(ln) | {"order_id": ids[o.external_id]} for o, ls, _, _ in built for ln in ls]
    _append(store, LINES, lines, "lines", progress)
    refunds = [_row(r) | {"order_id": ids[o.external_id]} for o, _, rs, _ in built for r in rs]
    _append(store, REFUNDS, refunds, "refunds", progress)
    segments.rebuild_order_facts(session, caller.merchant_id)  # what the order events keep
    log = [
        event_row(caller, t, at, now, SOURCE, p, people[c], ids[o] if o else None, key)
        for t, at, now, p, c, o, key in shop.events
    ]
    _append(store, EVENTS, log, "events", progress)


def check_quiet(session: Session, caller: Caller) -> None:
    """The bulk path dispatches no event: refuse a shop where promotions would have acted."""
    cfg = coupons.config(session, caller.merchant_id)
    if cfg.next_order.enabled or cfg.cashback_bp > 0:
        raise ValueError("the demo's bulk build is for a shop without coupons or cashback")


def _apply(shop: _Shop, caller: Caller, step: Step) -> None:
    t, kind, args = step.at, step.kind, step.args
    if kind == "customers":
        cid, profile = args
        if cid in shop.people:  # the story signs each customer up once, before any order
            raise ValueError(f"customer {cid!r} signs up twice")
        customer, payload = customers.build_new(caller, cid, profile, t)
        shop.people[cid] = customer
        change = payload.get("email_marketing")
        if isinstance(change, dict):  # as messaging's handler reads it
            at = datetime.fromisoformat(change["at"]) if change.get("at") else t
            source = change.get("source") or "email_marketing"
            shop.consents.append((cid, bool(change.get("value")), at, source))
        shop.events.append((ev.CUSTOMER_UPSERTED, t, t, payload, cid, None, None))
    elif kind == "orders":
        _place(shop, caller, args[0], t)
    elif kind in STATUSES:
        order, _, _, cid = shop.orders[args[0]]
        at, payload = orders.apply_status(order, StatusIn(status=kind, occurred_at=t), t)  # type: ignore[arg-type]
        shop.events.append((ev.ORDER_STATUS[kind], at, t, payload, cid, order.external_id, None))
    elif kind == "refunds":
        _refund(shop, args[0], args[1], t)
    else:
        cid, seq, props = args
        payload = {"type": kind, "customer_id": cid, "properties": props}
        shop.events.append((kind, t, t, payload, cid, None, f"demo:{seq}"))


def _place(shop: _Shop, caller: Caller, body: Any, t: datetime) -> None:
    if body.customer_id not in shop.people:  # the story signs each customer up first
        raise ValueError(f"order {body.id!r} of a customer not signed up")
    canonical = orders.canonical(body)  # hashed and logged as the online path does
    digest = payload_hash(canonical)
    order, lines = orders.build_order(caller, 0, body, digest, t, SOURCE)
    order.lines = lines  # what apply_refund reads
    shop.orders[body.id] = (order, lines, [], body.customer_id)
    payload = {k: v for k, v in canonical.items() if k != "email"}
    shop.events.append(
        (ev.ORDER_PLACED, order.placed_at, t, payload, body.customer_id, body.id, None)
    )


def _refund(shop: _Shop, oid: str, partial: bool, t: datetime) -> None:
    order, _, refunds, cid = shop.orders[oid]
    amount = max(1, order.total // 2) if partial else None
    data = RefundIn(id=f"R-{oid}", amount=amount, occurred_at=t)
    row, payload = orders.apply_refund(order, data, payload_hash(data.model_dump(mode="json")), t)
    refunds.append(row)
    shop.events.append((ev.ORDER_REFUNDED, row.occurred_at, t, payload, cid, oid, None))


def _row(obj: Any) -> dict[str, Any]:
    """The columns an ORM INSERT of ``obj`` would write: what was set, else the column's
    scalar default (every row of a table gets the same keys, as multi-row inserts need)."""
    state = inspect(obj).dict
    row = {}
    for col in obj.__table__.columns:
        if col.key == "id":
            continue
        if col.key in state:
            row[col.key] = state[col.key]
        elif col.default is not None and col.default.is_scalar:
            row[col.key] = col.default.arg
        else:
            row[col.key] = None
    return row


def _insert(store: Any, table: Table, rows: list[dict[str, Any]], progress: Progress) -> dict:
    """Insert new rows keyed by (merchant, external id), a chunk at a time; their ids."""
    ids: dict[str, int] = {}
    for start in range(0, len(rows), CHUNK):
        ids.update(store.insert_new(table, rows[start : start + CHUNK]))
        progress(table.name, min(start + CHUNK, len(rows)), len(rows))
    return ids


def _append(
    store: Any, table: Table, rows: list[dict[str, Any]], what: str, progress: Progress
) -> None:
    for start in range(0, len(rows), CHUNK):
        store.append(table, rows[start : start + CHUNK])
        progress(what, min(start + CHUNK, len(rows)), len(rows))
