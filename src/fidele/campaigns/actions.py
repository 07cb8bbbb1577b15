"""The ``reward`` and ``update`` steps, through the promotions, loyalty and messaging services.
Each is idempotent per enrollment and step (``flow:{enrollment}:{step}``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fidele.campaigns.domain import FlowDefinition, NextOrderCoupon, Step
from fidele.campaigns.models import Enrollment
from fidele.customers.models import Customer
from fidele.errors import FideleError

Log = Callable[..., None]


def _key(enr: Enrollment) -> str:
    return f"flow:{enr.id}:{enr.step}"


def reward(
    session: Session,
    enr: Enrollment,
    definition: FlowDefinition,
    step: Step,
    now: datetime,
    log: Log,
) -> None:
    assert step.reward is not None
    customer = session.get(Customer, enr.customer_id)
    assert customer is not None
    spec = step.reward
    if spec.points is not None:
        from fidele.loyalty import service as loyalty

        try:
            loyalty.award_points(
                session,
                customer=customer,
                points=spec.points,
                reason=spec.reason,
                key=_key(enr),
                now=now,
            )
        except FideleError as exc:  # no loyalty programme, a customer who left it...
            log(session, enr, now, "reward", "skipped", exc.detail)
            return
        enr.context = {**enr.context, "points": spec.points}
        log(session, enr, now, "reward", "rewarded", f"{spec.points} points")
        return
    if spec.coupon is not None:
        _coupon(session, enr, customer, definition, spec.coupon, now, log)
        return
    assert spec.next_order_coupon is not None
    _next_order(session, enr, customer, spec.next_order_coupon, now, log)


def _coupon(
    session: Session,
    enr: Enrollment,
    customer: Customer,
    definition: FlowDefinition,
    spec: Any,
    now: datetime,
    log: Log,
) -> None:
    from fidele.promotions import coupons

    fields: dict[str, Any] = {"conditions": {}}
    if spec.min_subtotal:
        fields["conditions"] = {"min_subtotal": spec.min_subtotal}
    coupon = coupons.issue_personal(
        session,
        programme_id=customer.programme_id,
        merchant_id=customer.merchant_id,
        customer_id=customer.id,
        source_ref=_key(enr)[:100],
        now=now,
        kind=spec.kind,
        value=spec.value,
        starts_at=now,
        ends_at=now + timedelta(days=spec.days),
        name=definition.name[:200],
        origin="flow",
    )
    _remember(enr, coupon, spec.kind, spec.value)
    log(session, enr, now, "reward", "rewarded", f"coupon {coupon.display_code}")


def _next_order(
    session: Session,
    enr: Enrollment,
    customer: Customer,
    spec: NextOrderCoupon,
    now: datetime,
    log: Log,
) -> None:
    """The next-order coupon promotions issued for the trigger's order, else one of the
    flow's own ladder; remembers when its value next drops (``before_coupon_drop``)."""
    from fidele.promotions import coupons, rewards

    order_id = enr.context.get("order_id")
    coupon = rewards.next_order_coupon(session, enr.merchant_id, order_id) if order_id else None
    if coupon is None:
        coupon = coupons.issue_personal(
            session,
            programme_id=customer.programme_id,
            merchant_id=customer.merchant_id,
            customer_id=customer.id,
            source_ref=_key(enr)[:100],
            now=now,
            kind="percent_off",
            value=0,
            schedule=[list(s) for s in spec.schedule],
            starts_at=now,
            ends_at=now + timedelta(days=max(d for d, _ in spec.schedule)),
            name="next order",
            origin="next_order",
        )
    ladder = sorted((int(d), int(bp)) for d, bp in coupon.schedule or spec.schedule)
    start = coupon.starts_at or now
    drops = next(
        (start + timedelta(days=d) for d, _ in ladder if start + timedelta(days=d) > now), None
    )
    value = next((bp for d, bp in ladder if start + timedelta(days=d) > now), ladder[-1][1])
    _remember(enr, coupon, "percent_off", value)
    if drops is not None:
        enr.context = {**enr.context, "coupon_drops_at": drops.isoformat()}
    log(session, enr, now, "reward", "rewarded", f"next-order coupon {coupon.display_code}")


def _remember(enr: Enrollment, coupon: Any, kind: str, value: int) -> None:
    enr.context = {
        **enr.context,
        "coupon_code": coupon.display_code,
        "coupon_kind": kind,
        "coupon_value": value,
        "coupon_ends_at": coupon.ends_at.isoformat() if coupon.ends_at else None,
    }


def update(
    session: Session,
    enr: Enrollment,
    definition: FlowDefinition,
    step: Step,
    now: datetime,
    log: Log,
) -> None:
    assert step.update is not None
    spec = step.update
    customer = session.get(Customer, enr.customer_id)
    assert customer is not None
    done = []
    if spec.attributes or spec.tag:
        attrs = dict(customer.attributes or {})
        attrs.update(spec.attributes or {})
        if spec.tag:
            tags = list(attrs.get("tags") or [])
            attrs["tags"] = tags if spec.tag in tags else [*tags, spec.tag]
            done.append(f"tag {spec.tag}")
        if spec.attributes:
            done.append("attributes " + ", ".join(sorted(spec.attributes)))
        customer.attributes = attrs
        customer.updated_at = now
    if spec.consent is not None:
        from fidele.messaging import service as messaging

        c = spec.consent
        messaging.set_consent(
            session,
            merchant_id=enr.merchant_id,
            customer_id=enr.customer_id,
            topic=c.topic,
            channel=c.channel,
            granted=c.granted,
            source=f"flow:{definition.name}"[:100],
            now=now,
        )
        done.append(f"consent {c.topic}.{c.channel} {'granted' if c.granted else 'withdrawn'}")
    log(session, enr, now, "update", "updated", "; ".join(done))
