"""Coupons, batches of single-use codes, automatic promotions and the merchant's settings."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.errors import InvalidInput, NotFound, StateConflict
from fidele.kit import codes
from fidele.promotions import domain
from fidele.promotions.config import PromotionConfig
from fidele.promotions.loyalty_port import LoyaltyPort, NoLoyalty, default_loyalty
from fidele.promotions.models import Coupon, PromotionSettings
from fidele.promotions.repository import CouponRepository, SettingsRepository, insert_or_twin
from fidele.promotions.schemas import BatchIn, CouponIn, PromotionIn
from fidele.tenancy.service import Caller

_OFFER_FIELDS = ("name", "kind", "value", "cap", "product_id", "priority", "exclusive")


def config(session: Session, merchant_id: int) -> PromotionConfig:
    row = SettingsRepository(session).get(merchant_id)
    return PromotionConfig.model_validate(row.data if row else {})


def set_config(
    session: Session,
    caller: Caller,
    data: PromotionConfig,
    now: datetime,
    *,
    loyalty: LoyaltyPort = default_loyalty,
) -> PromotionConfig:
    """Replace the merchant's settings; referral rewards in points need a loyalty programme
    (refused here rather than by the reward job, once referrals have converted)."""
    if data.referral.reward_kind == "points" and not loyalty.installed:
        raise NoLoyalty(
            "this shop has no loyalty programme: referral rewards cannot be points",
            field="referral.reward_kind",
        )
    repo = SettingsRepository(session)
    row = repo.get(caller.merchant_id)
    payload = data.model_dump(mode="json")
    if row is None:
        repo.add(PromotionSettings(merchant_id=caller.merchant_id, data=payload, updated_at=now))
    else:
        row.data, row.updated_at = payload, now
    return data


def _base(caller: Caller, data: CouponIn | BatchIn | PromotionIn, now: datetime) -> Coupon:
    return Coupon(
        programme_id=caller.programme_id,
        merchant_id=caller.merchant_id,
        **{f: getattr(data, f) for f in _OFFER_FIELDS},
        conditions=data.conditions.model_dump(exclude_defaults=True),
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        used_count=0,
        status="active",
        created_at=now,
    )


def merchant_code(raw: str) -> tuple[str, str]:
    """``(normalised, display)`` of a merchant-chosen code such as SUMMER10. Codes shaped like
    generated ones are refused, so the check-symbol rule never meets a merchant code."""
    norm = codes.normalise(raw)
    if len(norm) < 3 or any(c not in codes.ALPHABET for c in norm):
        raise InvalidInput("a code is 3 to 40 letters and digits", field="code")
    if domain.looks_generated(norm):
        raise InvalidInput("this code is shaped like a generated one; choose another", field="code")
    return norm, raw.strip().upper()


def create(session: Session, caller: Caller, data: CouponIn, now: datetime) -> Coupon:
    """Create a coupon; a generated code (with a check symbol) when none is given."""
    coupon = _base(caller, data, now)
    coupon.usage_limit, coupon.per_customer_limit = data.usage_limit, data.per_customer_limit
    if data.code is None:
        display = codes.generate("C")
        coupon.code, coupon.display_code = codes.normalise(display), display
    else:
        coupon.code, coupon.display_code = merchant_code(data.code)
    if not insert_or_twin(session, coupon):
        raise StateConflict(f"code {coupon.display_code!r} already exists", field="code")
    return coupon


def create_batch(session: Session, caller: Caller, data: BatchIn, now: datetime) -> list[Coupon]:
    """``count`` coupons with unique generated codes sharing one batch id."""
    batch = secrets.token_hex(8)
    made = []
    for _ in range(data.count):
        coupon = _base(caller, data, now)
        display = codes.generate("C")
        coupon.code, coupon.display_code = codes.normalise(display), display
        coupon.usage_limit, coupon.per_customer_limit = data.usage_limit, data.per_customer_limit
        coupon.batch, coupon.origin = batch, "batch"
        made.append(coupon)
    session.add_all(made)
    session.flush()
    return made


def create_promotion(session: Session, caller: Caller, data: PromotionIn, now: datetime) -> Coupon:
    coupon = _base(caller, data, now)
    coupon.automatic, coupon.origin = True, "automatic"
    coupon.rule, coupon.buy, coupon.get = data.rule, data.buy, data.get
    return CouponRepository(session).add(coupon)


def get(session: Session, caller: Caller, coupon_id: int) -> Coupon:
    coupon = CouponRepository(session).get(coupon_id)
    if coupon is None or coupon.merchant_id != caller.merchant_id:
        raise NotFound(f"coupon {coupon_id} not found")
    return coupon


def disable(session: Session, caller: Caller, coupon_id: int) -> Coupon:
    coupon = get(session, caller, coupon_id)
    coupon.status = "disabled"
    return coupon


def listing(session: Session, caller: Caller, *, after_id: int, limit: int) -> Sequence[Coupon]:
    return CouponRepository(session).listing(caller.merchant_id, after_id=after_id, limit=limit)


def refusal(
    coupon: Coupon, now: datetime, customer_id: int | None, used_by_customer: int
) -> str | None:
    """Why ``coupon`` cannot be used now by this customer (before looking at the cart)."""
    checks = (
        ("disabled", coupon.status == "active"),
        ("not_started", coupon.starts_at is None or coupon.starts_at <= now),
        ("expired", coupon.ends_at is None or now < coupon.ends_at),
        ("expired", coupon.schedule is None or value_now(coupon, now) is not None),
        (
            "usage_limit_reached",
            coupon.usage_limit is None or coupon.used_count < coupon.usage_limit,
        ),
        ("not_your_code", coupon.customer_id is None or coupon.customer_id == customer_id),
        (
            "customer_limit_reached",
            coupon.per_customer_limit is None or used_by_customer < coupon.per_customer_limit,
        ),
    )
    return next((reason for reason, ok in checks if not ok), None)


def value_now(coupon: Coupon, now: datetime) -> int | None:
    """A coupon's value at ``now``: fixed, or decided by its schedule (next-order coupons)."""
    if coupon.schedule is None:
        return coupon.value
    issued = coupon.starts_at or coupon.created_at
    return domain.scheduled_value([(int(d), int(v)) for d, v in coupon.schedule], issued, now)


def to_offer(coupon: Coupon, now: datetime, *, source: str = "coupon") -> domain.Offer:
    return domain.Offer(
        ref=f"coupon:{coupon.id}",
        source=source,
        kind=coupon.kind,
        code=coupon.display_code,
        value=value_now(coupon, now) or 0,
        cap=coupon.cap,
        product_id=coupon.product_id,
        rule=coupon.rule,
        buy=coupon.buy,
        get=coupon.get,
        priority=coupon.priority,
        exclusive=coupon.exclusive,
        automatic=coupon.automatic,
        conditions=domain.Conditions.model_validate(coupon.conditions or {}),
    )


def issue_personal(
    session: Session,
    *,
    programme_id: int,
    merchant_id: int,
    customer_id: int,
    source_ref: str,
    now: datetime,
    **fields: Any,
) -> Coupon:
    """A single-use coupon for one customer, issued once per ``source_ref`` (handlers, jobs)."""
    repo = CouponRepository(session)
    found = repo.by_source_ref(merchant_id, source_ref)
    if found is not None:
        return found
    display = codes.generate("C")
    coupon = Coupon(
        programme_id=programme_id,
        merchant_id=merchant_id,
        code=codes.normalise(display),
        display_code=display,
        customer_id=customer_id,
        usage_limit=1,
        used_count=0,
        source_ref=source_ref,
        status="active",
        created_at=now,
        conditions={},
        **fields,
    )
    if not insert_or_twin(session, coupon):
        twin = repo.by_source_ref(merchant_id, source_ref)
        assert twin is not None
        return twin
    return coupon
