"""The loyalty service: what endpoints, the CLI and other domains (promotions' checkout) call.

Interfaces for other domains: :func:`available_points`, :func:`burn_points`,
:func:`refund_burn`, :func:`point_value`, :func:`customer_tier`, :func:`active_membership`,
:func:`simulate_order_points`, :func:`find_voucher`, :func:`use_voucher`,
:func:`release_voucher`, :func:`award_points`. None of them commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.loyalty import domain, earning, members, membership, points, rewards
from fidele.loyalty.config import Scale
from fidele.loyalty.domain import Line, OrderFacts
from fidele.loyalty.models import Member, Voucher
from fidele.loyalty.repository import LoyaltyRepository
from fidele.orders.domain import line_discounts
from fidele.tenancy.service import Caller

find_voucher = rewards.find_voucher
use_voucher = rewards.use_voucher
release_voucher = rewards.release_voucher
voucher_owner = rewards.voucher_owner
__all__ = ["Voucher", "find_voucher", "release_voucher", "use_voucher", "voucher_owner"]


@dataclass(frozen=True)
class TierView:
    name: str
    rank: int
    multiplier_bp: int
    free_shipping: bool
    exclusive_rewards: bool


@dataclass(frozen=True)
class MembershipView:
    plan: str
    name: str
    period_end: datetime
    status: str
    multiplier_bp: int
    free_shipping: bool
    exclusive_rewards: bool


def member_of(session: Session, customer: Customer) -> Member | None:
    """The customer's loyalty member, or None if it never earned nor redeemed."""
    return LoyaltyRepository(session).member_of(customer.id)


def available_points(session: Session, customer: Customer, now: datetime | None = None) -> int:
    """Points the customer can spend at ``now`` (shared by the coalition's shops): points
    past their expiry are not counted, even before the expiry job books them (without
    ``now``: the available balance as booked)."""
    member = member_of(session, customer)
    if member is None:
        return 0
    available = points.balance(session, member, "available")
    if now is None:
        return available
    return available - _expired_unbooked(session, member, available, now)


def _expired_unbooked(session: Session, member: Member, available: int, now: datetime) -> int:
    """Available points already expired at ``now`` that the expiry job has yet to book."""
    return domain.expired_as_of(
        LoyaltyRepository(session).expiring(member.id, now),
        available,
        _inactive_since(session, member, now),
        now,
    )


def _inactive_since(session: Session, member: Member, now: datetime) -> datetime | None:
    """When the member's available points expire for inactivity (None: they do not)."""
    months = members.scale_at(session, member.programme_id, now).settings.inactivity_months
    last = member.last_activity_at
    return domain.add_months(last, months) if months and last is not None else None


def burn_points(
    session: Session,
    *,
    customer: Customer,
    points: int,
    source_key: str,
    now: datetime,
    merchant_id: int,
) -> None:
    """Debit available points (e.g. paying at checkout), once per ``source_key``.
    Raises ``InsufficientPoints`` (409, with ``balance``) when the balance is short."""
    rewards.burn(
        session,
        customer=customer,
        amount=points,
        source_key=source_key,
        now=now,
        merchant_id=merchant_id,
    )


def refund_burn(session: Session, *, source_key: str, now: datetime) -> None:
    """Give back the points burned for ``source_key`` to their original lots (idempotent)."""
    rewards.refund_burn(session, source_key=source_key, now=now)


def award_points(
    session: Session,
    *,
    customer: Customer,
    points: int,
    reason: str,
    key: str,
    now: datetime,
) -> None:
    """Credit ``points``, available at once, for something another domain rewards (a
    referral), as an audited adjustment in the event log: once per ``key``, and a replay of
    the log gives them again."""
    caller = Caller(customer.merchant_id, customer.programme_id, None, frozenset({"admin"}))
    rewards.adjust(session, caller, customer, points, reason, key, now)


def point_value(session: Session, programme_id: int) -> tuple[int, str]:
    """Money value of 100 points: (minor units, currency)."""
    s = members.scale_at(session, programme_id).settings
    return s.point_value, s.currency


def customer_tier(session: Session, customer: Customer, now: datetime) -> TierView | None:
    scale = members.scale_at(session, customer.programme_id, now)
    member = member_of(session, customer)
    if not scale.tiers.levels:
        return None
    rank = member.tier_rank if member else 0
    t = scale.tiers.levels[min(rank, len(scale.tiers.levels) - 1)]
    return TierView(t.name, rank, t.multiplier_bp, t.free_shipping, t.exclusive_rewards)


def active_membership(session: Session, customer: Customer, now: datetime) -> MembershipView | None:
    member = member_of(session, customer)
    row = membership.active(session, member, now) if member else None
    plan = members.scale_at(session, customer.programme_id, now).plan(row.plan) if row else None
    if row is None or plan is None:
        return None
    return MembershipView(
        plan.code,
        plan.name,
        row.period_end,
        row.status,
        plan.multiplier_bp,
        plan.free_shipping,
        plan.exclusive_rewards,
    )


def _field(line: Any, name: str, default: Any = None) -> Any:
    return line.get(name, default) if isinstance(line, Mapping) else getattr(line, name, default)


def simulate_order_points(
    session: Session,
    caller: Caller,
    *,
    customer: Customer | None,
    lines: Sequence[Any],
    shipping: int,
    discounts: int,
    currency: str,
    now: datetime,
    tax: int = 0,
    channel: str | None = None,
) -> int:
    """What an order would earn now (no write). ``lines`` are mappings or objects with
    ``product_id``, ``category``, ``quantity``, ``unit_price`` (and optional ``type``)."""
    return simulate(
        session,
        caller,
        customer,
        _facts(lines, shipping, discounts, tax, currency, channel, now),
        now,
    )["points"]


def _facts(
    lines: Sequence[Any],
    shipping: int,
    discounts: int,
    tax: int,
    currency: str,
    channel: str | None,
    at: datetime,
) -> OrderFacts:
    kept = [ln for ln in lines if _field(ln, "type", "product") != "gift_card"]
    amounts = [int(_field(ln, "quantity")) * int(_field(ln, "unit_price")) for ln in kept]
    shares = line_discounts(amounts, min(discounts, sum(amounts)))
    return OrderFacts(
        currency=currency,
        lines=[
            Line(_field(ln, "product_id"), _field(ln, "category"), a - s)
            for ln, a, s in zip(kept, amounts, shares, strict=True)
        ],
        shipping=shipping,
        tax=tax,
        total=sum(amounts) - discounts + shipping + tax,
        channel=channel,
        placed_at=at,
    )


def simulate(
    session: Session, caller: Caller, customer: Customer | None, facts: OrderFacts, now: datetime
) -> dict[str, Any]:
    """Dry run of an order: total points and which rule gave what (budgets not applied)."""
    scale = members.scale_at(session, caller.programme_id, now)
    member = member_of(session, customer) if customer is not None else None
    if member is None:
        ctx = domain.Context(
            first_order=True, tier=scale.tiers.levels[0] if scale.tiers.levels else None
        )
    else:
        ctx = earning.context(
            session,
            member,
            scale,
            customer,
            facts.placed_at,
            first_order=not LoyaltyRepository(session).has_order_lot(member.id),
        )
    result = domain.order_points(scale, facts, ctx)
    return {"points": result.total, "rules": [{"rule": r, "points": p} for r, p in result.awards]}


def simulate_event(
    session: Session, caller: Caller, event_type: str, now: datetime
) -> dict[str, Any]:
    scale = members.scale_at(session, caller.programme_id, now)
    hits = [
        {"rule": r.id, "points": r.points}
        for r in scale.rules
        if r.type == "action" and r.event_type == event_type and r.live(now)
    ]
    return {"points": sum(h["points"] for h in hits), "rules": hits}


def summary(session: Session, customer: Customer, now: datetime) -> dict[str, Any]:
    """The customer's loyalty at a glance."""
    scale = members.scale_at(session, customer.programme_id, now)
    member = member_of(session, customer)
    if member is None:
        return {
            "available": 0,
            "pending": 0,
            "debt": 0,
            "lifetime_earned": 0,
            "lifetime_spent": 0,
            "tier": _tier(session, None, scale, now),
            "expired": 0,
            "expiring": domain.expiring_buckets([], now),
            "membership": None,
        }
    debt = -points.balance(session, member, "debt")
    booked = points.balance(session, member, "available")
    expired = _expired_unbooked(session, member, booked, now)
    available = booked - expired
    inactive = _inactive_since(session, member, now)
    view = active_membership(session, customer, now)
    return {
        "available": available - debt if scale.settings.clawback == "negative" else available,
        "pending": points.balance(session, member, "pending"),
        "debt": debt,
        "lifetime_earned": member.lifetime_earned,
        "lifetime_spent": member.lifetime_spent,
        "tier": _tier(session, member, scale, now),
        "expired": expired,
        "expiring": domain.expiring_buckets(
            [
                (p, at)
                for p, at in LoyaltyRepository(session).expiring(
                    member.id, now + timedelta(days=90)
                )
                if at > now and not (inactive is not None and inactive <= now)
            ],
            now,
        ),
        "membership": None
        if view is None
        else {
            "plan": view.plan,
            "name": view.name,
            "status": view.status,
            "period_end": view.period_end.isoformat(),
            "free_shipping": view.free_shipping,
            "multiplier_bp": view.multiplier_bp,
            "exclusive_rewards": view.exclusive_rewards,
        },
    }


def _tier(
    session: Session, member: Member | None, scale: Scale, now: datetime
) -> dict[str, Any] | None:
    levels = scale.tiers.levels
    if not levels:
        return None
    rank = min(member.tier_rank, len(levels) - 1) if member else 0
    t = levels[rank]
    out: dict[str, Any] = {
        "name": t.name,
        "rank": rank,
        "multiplier_bp": t.multiplier_bp,
        "free_shipping": t.free_shipping,
        "exclusive_rewards": t.exclusive_rewards,
        "next": None,
    }
    if rank + 1 < len(levels):
        nxt = levels[rank + 1]
        start = domain.tier_window_start(scale.tiers.window, now)
        metrics = LoyaltyRepository(session).window_metrics(member.id, start, now) if member else {}
        have = metrics.get(nxt.threshold.metric, 0)
        out["next"] = {
            "name": nxt.name,
            "metric": nxt.threshold.metric,
            "threshold": nxt.threshold.value,
            "progress": have,
            "remaining": max(nxt.threshold.value - have, 0),
        }
    return out


def statement(
    session: Session, customer: Customer, *, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """The member's movements (available, pending, debt), oldest first, with reasons."""
    member = member_of(session, customer)
    if member is None:
        return []
    ids = [member.available_account_id, member.pending_account_id, member.debt_account_id]
    rows = LoyaltyRepository(session).statement(
        [i for i in ids if i], after_id=after_id, limit=limit
    )
    return [
        {
            "id": e.id,
            "account": kind,
            "points": e.amount,
            "reason": p.reason,
            "source": p.source_key,
            "at": p.created_at,
            "meta": p.meta,
        }
        for e, p, kind in rows
    ]
