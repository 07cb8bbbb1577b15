"""What enrolls customers: events (live, in the event's transaction), yearly dates and the
cadence prediction (scheduled scans). Events also end enrollments on their goals and end waits
for an event."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from fidele.campaigns import domain, engine
from fidele.campaigns.models import Flow, FlowVersion
from fidele.campaigns.repository import ACTIVE, FlowRepository
from fidele.events.models import Event
from fidele.kit.cache import ProcessCache

# A date trigger's occurrence is caught up to this long after it fell (a worker down for a
# few hours still sends the birthday wishes, not a week late).
DATE_WINDOW = timedelta(days=1)
# An event older than this when it arrives (an import of past orders, a late sync) enrolls
# nobody: no thank-you for an order of last year. It still ends waits and reaches goals.
STALE_EVENT = timedelta(days=2)


# The merchant's active event-triggered flows, which every event of theirs consults: per
# process, for EVENT_FLOWS_TTL_SECONDS. Saving, activating or pausing a flow through this
# process applies at once; through another process within that time.
EVENT_FLOWS_TTL_SECONDS = 2.0
_event_flows: ProcessCache[tuple[tuple[int, dict[str, Any]], ...]] = ProcessCache(
    "event_flows",
    EVENT_FLOWS_TTL_SECONDS,
    lambda objects: any(isinstance(o, Flow | FlowVersion) for o in objects),
)


def event_flows(session: Session, merchant_id: int) -> tuple[tuple[int, dict[str, Any]], ...]:
    """(flow id, definition of its active version) of the merchant's active flows triggered
    by events, from the cache when fresh."""
    return _event_flows.get(
        session,
        merchant_id,
        lambda: tuple(
            (flow.id, raw)
            for flow, raw in FlowRepository(session).active_with_definitions(
                merchant_id=merchant_id, kind="event"
            )
        ),
    )


def event_types(event: Event) -> list[str]:
    """The flow trigger types an event stands for (``customer.created`` is the first
    ``customer.upserted``)."""
    types = [event.type]
    if event.type == "customer.upserted" and (event.payload or {}).get("created"):
        types.append("customer.created")
    return types


def customer_of(session: Session, event: Event) -> int | None:
    if event.customer_id is not None:
        return event.customer_id
    member_id = (event.payload or {}).get("member_id")
    if event.type.startswith("loyalty.") and isinstance(member_id, int):
        return FlowRepository(session).customer_of_member(member_id)
    return None


# session.info key: {event id: the active enrollments of its customer}, read for a batch of
# events at once (``prefetch``), each entry taken by its event's ``on_event``
_PREFETCHED = "fidele.flows.prefetched"


def prefetch(session: Session, events: Sequence[Event]) -> Callable[[], None] | None:
    """Read (and lock, in id order) the active enrollments of a batch's customers in one
    query for ``on_event``; a cleanup to call once the batch is dispatched. Only for a batch
    whose events name distinct customers: an event's handling can enroll or end its own
    customer's enrollments, which a later event of the same customer must see (it then reads
    them itself, as without a batch)."""
    ids = [e.customer_id for e in events]
    if len(events) < 2 or None in ids or len(set(ids)) != len(ids):
        return None
    found: dict[int, list[Any]] = {c: [] for c in ids if c is not None}
    for enr in FlowRepository(session).active_of_customers(set(found)):
        found[enr.customer_id].append(enr)
    session.info[_PREFETCHED] = {e.id: found[e.customer_id] for e in events}  # type: ignore[index]
    return lambda: session.info.pop(_PREFETCHED, None)


def on_event(session: Session, event: Event, now: datetime) -> None:
    customer_id = customer_of(session, event)
    if customer_id is None:
        return
    types = event_types(event)
    repo = FlowRepository(session)
    prefetched = session.info.get(_PREFETCHED, {}).pop(event.id, None)
    active = repo.active_of_customer(customer_id) if prefetched is None else prefetched
    for enr in active:
        definition = engine.version_definition(session, enr.flow_id, enr.version)
        goal = next((t for t in types if t in definition.goals), None)
        if goal is not None:
            engine.exit_enrollment(session, enr, now, f"goal reached: {goal}")
        elif enr.waiting_for in types:
            engine.event_happened(session, enr, event.id, now)
    if event.occurred_at < now - STALE_EVENT:
        return
    for flow_id, raw in event_flows(session, event.merchant_id):
        definition = engine.definition_of(raw)
        trigger = definition.trigger
        for type_ in [t for t in types if t in trigger.events][:1]:
            if not domain.payload_matches(trigger.where, event.payload or {}):
                continue
            if trigger.first_order and repo.order_count(customer_id) != 1:
                continue
            flow = session.get(Flow, flow_id)
            if flow is None or flow.status != ACTIVE:
                continue  # paused or removed since the cache was filled
            engine.enroll(
                session,
                flow,
                definition,
                customer_id,
                occurrence=f"event:{event.id}",
                now=now,
                context=_event_context(event),
                why=f"event {type_}",
            )


def _event_context(event: Event) -> dict[str, Any]:
    context: dict[str, Any] = {"event_id": event.id}
    if event.order_id is not None:
        context["order_id"] = event.order_id
    occasion = (event.payload or {}).get("survey_occasion")
    if isinstance(occasion, str) and occasion:
        context["survey_occasion"] = occasion  # e.g. complaint:12, what its survey is about
    return context


# --- dates ---------------------------------------------------------------------------------


def enroll_dates(session: Session, now: datetime) -> int:
    """Enroll the customers whose birthday, first-order anniversary or fixed date fell within
    the last day in their timezone, once a year per flow."""
    repo = FlowRepository(session)
    entered = 0
    for flow, raw in repo.active_with_definitions(kind="date"):
        definition = engine.definition_of(raw)
        trigger = definition.trigger
        if trigger.date == "birthday":
            rows: list[tuple[int, Any, str | None]] = list(repo.birthdays(flow.merchant_id))
        elif trigger.date == "first_order_anniversary":
            rows = [(c, _local_date(f, tz), tz) for c, f, tz in repo.first_orders(flow.merchant_id)]
        else:
            rows = list(repo.everyone(flow.merchant_id))
        for customer_id, anchor, tz in rows:
            key = domain.date_due(trigger, anchor, now, domain.zone(tz), DATE_WINDOW)
            if key is None:
                continue
            entered += bool(
                engine.enroll(
                    session,
                    flow,
                    definition,
                    customer_id,
                    occurrence=f"date:{key}",
                    now=now,
                    why=f"date {trigger.date} {key}",
                )
            )
    return entered


def _local_date(at: datetime, tz: str | None) -> date:
    return at.astimezone(domain.zone(tz)).date()


# --- prediction ----------------------------------------------------------------------------


def cadences(session: Session, merchant_id: int, now: datetime) -> pl.DataFrame:
    """Each customer's last order and expected gap as of ``now``, by the analytics' own
    cadence rule (the customer's median gap shrunk toward the shop's median; the shop's median
    for one-time buyers)."""
    from fidele.analytics.cadence import cadence

    rows = FlowRepository(session).merchant_orders(merchant_id, now)
    if not rows:
        return pl.DataFrame()
    frame = pl.DataFrame(
        {"customer_id": [c for c, _ in rows], "date": [p.astimezone(UTC) for _, p in rows]},
        schema={"customer_id": pl.Int64, "date": pl.Datetime("us", "UTC")},
    )
    return cadence(frame, observation_end=now.date())


def enroll_predictions(session: Session, now: datetime) -> int:
    """Enroll customers overdue by the flow's factor of their own cadence, once per lapse
    (the occurrence is their last order's date: buying again and lapsing again re-enters)."""
    repo = FlowRepository(session)
    entered = 0
    frames: dict[int, pl.DataFrame] = {}
    for flow, raw in repo.active_with_definitions(kind="prediction"):
        definition = engine.definition_of(raw)
        prediction = definition.trigger.prediction
        assert prediction is not None
        if flow.merchant_id not in frames:
            frames[flow.merchant_id] = cadences(session, flow.merchant_id, now)
        frame = frames[flow.merchant_id]
        if frame.is_empty():
            continue
        last_orders = _last_orders(session, flow.merchant_id, now)
        for customer_id, gap in frame.select("customer_id", "expected_gap").iter_rows():
            last = last_orders.get(customer_id)
            if last is None or gap is None:
                continue
            ratio = domain.overdue_ratio(last, gap, now)
            if ratio < prediction.overdue_ratio or ratio > prediction.at_most:
                continue
            entered += bool(
                engine.enroll(
                    session,
                    flow,
                    definition,
                    customer_id,
                    occurrence=f"lapse:{last.date().isoformat()}",
                    now=now,
                    context={"gap_days": round(float(gap), 2), "last_order_at": last.isoformat()},
                    why=f"overdue {ratio:.2f} x a gap of {gap:.0f} days",
                )
            )
    return entered


def _last_orders(session: Session, merchant_id: int, now: datetime) -> dict[int, datetime]:
    last: dict[int, datetime] = {}
    for customer_id, placed in FlowRepository(session).merchant_orders(merchant_id, now):
        if customer_id not in last or placed > last[customer_id]:
            last[customer_id] = placed
    return last
