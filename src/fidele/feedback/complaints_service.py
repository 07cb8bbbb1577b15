"""Complaints: opening (API, helpdesk webhook, detractor answers), SLA due times, status
changes, notes, assignment, the marketing pause, service-recovery gestures within the monthly
budget, the overdue list and the daily digest. Never commits: the caller owns the
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from fidele.customers import service as customers
from fidele.customers.models import Customer
from fidele.errors import IdempotencyConflict, InvalidInput, NotFound, StateConflict
from fidele.events import domain as ev
from fidele.events import service as events
from fidele.events.domain import payload_hash
from fidele.feedback import complaints_domain as domain
from fidele.feedback.complaints_models import Complaint, ComplaintNote, RecoveryGesture
from fidele.feedback.complaints_repository import (
    ComplaintRepository,
    GestureRepository,
    SettingsRepository,
)
from fidele.feedback.complaints_schemas import ComplaintIn, ComplaintPatch, GestureIn
from fidele.kit.repository import insert_or_twin
from fidele.messaging import service as messaging
from fidele.orders.repository import OrderRepository
from fidele.tenancy.models import Programme
from fidele.tenancy.service import Caller

COMPLAINT_OPENED = "complaint_opened"  # the action type of the events vocabulary
COMPLAINT_RESOLVED = ev.COMPLAINT_RESOLVED
COMPLAINT_REJECTED = ev.COMPLAINT_REJECTED
SURVEY_AFTER_DAYS = 3  # the resolution survey's suggested delay, carried in the event


@dataclass(frozen=True)
class Config:
    """The merchant's complaint settings with fidele's defaults filled in."""

    document: dict[str, Any]
    tz: ZoneInfo
    opening: dict[int, Any]
    budget: int
    currency: str
    late_rule: dict[str, Any]

    def sla(self, category: str) -> dict[str, float]:
        return domain.sla_for(self.document.get("sla"), category)


def system_caller(merchant_id: int, programme_id: int) -> Caller:
    return Caller(merchant_id, programme_id, None, frozenset({"admin"}))


def config(session: Session, merchant_id: int, programme_id: int) -> Config:
    """The merchant's zone: the one set for complaints, else the programme's regional setting
    (dashboard, Settings > Shop), else the messaging policy's, else UTC."""
    doc = SettingsRepository(session).document(merchant_id)
    programme = session.get(Programme, programme_id)
    zone_name = (
        doc.get("timezone")
        or ((programme.settings or {}).get("timezone") if programme else None)
        or messaging.get_policy(session, merchant_id).timezone
    )
    return Config(
        document=doc,
        tz=domain.zone(zone_name),
        opening=domain.business_hours(doc.get("business_hours")),
        budget=int(doc.get("monthly_budget", domain.DEFAULT_BUDGET_MINOR)),
        currency=programme.currency if programme else "EUR",
        late_rule={**domain.DEFAULT_LATE_RULE, **(doc.get("late_delivery_rule") or {})},
    )


def merchant_zone(session: Session, merchant_id: int) -> ZoneInfo:
    """The merchant's zone (as :func:`config` finds it), for what is counted by local day or
    month (the survey trend)."""
    from fidele.tenancy.models import Merchant

    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        return domain.zone(None)
    return config(session, merchant_id, merchant.programme_id).tz


def settings_view(session: Session, caller: Caller, now: datetime) -> dict[str, Any]:
    cfg = config(session, caller.merchant_id, caller.programme_id)
    spent = GestureRepository(session).spent(caller.merchant_id, domain.month_of(now, cfg.tz))
    hours = cfg.document.get("business_hours") or domain.DEFAULT_HOURS
    return {
        "sla": {c: cfg.sla(c) for c in domain.CATEGORIES},
        "business_hours": hours,
        "timezone": cfg.tz.key,
        "monthly_budget": cfg.budget,
        "currency": cfg.currency,
        "budget_spent_this_month": spent,
        "late_delivery_rule": cfg.late_rule,
    }


def put_settings(
    session: Session, caller: Caller, document: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Merge ``document`` (validated by ``ComplaintSettingsIn``) into the merchant's settings.
    Due times of complaints already open keep the SLA they were opened under."""
    repo = SettingsRepository(session)
    merged = {**repo.document(caller.merchant_id), **document}
    repo.put(caller.merchant_id, merged, now)
    return settings_view(session, caller, now)


# -- opening


def _customer(session: Session, caller: Caller, external_id: str) -> Customer:
    try:
        return customers.get(session, caller, external_id)
    except NotFound as exc:
        raise InvalidInput(f"customer {external_id!r} not found", field="customer_id") from exc


def _order_id(
    session: Session, caller: Caller, customer: Customer, external_id: str | None
) -> int | None:
    if external_id is None:
        return None
    order = OrderRepository(session).by_external_id(caller.merchant_id, external_id)
    if order is None or order.customer_id != customer.id:
        raise InvalidInput(f"order {external_id!r} of this customer not found", field="order_id")
    return order.id


def open_complaint(
    session: Session,
    caller: Caller,
    data: ComplaintIn,
    now: datetime,
    *,
    source: str = "api",
    source_ref: str | None = None,
) -> tuple[Complaint, bool]:
    """Open a complaint; ``(complaint, created)``. The same ``source_ref`` with the same body
    returns the first complaint (a retry); with another body it is a 409. Opening pauses the
    customer's marketing messages."""
    digest = payload_hash(data.model_dump(mode="json"))
    repo = ComplaintRepository(session)
    if source_ref is not None:
        found = repo.by_source_ref(caller.merchant_id, source_ref)
        if found is not None:
            return _replayed(found, digest, source_ref), False
    customer = _customer(session, caller, data.customer_id)
    order_id = _order_id(session, caller, customer, data.order_id)
    cfg = config(session, caller.merchant_id, caller.programme_id)
    sla = cfg.sla(data.category)
    row = Complaint(
        merchant_id=caller.merchant_id,
        programme_id=caller.programme_id,
        customer_id=customer.id,
        order_id=order_id,
        category=data.category,
        message=data.message,
        channel=data.channel,
        source=source,
        source_ref=source_ref,
        payload_hash=digest,
        status="open",
        opened_at=now,
        first_response_due=domain.add_business_time(
            now, sla["first_response_hours"], cfg.tz, cfg.opening
        ),
        resolution_due=domain.add_business_time(now, sla["resolution_hours"], cfg.tz, cfg.opening),
        created_at=now,
        updated_at=now,
    )
    if not insert_or_twin(session, row):  # a concurrent twin with the same source_ref
        twin = repo.by_source_ref(caller.merchant_id, source_ref or "")
        if twin is None:
            raise StateConflict("concurrent write conflict; retry", field="source_ref")
        return _replayed(twin, digest, source_ref or ""), False
    messaging.set_complaint_open(
        session, merchant_id=caller.merchant_id, customer_id=customer.id, open=True, now=now
    )
    events.record(
        session,
        caller,
        type=COMPLAINT_OPENED,
        occurred_at=now,
        now=now,
        source="complaints",
        payload={"complaint_id": row.id, "category": row.category, "channel": row.channel},
        customer_id=customer.id,
        order_id=order_id,
    )
    return row, True


def _replayed(found: Complaint, digest: str, source_ref: str) -> Complaint:
    if found.payload_hash != digest:
        raise IdempotencyConflict(f"{source_ref!r} was used with a different body")
    return found


# -- handling


def get(session: Session, caller: Caller, complaint_id: int, *, lock: bool = False) -> Complaint:
    row = ComplaintRepository(session).find(caller.merchant_id, complaint_id, lock=lock)
    if row is None:
        raise NotFound(f"complaint {complaint_id} not found")
    return row


def add_note(
    session: Session,
    caller: Caller,
    complaint_id: int,
    body: str,
    author: str | None,
    now: datetime,
) -> ComplaintNote:
    """A note; the first one is the first response when none was given yet."""
    row = get(session, caller, complaint_id, lock=True)
    note = ComplaintRepository(session).add_note(
        ComplaintNote(complaint_id=row.id, author=author, body=body, created_at=now)
    )
    if row.first_response_at is None:
        row.first_response_at = now
    row.updated_at = now
    return note


def update(
    session: Session, caller: Caller, complaint_id: int, patch: ComplaintPatch, now: datetime
) -> Complaint:
    """Assign, write the resolution, move the status (a retry of the current status changes
    nothing) and, on resolution, grant a gesture. Closing the customer's last open complaint
    resumes their marketing messages."""
    row = get(session, caller, complaint_id, lock=True)
    repo = ComplaintRepository(session)
    if patch.assignee_id is not None:
        if repo.user_of(caller.merchant_id, patch.assignee_id) is None:
            raise InvalidInput("no such dashboard user for this merchant", field="assignee_id")
        row.assignee_id = patch.assignee_id
    if patch.gesture is not None and patch.status != "resolved":
        raise InvalidInput('a gesture is granted with "status": "resolved"', field="gesture")
    if patch.resolution is not None:
        row.resolution = patch.resolution
    if patch.status is not None and patch.status != row.status:
        if not domain.can_move(row.status, patch.status):
            allowed = ", ".join(sorted(domain.TRANSITIONS[row.status])) or "nothing"
            raise StateConflict(
                f"a {row.status} complaint can become {allowed}, not {patch.status}",
                field="status",
            )
        _move(session, caller, row, patch.status, patch.gesture, now)
    row.updated_at = now
    session.flush()
    return row


def _move(
    session: Session,
    caller: Caller,
    row: Complaint,
    status: str,
    gesture: GestureIn | None,
    now: datetime,
) -> None:
    row.status = status
    if row.first_response_at is None:
        row.first_response_at = now
    if status in domain.OPEN_STATUSES:
        return
    row.closed_at = now
    customer = session.get(Customer, row.customer_id)
    assert customer is not None
    if gesture is not None:
        cfg = config(session, caller.merchant_id, caller.programme_id)
        grant = grant_gesture(
            session,
            cfg,
            customer,
            kind=gesture.kind,
            value=gesture.value,
            source_ref=f"complaint:{row.id}",
            now=now,
            complaint_id=row.id,
            order_id=row.order_id,
        )
        row.gesture_kind, row.gesture_value = grant.kind, grant.value
    if ComplaintRepository(session).open_count(row.customer_id) == 0:
        messaging.set_complaint_open(
            session, merchant_id=row.merchant_id, customer_id=row.customer_id, open=False, now=now
        )
    hours = (now - row.opened_at).total_seconds() / 3600
    events.record(
        session,
        caller,
        type=COMPLAINT_RESOLVED if status == "resolved" else COMPLAINT_REJECTED,
        occurred_at=now,
        now=now,
        source="complaints",
        payload={
            "complaint_id": row.id,
            "category": row.category,
            "gesture": row.gesture_kind,
            "gesture_value": row.gesture_value,
            "resolution_hours": round(hours, 2),
            "resolution_breached": domain.breached(row.resolution_due, now, now),
            "survey_after_days": SURVEY_AFTER_DAYS,
            "survey_occasion": f"complaint:{row.id}",
        },
        customer_id=row.customer_id,
        order_id=row.order_id,
    )


# -- service recovery


def gesture_cost(session: Session, programme_id: int, kind: str, value: int) -> int:
    """The money a gesture costs the merchant, minor units: points at the programme's point
    value, coupons and store credit at face value."""
    if kind != "points":
        return value
    from fidele.loyalty import service as loyalty

    per_hundred, _ = loyalty.point_value(session, programme_id)
    return -(-value * per_hundred // 100)  # rounded up: the budget is never overshot


def grant_gesture(
    session: Session,
    cfg: Config,
    customer: Customer,
    *,
    kind: str,
    value: int,
    source_ref: str,
    now: datetime,
    complaint_id: int | None = None,
    order_id: int | None = None,
) -> RecoveryGesture:
    """Grant a gesture once per ``source_ref``, within the month's recovery budget (a 422
    naming ``gesture.value`` beyond it, nothing granted)."""
    repo = GestureRepository(session)
    found = repo.by_source_ref(customer.merchant_id, source_ref)
    if found is not None:
        return found
    cost = gesture_cost(session, customer.programme_id, kind, value)
    SettingsRepository(session).lock(customer.merchant_id, now)  # budget checks in turn
    month = domain.month_of(now, cfg.tz)
    left = domain.budget_left(cfg.budget, repo.spent(customer.merchant_id, month))
    if cost > left:
        raise InvalidInput(
            f"the gesture costs {cost} but {left} of the monthly recovery budget "
            f"({cfg.budget} {cfg.currency}) is left",
            field="gesture.value",
            budget=cfg.budget,
            left=left,
            cost=cost,
        )
    reference = _give(session, cfg, customer, kind, value, source_ref, now)
    row = RecoveryGesture(
        merchant_id=customer.merchant_id,
        customer_id=customer.id,
        complaint_id=complaint_id,
        order_id=order_id,
        source_ref=source_ref,
        kind=kind,
        value=value,
        cost=cost,
        month=month,
        reference=reference,
        created_at=now,
    )
    repo.add(row)
    return row


def _give(
    session: Session,
    cfg: Config,
    customer: Customer,
    kind: str,
    value: int,
    ref: str,
    now: datetime,
) -> str | None:
    """Hand the gesture over through the loyalty or promotions service; the coupon's code."""
    if kind == "points":
        from fidele.loyalty import service as loyalty

        loyalty.award_points(
            session, customer=customer, points=value, reason="service recovery", key=ref, now=now
        )
        return None
    if kind == "coupon":
        from fidele.promotions import coupons

        coupon = coupons.issue_personal(
            session,
            programme_id=customer.programme_id,
            merchant_id=customer.merchant_id,
            customer_id=customer.id,
            source_ref=f"recovery:{ref}",
            now=now,
            kind="amount_off",
            value=value,
            name="service recovery",
            origin="recovery",
        )
        return coupon.display_code
    from fidele.promotions import wallet

    wallet.credit(
        session,
        customer,
        amount=value,
        currency=cfg.currency,
        source_key=f"recovery:{ref}",
        reason="service recovery",
        now=now,
    )
    return None


# -- overdue and digest


def overdue(session: Session, caller: Caller, now: datetime) -> list[Complaint]:
    return list(ComplaintRepository(session).overdue(caller.merchant_id, now))


def digest(session: Session, now: datetime) -> int:
    """Queue one ``complaints.digest`` webhook per merchant with open complaints, once per
    local day of the merchant (the outbox's dedup key): open, overdue, due today."""
    from fidele.webhooks import service as webhooks

    repo = ComplaintRepository(session)
    sent = 0
    for merchant_id in repo.merchants_with_open():
        open_rows = list(repo.open_of(merchant_id))
        late = list(repo.overdue(merchant_id, now))
        first = open_rows[0]
        cfg = config(session, merchant_id, first.programme_id)
        day = now.astimezone(cfg.tz).date().isoformat()
        sent += webhooks.publish(
            session,
            programme_id=first.programme_id,
            merchant_id=merchant_id,
            topic="complaints.digest",
            payload={
                "date": day,
                "open": len(open_rows),
                "in_progress": sum(r.status == "in_progress" for r in open_rows),
                "overdue": len(late),
                "overdue_ids": [r.id for r in late[:100]],
                "by_category": _count_by(open_rows, "category"),
            },
            dedup_key=f"complaints.digest:{merchant_id}:{day}",
            now=now,
        )
    return sent


def _count_by(rows: list[Complaint], attr: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        key = getattr(r, attr)
        out[key] = out.get(key, 0) + 1
    return out
