"""Paid membership, driven by the shop's billing events:
``membership.activated`` / ``membership.renewed`` (properties: ``plan``, optional
``period_end``), ``membership.cancelled`` (benefits last until the period ends) and
``membership.expired``. Benefits apply only while a membership is active at the time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.errors import StateConflict
from fidele.events.models import Event
from fidele.kit.clock import as_utc
from fidele.loyalty import domain, members
from fidele.loyalty.config import Plan, Scale
from fidele.loyalty.models import Member, Membership
from fidele.loyalty.repository import LoyaltyRepository

TYPES = ("membership.activated", "membership.renewed", "membership.cancelled", "membership.expired")


def is_active(row: Membership, at: datetime) -> bool:
    return row.status in ("active", "cancelled") and row.started_at <= at < row.period_end


def active(session: Session, member: Member, at: datetime) -> Membership | None:
    rows = [m for m in LoyaltyRepository(session).memberships(member.id) if is_active(m, at)]
    return rows[-1] if rows else None


def active_plan(session: Session, member: Member, scale: Scale, at: datetime) -> Plan | None:
    if not scale.plans:
        return None
    row = active(session, member, at)
    return scale.plan(row.plan) if row is not None else None


def on_event(session: Session, event: Event, now: datetime) -> Membership | None:
    if event.customer_id is None:
        return None
    props: dict[str, Any] = event.payload.get("properties", {})
    code = str(props.get("plan", ""))
    scale = members.scale_at(session, event.programme_id, now)
    plan = scale.plan(code)
    if plan is None:
        raise StateConflict(f"unknown membership plan {code!r}", field="properties.plan")
    customer = session.get(Customer, event.customer_id)
    assert customer is not None
    member = members.member_for(session, customer, now)
    row = LoyaltyRepository(session).membership(member.id, code)
    return _apply(session, member, row, plan, event, props)


def _apply(
    session: Session,
    member: Member,
    row: Membership | None,
    plan: Plan,
    event: Event,
    props: dict[str, Any],
) -> Membership | None:
    at = event.occurred_at
    kind = event.type.split(".", 1)[1]
    if kind in ("activated", "renewed"):
        start = at if row is None or not is_active(row, at) else row.started_at
        base = at if row is None or row.period_end < at else row.period_end
        end = (
            as_utc(datetime.fromisoformat(props["period_end"]))
            if props.get("period_end")
            else domain.add_months(base, plan.period_months)
        )
        if row is None:
            row = Membership(
                member_id=member.id,
                plan=plan.code,
                status="active",
                started_at=start,
                period_end=end,
            )
            session.add(row)
        else:
            row.status, row.started_at, row.period_end, row.cancelled_at = (
                "active",
                start,
                end,
                None,
            )
    elif row is not None and kind == "cancelled":
        row.status, row.cancelled_at = "cancelled", at
    elif row is not None and kind == "expired":
        row.status, row.period_end = "expired", min(row.period_end, at)
    session.flush()
    return row


def expire_lapsed(session: Session, now: datetime) -> int:
    """Mark memberships whose period ended (benefits already stopped by date)."""
    rows = LoyaltyRepository(session).lapsed_memberships(now)
    for row in rows:
        row.status = "expired"
    return len(rows)
