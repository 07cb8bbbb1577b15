"""Earning from the event log: orders (pending points, refunds, cancellations) and actions.

Each function takes the event and the time it was received, so the same call rebuilds the
same points in a replay."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.events.models import Event
from fidele.kit.cache import memo
from fidele.kit.clock import as_utc
from fidele.loyalty import domain, members, notify, points
from fidele.loyalty.config import Action, Scale
from fidele.loyalty.domain import Context, Line, OrderFacts
from fidele.loyalty.models import Lot, Member, Refusal
from fidele.loyalty.repository import LoyaltyRepository
from fidele.orders.domain import line_discounts, tax_free_amounts
from fidele.orders.models import Order


def facts_of(payload: dict[str, Any]) -> OrderFacts:
    """An order as the shop sent it (``OrderIn`` JSON), lines net of their discount share and
    of the tax inside tax-inclusive prices; gift-card lines earn nothing."""
    lines = payload["lines"]
    amounts = [int(ln["quantity"]) * int(ln["unit_price"]) for ln in lines]
    shares = line_discounts(amounts, min(int(payload.get("discounts", 0)), sum(amounts)))
    net = tax_free_amounts(
        [a - s for a, s in zip(amounts, shares, strict=True)],
        [ln.get("tax") for ln in lines],
        tax=int(payload.get("tax", 0)),
        shipping=int(payload.get("shipping", 0)),
        prices_include_tax=bool(payload.get("prices_include_tax", False)),
    )
    return OrderFacts(
        currency=payload["currency"],
        lines=[
            Line(ln.get("product_id"), ln.get("category"), amount)
            for ln, amount in zip(lines, net, strict=True)
            if ln.get("type", "product") != "gift_card"
        ],
        shipping=int(payload.get("shipping", 0)),
        tax=int(payload.get("tax", 0)),
        total=int(payload["total"]),
        channel=payload.get("channel"),
        placed_at=as_utc(datetime.fromisoformat(payload["placed_at"])),
    )


def context(
    session: Session,
    member: Member,
    scale: Scale,
    customer: Customer | None,
    at: datetime,
    *,
    first_order: bool,
) -> Context:
    from fidele.loyalty import membership

    bday = customer.birthday if customer is not None else None
    plan = membership.active_plan(session, member, scale, at)
    return Context(
        first_order=first_order,
        tier=members.tier_of(scale, member),
        plan_multiplier_bp=plan.multiplier_bp if plan else 10_000,
        birthday_month=bday is not None and bday.month == at.month,
    )


def on_order_placed(session: Session, event: Event, now: datetime) -> Lot | None:
    """Points of an order when placed: pending until the return window closes. An unpaid
    order earns on its payment instead, unless the programme earns on placement."""
    if event.order_id is None or event.customer_id is None:
        return None
    scale = members.scale_at(session, event.programme_id, now)
    payment = str(event.payload.get("payment_status", "paid"))
    if not domain.earns_at_placement(scale.settings.earn_on, payment):
        return None
    return _earn(session, event, event.payload, scale, None, now)


def on_order_paid(session: Session, event: Event, now: datetime) -> Lot | None:
    """The payment of an order placed unpaid: it earns now (the same rules as at placement,
    pending from the payment), unless it earned at placement already."""
    from fidele.orders import service as orders

    order = session.get(Order, event.order_id) if event.order_id is not None else None
    if order is None or event.customer_id is None or order.status == "cancelled":
        return None
    scale = members.scale_at(session, event.programme_id, now)
    return _earn(session, event, orders.placed_body(order), scale, event.occurred_at, now)


def _earn(
    session: Session,
    event: Event,
    payload: dict[str, Any],
    scale: Scale,
    paid_at: datetime | None,
    now: datetime,
) -> Lot | None:
    assert event.order_id is not None and event.customer_id is not None
    customer = session.get(Customer, event.customer_id)
    assert customer is not None
    member = members.member_for(session, customer, now)
    members.catch_up(session, member, now, event.merchant_id)
    facts = facts_of(payload)
    source = f"order:{event.order_id}"
    existing, first_order = LoyaltyRepository(session).lot_and_first_order(
        event.programme_id, source, member.id
    )
    if existing is not None:  # this order has earned already: nothing is counted twice
        return existing
    ctx = context(session, member, scale, customer, facts.placed_at, first_order=first_order)
    awards = budgeted(
        session,
        member,
        scale,
        domain.order_points(scale, facts, ctx).awards,
        source,
        facts.placed_at,
        now,
    )
    lot = points.earn(
        session,
        member,
        merchant_id=event.merchant_id,
        source_key=source,
        reason="order",
        points=max(sum(p for _, p in awards), 0),
        earned_at=facts.placed_at,
        # the return window runs from the payment when the order earned on it
        available_at=max(facts.placed_at, paid_at or facts.placed_at)
        + timedelta(days=scale.settings.pending_days),
        expires_at=_expiry(scale, facts.placed_at),
        now=now,
        order_id=event.order_id,
        order_amount=facts.total,
        detail=[{"rule": r, "points": p} for r, p in awards],
        absent=True,
    )
    _touch(member, facts.placed_at, now)
    members.upgrade(session, member, scale, now, event.merchant_id)
    _announce(session, member, event.merchant_id, lot, now)
    memo(session, ORDER_LOTS)[event.order_id] = lot
    return lot


ORDER_LOTS = "loyalty_order_lots"  # order id -> its lot, for the response of the same request


def _expiry(scale: Scale, at: datetime) -> datetime | None:
    months = scale.settings.expiry_months
    return domain.add_months(at, months) if months else None


def _touch(member: Member, first_order_at: datetime | None, now: datetime) -> None:
    if first_order_at is not None and (
        member.first_order_at is None or first_order_at < member.first_order_at
    ):
        member.first_order_at = first_order_at
    member.last_activity_at = now


def _announce(session: Session, member: Member, merchant_id: int, lot: Lot, now: datetime) -> None:
    if lot.points:
        notify.emit(
            session,
            member,
            merchant_id=merchant_id,
            topic="loyalty.points_earned",
            dedup=lot.source_key,
            now=now,
            payload={"points": lot.points, "status": lot.status, "reason": lot.reason},
        )


def budgeted(
    session: Session,
    member: Member,
    scale: Scale,
    awards: list[tuple[str, int]],
    source_key: str,
    at: datetime,
    now: datetime,
) -> list[tuple[str, int]]:
    """Drop the awards whose rule's budget is spent, recording each refusal."""
    kept = []
    for rule_id, pts in awards:
        rule = scale.rule(rule_id)
        budget = rule.budget if rule is not None else None
        if pts <= 0 or budget is None or _take_budget(session, member, rule_id, budget, pts, at):
            kept.append((rule_id, pts))
        else:
            _refuse(session, member, rule_id, source_key, pts, "budget spent", now)
    return kept


def _take_budget(
    session: Session, member: Member, rule_id: str, budget: Any, pts: int, at: datetime
) -> bool:
    period = domain.period_key(budget.period, at)
    keys = [
        (f"budget:{rule_id}:{period}:m{member.id}", budget.per_member),
        (f"budget:{rule_id}:{period}:all", budget.total),
    ]
    return _bump_all(session, member.programme_id, [(k, pts, cap) for k, cap in keys])


def _bump_all(
    session: Session, programme_id: int, bumps: list[tuple[str, int, int | None]]
) -> bool:
    """All counters or none: a refused one undoes those already taken."""
    repo = LoyaltyRepository(session)
    done: list[tuple[str, int]] = []
    for key, amount, cap in bumps:
        if not repo.bump(programme_id, key, amount, cap):
            for k, a in done:
                repo.bump(programme_id, k, -a, None)
            return False
        done.append((key, amount))
    return True


def _refuse(
    session: Session,
    member: Member,
    rule_id: str,
    source_key: str,
    pts: int,
    reason: str,
    now: datetime,
) -> None:
    session.add(
        Refusal(
            programme_id=member.programme_id,
            member_id=member.id,
            rule_id=rule_id,
            source_key=source_key,
            points=pts,
            reason=reason,
            created_at=now,
        )
    )


def on_order_delivered(session: Session, event: Event, now: datetime) -> None:
    """Delivery restarts the return window from the delivery date."""
    lot, member = _order_lot(session, event, now)
    if lot is None or member is None or lot.status != "pending":
        return
    scale = members.scale_at(session, event.programme_id, now)
    lot.available_at = event.occurred_at + timedelta(days=scale.settings.pending_days)


def on_order_refunded(session: Session, event: Event, now: datetime) -> None:
    """Claw back in proportion to the cumulative refunded amount, from the order's lot as it
    is now (:func:`points.clawback`)."""
    lot, member = _order_lot(session, event, now)
    if lot is None or member is None:
        return
    refunded = int(event.payload.get("refunded_total", 0))
    target = domain.refund_clawback(lot.points, lot.order_amount, refunded)
    lot.refunded_amount = refunded
    points.clawback(
        session,
        member,
        lot,
        points=target - lot.clawed,
        source_key=f"refund:{event.id}",
        now=now,
        forgive_spent=_forgives(session, event, now),
    )


def on_order_cancelled(session: Session, event: Event, now: datetime) -> None:
    """A cancelled order never earns: everything is taken back."""
    lot, member = _order_lot(session, event, now)
    if lot is None or member is None:
        return
    lot.refunded_amount = lot.order_amount
    points.clawback(
        session,
        member,
        lot,
        points=lot.points - lot.clawed,
        source_key=f"cancel:{event.id}",
        now=now,
        forgive_spent=_forgives(session, event, now),
    )


def _forgives(session: Session, event: Event, now: datetime) -> bool:
    return members.scale_at(session, event.programme_id, now).settings.clawback == "forgive"


def _order_lot(session: Session, event: Event, now: datetime) -> tuple[Lot | None, Member | None]:
    if event.order_id is None:
        return None, None
    repo = LoyaltyRepository(session)
    lot = repo.order_lot(event.order_id)
    if lot is None:
        return None, None
    member = session.get(Member, lot.member_id)
    assert member is not None
    members.catch_up(session, member, now, event.merchant_id)
    session.refresh(lot)
    return lot, member


def on_action(session: Session, event: Event, now: datetime) -> list[Lot]:
    """Points for an action of the log, within each rule's caps and budget."""
    scale = members.scale_at(session, event.programme_id, now)
    rules = [
        r
        for r in scale.rules
        if isinstance(r, Action) and r.event_type == event.type and r.live(now)
    ]
    if not rules or event.customer_id is None:
        return []
    customer = session.get(Customer, event.customer_id)
    assert customer is not None
    member = members.member_for(session, customer, now)
    members.catch_up(session, member, now, event.merchant_id)
    lots = [
        lot
        for rule in rules
        if (lot := _action(session, member, scale, rule, event, now)) is not None
    ]
    _touch(member, None, now)
    return lots


def _action(
    session: Session, member: Member, scale: Scale, rule: Action, event: Event, now: datetime
) -> Lot | None:
    source = f"event:{event.id}:{rule.id}"
    caps = [
        (f"cap:{rule.id}:{domain.period_key('day', now)}:m{member.id}", 1, rule.per_day),
        (f"cap:{rule.id}:{domain.period_key('month', now)}:m{member.id}", 1, rule.per_month),
        (f"cap:{rule.id}:all:m{member.id}", 1, rule.lifetime),
    ]
    if not _bump_all(session, member.programme_id, [c for c in caps if c[2] is not None]):
        _refuse(session, member, rule.id, source, rule.points, "cap reached", now)
        return None
    if not budgeted(session, member, scale, [(rule.id, rule.points)], source, now, now):
        return None
    lot = points.earn(
        session,
        member,
        merchant_id=event.merchant_id,
        source_key=source,
        reason=rule.id,
        points=rule.points,
        earned_at=now,
        available_at=now,
        expires_at=_expiry(scale, now),
        now=now,
    )
    _announce(session, member, event.merchant_id, lot, now)
    return lot
