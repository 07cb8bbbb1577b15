"""Coupon usages held by open checkout sessions.

Evaluate holds one use of every applied coupon that has a usage limit or a per-customer limit
(``coupons.held_count`` by an atomic conditional UPDATE, plus a ``coupon_holds`` row), so two
open carts are never both told that the last use of a code is theirs: the second is refused with
``held_by_another_checkout`` (or ``usage_limit_reached`` / ``customer_limit_reached`` once the
uses are really gone) and is priced without it; a newer cart of the same shopper takes over
the hold of their own older open cart (checkouts evaluate again as the cart changes). Confirm
turns the hold into a use in one UPDATE; cancel and expiry release it. Coupons without limits
are never held (no extra statement).

Arithmetic: a refused coupon is removed and the cart priced again, until every applied limited
coupon is held (each round removes at least one offer, so it ends)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.promotions import domain
from fidele.promotions.models import CheckoutSession, Coupon, CouponHold
from fidele.promotions.repository import CouponRepository

HELD = "held_by_another_checkout"


def hold_applied(
    session: Session,
    row: CheckoutSession,
    lines: Sequence[domain.CartLine],
    shipping: int,
    offers: list[domain.Offer],
    priced: domain.Priced,
    typed: dict[int, Coupon],
    used_by_customer: dict[int, int],
    now: datetime,
) -> tuple[domain.Priced, list[dict[str, Any]]]:
    """Hold the applied limited coupons of ``priced`` (``typed``: the coupons read with the
    typed codes); returns the final pricing and the coupons refused because their last uses
    are held or gone."""
    held: set[str] = set()
    rejected: list[dict[str, Any]] = []
    while True:
        failed = []
        for applied in priced.applied:
            offer = applied.offer
            if offer.source != "coupon" or offer.ref in held:
                continue
            coupon = typed.get(int(offer.ref.split(":")[1]))  # no lookup: read with the codes
            if coupon is None or (coupon.usage_limit is None and coupon.per_customer_limit is None):
                continue
            reason = _hold(session, row, coupon, used_by_customer.get(coupon.id, 0), now)
            if reason is None:
                held.add(offer.ref)
            else:
                failed.append((offer, reason))
        if not failed:
            return priced, rejected
        gone = {o.ref for o, _ in failed}
        offers = [o for o in offers if o.ref not in gone]
        rejected += [
            {"code": o.code, "reason": r, "detail": _detail(r)} for o, r in failed if o.code
        ]
        priced = domain.price(lines, shipping, offers)


def _detail(reason: str) -> str:
    if reason == HELD:
        return "its last use is held by another open checkout; try again later"
    return reason


def _hold(
    session: Session, row: CheckoutSession, coupon: Coupon, used: int, now: datetime
) -> str | None:
    repo = CouponRepository(session)
    if not repo.hold_use(coupon.id):  # also row-locks the coupon (PostgreSQL)
        if _take_over(session, repo, coupon, row):
            return None
        session.refresh(coupon, ["used_count"])
        gone = coupon.usage_limit is not None and coupon.used_count >= coupon.usage_limit
        return "usage_limit_reached" if gone else HELD
    limit, customer = coupon.per_customer_limit, row.customer_id
    if limit is not None and customer is not None:
        if used >= limit:
            repo.unhold(coupon.id, used=False)
            return "customer_limit_reached"
        if used + repo.customer_holds(coupon.id, customer) >= limit:
            repo.unhold(coupon.id, used=False)  # the customer's own older cart holds it
            return None if _take_over(session, repo, coupon, row) else HELD
    session.add(
        CouponHold(session_id=row.id, coupon_id=coupon.id, customer_id=customer, created_at=now)
    )
    session.flush()
    return None


def _take_over(
    session: Session, repo: CouponRepository, coupon: Coupon, row: CheckoutSession
) -> bool:
    """The shopper's newer cart takes the hold of their own older open cart (a checkout
    evaluates again as the cart changes); the older one, if confirmed, then needs a free use."""
    own = repo.own_hold(coupon.id, row)
    if own is None:
        return False
    own.session_id = row.id
    session.flush()
    return True


def end(session: Session, row: CheckoutSession, *, used: bool) -> set[int]:
    """End the session's holds: uses (confirm) or released (cancel, expiry); returns the
    coupon ids that were held."""
    repo = CouponRepository(session)
    ended = set()
    for hold in repo.holds_of(row.id):
        repo.unhold(hold.coupon_id, used=used)
        ended.add(hold.coupon_id)
        session.delete(hold)
    return ended
