"""Delivery experience: promised and actual delivery per order (from the API, the order's
``promised_delivery_at``/``carrier`` attributes and ``order.delivered``), late deliveries judged
once per order (``order.delivered_late`` with the days late, which an apology journey can start
on, and the merchant's automatic gesture within the recovery budget), and the delivery KPIs
with their effect on repeat purchase. Never commits."""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.errors import InvalidInput, NotFound
from fidele.events import domain as ev
from fidele.events import service as events
from fidele.events.models import Event
from fidele.feedback import complaints_domain as domain
from fidele.feedback import complaints_service as complaints
from fidele.feedback.complaints_repository import ComplaintRepository
from fidele.feedback.delivery_models import OrderDelivery
from fidele.feedback.delivery_repository import DeliveryRepository
from fidele.feedback.delivery_schemas import DeliveryIn
from fidele.kit.clock import as_utc
from fidele.orders.models import Order
from fidele.orders.repository import OrderRepository
from fidele.tenancy.service import Caller

DELIVERED_LATE = ev.ORDER_DELIVERED_LATE
REPEAT_WINDOW_DAYS = 90
PROMISED_KEY, CARRIER_KEY = "promised_delivery_at", "carrier"


def _order(session: Session, caller: Caller, external_id: str) -> Order:
    order = OrderRepository(session).by_external_id(caller.merchant_id, external_id)
    if order is None:
        raise NotFound(f"order {external_id!r} not found")
    return order


def get(session: Session, caller: Caller, external_id: str) -> tuple[Order, OrderDelivery | None]:
    order = _order(session, caller, external_id)
    return order, session.get(OrderDelivery, order.id)


def put(
    session: Session, caller: Caller, external_id: str, data: DeliveryIn, now: datetime
) -> tuple[Order, OrderDelivery]:
    """Set what is known of the order's delivery; once both dates are known the delivery is
    judged (once)."""
    order = _order(session, caller, external_id)
    if data.delivered_at is not None and data.delivered_at < order.placed_at:
        raise InvalidInput("delivered before the order was placed", field="delivered_at")
    row = DeliveryRepository(session).lock_or_create(
        order.id, order.merchant_id, order.customer_id, now
    )
    for name in ("promised_at", "delivered_at", "carrier"):
        value = getattr(data, name)
        if value is not None:
            setattr(row, name, value)
    row.delivered_at = row.delivered_at or order.delivered_at  # delivered before the promise
    row.updated_at = now
    judge(session, order, row, now)
    return order, row


def judge(session: Session, order: Order, row: OrderDelivery, now: datetime) -> None:
    """Once per order, when both dates are known: the days late, and when late the
    ``order.delivered_late`` event and the merchant's rule's gesture (skipped, and said so in
    the event, when the budget cannot pay it)."""
    if row.late_checked_at is not None or row.promised_at is None or row.delivered_at is None:
        return
    cfg = complaints.config(session, order.merchant_id, order.programme_id)
    late = domain.days_late(row.promised_at, row.delivered_at, cfg.tz)
    row.days_late, row.late_checked_at = max(late, 0), now
    session.flush()
    if late <= 0:
        return
    gesture, refused = _apology(session, cfg, order, late, now, row.delivered_at)
    caller = complaints.system_caller(order.merchant_id, order.programme_id)
    events.record(
        session,
        caller,
        type=DELIVERED_LATE,
        occurred_at=row.delivered_at,
        now=now,
        source="delivery",
        payload={
            "order_id": order.external_id,
            "days_late": late,
            "promised_at": row.promised_at.isoformat(),
            "delivered_at": row.delivered_at.isoformat(),
            "carrier": row.carrier,
            "gesture": gesture,
            "gesture_refused": refused,
        },
        customer_id=order.customer_id,
        order_id=order.id,
        idempotency_key=f"{DELIVERED_LATE}:{order.id}",
    )


def _apology(
    session: Session,
    cfg: complaints.Config,
    order: Order,
    late: int,
    now: datetime,
    row_delivered_at: datetime | None = None,
) -> tuple[dict[str, Any] | None, str | None]:
    rule = cfg.late_rule
    if rule["kind"] == "none" or late < int(rule["min_days_late"]) or int(rule["value"]) <= 0:
        return None, None
    if row_delivered_at is not None and domain.apology_too_late(row_delivered_at, now):
        days = domain.APOLOGY_WINDOW.days
        return None, f"delivered more than {days} days before it was known (no automatic gesture)"
    customer = session.get(Customer, order.customer_id)
    if customer is None or customer.erased_at is not None:
        return None, "customer erased"
    try:
        grant = complaints.grant_gesture(
            session,
            cfg,
            customer,
            kind=rule["kind"],
            value=int(rule["value"]),
            source_ref=f"late:{order.id}",
            now=now,
            order_id=order.id,
        )
    except InvalidInput as exc:  # beyond the budget: the delivery still counts as late
        return None, exc.detail
    return {"kind": grant.kind, "value": grant.value, "code": grant.reference}, None


# -- from the order's own events


def _attribute_time(order: Order) -> datetime | None:
    raw = (order.attributes or {}).get(PROMISED_KEY)
    if not isinstance(raw, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(raw))
    except ValueError:
        return None  # a shop's odd attribute must not refuse the order


def on_placed(session: Session, event: Event, now: datetime) -> None:
    """An order sent with ``attributes.promised_delivery_at`` (ISO 8601 with a zone) and/or
    ``attributes.carrier``: its delivery row. Orders without them cost nothing."""
    attrs = (event.payload or {}).get("attributes") or {}
    if event.order_id is None or not (PROMISED_KEY in attrs or CARRIER_KEY in attrs):
        return
    order = session.get(Order, event.order_id)
    if order is None:
        return
    _from_order(session, order, now)


def _from_order(session: Session, order: Order, now: datetime) -> OrderDelivery:
    row = DeliveryRepository(session).lock_or_create(
        order.id, order.merchant_id, order.customer_id, now
    )
    carrier = (order.attributes or {}).get(CARRIER_KEY)
    row.promised_at = row.promised_at or _attribute_time(order)
    row.carrier = row.carrier or (str(carrier)[:100] if carrier else None)
    row.updated_at = now
    return row


def on_delivered(session: Session, event: Event, now: datetime) -> None:
    """``order.delivered``: the actual delivery time, then judged."""
    if event.order_id is None:
        return
    order = session.get(Order, event.order_id)
    if order is None:
        return
    if session.get(OrderDelivery, order.id) is None and _attribute_time(order) is None:
        return  # no promise known: nothing to judge (the order keeps its delivered_at)
    row = _from_order(session, order, now)
    row.delivered_at = row.delivered_at or order.delivered_at or event.occurred_at
    judge(session, order, row, now)


def check_due(session: Session, now: datetime, limit: int = 1000) -> int:
    """The daily catch-up: deliveries with both dates that were never judged (dates written
    by imports or before a promise was known)."""
    done = 0
    for row in DeliveryRepository(session).unchecked(limit):
        order = session.get(Order, row.order_id)
        if order is not None:
            judge(session, order, row, now)
            done += 1
    return done


# -- KPIs


def kpis(
    session: Session, caller: Caller, now: datetime, since: datetime | None = None
) -> dict[str, Any]:
    cfg = complaints.config(session, caller.merchant_id, caller.programme_id)
    rows = DeliveryRepository(session).measured(caller.merchant_id, since, now)
    orders: dict[int, list[datetime]] = {}
    for customer_id, placed in ComplaintRepository(session).order_times(caller.merchant_id):
        orders.setdefault(customer_id, []).append(placed)
    total, by_carrier = _Tally(), {}
    repeat = {"on_time": [0, 0], "late": [0, 0]}
    for row in rows:
        assert row.promised_at is not None and row.delivered_at is not None
        late = max(domain.days_late(row.promised_at, row.delivered_at, cfg.tz), 0)
        total.add(late)
        by_carrier.setdefault(row.carrier or "unknown", _Tally()).add(late)
        if row.delivered_at + timedelta(days=REPEAT_WINDOW_DAYS) <= now:
            times = orders.get(row.customer_id, [])
            i = bisect.bisect_right(times, row.delivered_at)
            hit = i < len(times) and times[i] <= row.delivered_at + timedelta(
                days=REPEAT_WINDOW_DAYS
            )
            cell = repeat["late" if late else "on_time"]
            cell[0] += 1
            cell[1] += int(hit)
    return {
        "since": since,
        "until": now,
        **total.view(),
        "by_carrier": {k: v.view() for k, v in sorted(by_carrier.items())},
        "repeat": {
            "window_days": REPEAT_WINDOW_DAYS,
            **{
                k: {"n": n, "repeated": h, "rate": round(h / n, 4) if n else None}
                for k, (n, h) in repeat.items()
            },
        },
    }


class _Tally:
    def __init__(self) -> None:
        self.n = self.late = self.delay = 0

    def add(self, days_late: int) -> None:
        self.n += 1
        self.late += int(days_late > 0)
        self.delay += days_late

    def view(self) -> dict[str, Any]:
        return {
            "delivered": self.n,
            "on_time": self.n - self.late,
            "late": self.late,
            "on_time_rate": round((self.n - self.late) / self.n, 4) if self.n else None,
            "average_delay_days": round(self.delay / self.n, 2) if self.n else None,
            "average_days_late_when_late": round(self.delay / self.late, 2) if self.late else None,
        }
