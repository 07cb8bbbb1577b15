"""The personalisation context of a message, built when it is rendered (at delivery, and for a
preview). Names every template may use:

- ``customer``: ``id`` (the shop's id), ``first_name``, ``last_name``, ``email``, ``locale``,
  ``timezone``, ``country``, ``birthday``
- ``loyalty``: ``available`` (points), ``pending``, ``tier`` and ``next_tier`` (names or None),
  ``points_to_next`` (what the next tier still needs, in its metric), ``expiring_points`` and
  ``expiring_on`` (the next expiry date and how many points lapse then)
- ``orders``: the last 5 orders, newest first: ``id``, ``placed_at``, ``total``, ``currency``,
  ``lines`` (``product_id``, ``name``, ``category``, ``quantity``, ``unit_price``), and
  ``categories`` (distinct, in order)
- ``shop``: ``name``
- ``insights``: the latest analytics (segment, next expected order...), see ``insights_part``
- ``links``: ``unsubscribe`` (one-click, this topic) and ``preferences`` (the page)
- ``message``: ``id`` (ledger row), ``topic``, ``key``
- ``now``: the render time (aware UTC)
- the caller's ``context`` mapping (``send(context=...)``), each key at the top level, e.g.
  ``coupon_code``: a coupon issued for this very message is passed by the caller, which issues
  it idempotently under the message's key.

A part is computed only when the template names it. Other domains add names with
:func:`provider` (e.g. recommendations), read at send time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from fidele.customers.models import Customer
from fidele.messaging import templates
from fidele.orders.models import Order
from fidele.tenancy.models import Merchant

Provider = Callable[[Session, Customer, datetime], Any]
providers: dict[str, Provider] = {}
LAST_ORDERS = 5


def provider(name: str) -> Callable[[Provider], Provider]:
    """Register a context name computed per customer at render time (``name`` becomes known
    to strict templates)."""

    def register(fn: Provider) -> Provider:
        providers[name] = fn
        templates.CONTEXT_NAMES.add(name)
        return fn

    return register


def customer_part(c: Customer) -> dict[str, Any]:
    return {
        "id": c.external_id,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "email": c.email,
        "locale": c.locale,
        "timezone": c.timezone,
        "country": c.country,
        "birthday": c.birthday.isoformat() if c.birthday else None,
    }


def loyalty_part(session: Session, customer: Customer, now: datetime) -> dict[str, Any]:
    from fidele.loyalty import service as loyalty
    from fidele.loyalty.repository import LoyaltyRepository

    summary = loyalty.summary(session, customer, now)
    tier = summary.get("tier") or {}
    nxt = tier.get("next") or {}
    expiring_on, expiring_points = None, 0
    member = loyalty.member_of(session, customer)
    if member is not None:
        lots = sorted(
            (at, p)
            for p, at in LoyaltyRepository(session).expiring(member.id, now + timedelta(days=90))
            if at > now
        )
        if lots:
            expiring_on = lots[0][0].date().isoformat()
            expiring_points = sum(p for at, p in lots if at.date() == lots[0][0].date())
    return {
        "available": summary["available"],
        "pending": summary["pending"],
        "tier": tier.get("name"),
        "next_tier": nxt.get("name"),
        "points_to_next": nxt.get("remaining"),
        "expiring_points": expiring_points,
        "expiring_on": expiring_on,
    }


def orders_part(session: Session, customer: Customer) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Order)
        .where(Order.merchant_id == customer.merchant_id, Order.customer_id == customer.id)
        .order_by(Order.placed_at.desc(), Order.id.desc())
        .limit(LAST_ORDERS)
        .options(selectinload(Order.lines))
    ).scalars()
    out = []
    for o in rows:
        lines = [
            {
                "product_id": ln.product_id,
                "name": ln.name,
                "category": ln.category,
                "quantity": ln.quantity,
                "unit_price": ln.unit_price,
            }
            for ln in sorted(o.lines, key=lambda ln: ln.line_no)
        ]
        out.append(
            {
                "id": o.external_id,
                "placed_at": o.placed_at.isoformat(),
                "total": o.total,
                "currency": o.currency,
                "lines": lines,
                "categories": list(dict.fromkeys(ln["category"] for ln in lines if ln["category"])),
            }
        )
    return out


def build(
    session: Session,
    customer: Customer,
    *,
    uses: frozenset[str],
    links: Mapping[str, str],
    message: Mapping[str, Any],
    extra: Mapping[str, Any] | None,
    now: datetime,
    shop_name: str | None = None,
) -> dict[str, Any]:
    """The context for ``customer``; only the parts ``uses`` names are computed."""
    ctx: dict[str, Any] = {
        "customer": customer_part(customer),
        "links": dict(links),
        "message": dict(message),
        "now": now,
    }
    if "shop" in uses:
        name = shop_name or session.get(Merchant, customer.merchant_id).name  # type: ignore[union-attr]
        ctx["shop"] = {"name": name}
    if "loyalty" in uses:
        ctx["loyalty"] = loyalty_part(session, customer, now)
    if "orders" in uses:
        ctx["orders"] = orders_part(session, customer)
    for name, fn in providers.items():
        if name in uses:
            ctx[name] = fn(session, customer, now)
    for key, value in (extra or {}).items():
        ctx.setdefault(key, value)
    return ctx


@provider("insights")
def insights_part(session: Session, customer: Customer, now: datetime) -> dict[str, Any] | None:
    """The customer's latest analytics (``fidele analytics`` computes them): ``segment``,
    ``next_expected_order`` (ISO date), ``expected_gap_days``, ``p_alive``,
    ``engagement_status``; None before the first computation."""
    from fidele.analytics.models import CustomerInsight

    row = session.get(CustomerInsight, customer.id)
    if row is None:
        return None
    return {
        "segment": row.segment,
        "next_expected_order": row.next_expected_order.isoformat()
        if row.next_expected_order
        else None,
        "expected_gap_days": row.expected_gap_days,
        "p_alive": row.p_alive,
        "engagement_status": row.engagement_status,
    }
