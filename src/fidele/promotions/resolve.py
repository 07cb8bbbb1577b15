"""From typed codes and the customer's situation to candidate offers, with refusal reasons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.promotions import coupons, domain, ratelimit
from fidele.promotions.config import PromotionConfig
from fidele.promotions.loyalty_port import LoyaltyPort
from fidele.promotions.models import Coupon
from fidele.promotions.repository import CouponRepository, OrderFacts, ReferralRepository
from fidele.tenancy.service import Caller

VOUCHER_KINDS = ("amount_off", "percent_off", "free_shipping", "free_product")
VOUCHER_STATUS = {"used": "usage_limit_reached", "expired": "expired"}


@dataclass
class Cart:
    caller: Caller
    customer: Customer | None
    lines: list[domain.CartLine]
    shopper: domain.Shopper
    now: datetime
    cfg: PromotionConfig
    loyalty: LoyaltyPort
    customer_ref: str = ""  # the shop's customer id as typed (rate limits count per customer)


@dataclass
class Resolved:
    offers: list[domain.Offer] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    failed_lookups: int = 0
    customer_uses: dict[int, int] = field(default_factory=dict)  # coupon id -> uses by the customer
    coupons: dict[int, Coupon] = field(default_factory=dict)  # the typed coupons found, by id

    def reject(self, code: str, reason: str, detail: str | None = None) -> None:
        self.rejected.append({"code": code, "reason": reason, "detail": detail or reason})


def shopper(
    session: Session,
    customer: Customer | None,
    currency: str,
    channel: str | None,
    now: datetime,
    loyalty: LoyaltyPort,
) -> domain.Shopper:
    if customer is None:
        return domain.Shopper(currency=currency, channel=channel)
    tier = loyalty.customer_tier(session, customer, now)
    segments = (customer.attributes or {}).get("segments") or []
    return domain.Shopper(
        currency=currency,
        first_order=OrderFacts(session).count_for_customer(customer.id) == 0,
        tier=getattr(tier, "name", None),
        segments=frozenset(str(s) for s in segments),
        channel=channel,
    )


def typed_codes(session: Session, cart: Cart, typed: Sequence[str]) -> Resolved:
    """Check, deduplicate and look up every typed code (coupons, referral codes, vouchers).

    The typed codes are counted against the lookup limit before any is looked up (429 when
    they could go over it, also when no code is typed and the limit is used up); only the
    failures stay counted (see :func:`ratelimit.lookups`)."""
    out, pending = Resolved(), {}
    for raw in typed:
        norm, bad = domain.check_code(raw)
        if norm in pending or any(r["code"] == raw for r in out.rejected):
            out.reject(raw, "duplicate", "the code was typed twice")
        elif bad is not None:
            out.reject(raw, bad)
            out.failed_lookups += 1
        else:
            pending[norm] = raw
    rate_keys = ratelimit.keys(cart.caller, cart.customer_ref)
    tries = len(pending) + out.failed_lookups
    limit = cart.cfg.failed_lookups_per_minute
    with ratelimit.lookups(session, rate_keys, cart.now, tries, limit) as tally:
        found = CouponRepository(session).by_codes(cart.caller.merchant_id, list(pending))
        uses = out.customer_uses = _uses(session, cart, list(found.values()))
        out.coupons = {c.id: c for c in found.values()}  # also keeps them in the identity map
        for norm, raw in pending.items():
            if norm in found:
                _coupon(out, cart, found[norm], raw, uses.get(found[norm].id, 0))
            elif not _referral(session, out, cart, norm, raw) and not _voucher(
                session, out, cart, raw
            ):
                out.reject(raw, "unknown", "no such code")
                out.failed_lookups += 1
        tally.found = tries - out.failed_lookups
    return out


def _uses(session: Session, cart: Cart, found: list[Coupon]) -> dict[int, int]:
    limited = [c.id for c in found if c.per_customer_limit is not None]
    if cart.customer is None or not limited:
        return {}
    return CouponRepository(session).customer_uses(limited, cart.customer.id)


def _coupon(out: Resolved, cart: Cart, coupon: Coupon, raw: str, used: int) -> None:
    customer_id = cart.customer.id if cart.customer else None
    reason = coupons.refusal(coupon, cart.now, customer_id, used)
    if reason is not None:
        out.reject(raw, reason)
        return
    _offer_if_met(out, cart, coupons.to_offer(coupon, cart.now), raw)


def _offer_if_met(out: Resolved, cart: Cart, offer: domain.Offer, raw: str) -> None:
    failed = domain.unmet(offer, cart.lines, cart.shopper)
    if failed is not None:
        out.reject(raw, "conditions_unmet", f"condition not met: {failed}")
    else:
        out.offers.append(offer)


def _referral(session: Session, out: Resolved, cart: Cart, norm: str, raw: str) -> bool:
    if not norm.startswith("R"):
        return False
    row = ReferralRepository(session).by_code(cart.caller.merchant_id, norm)
    if row is None:
        return False
    ref = cart.cfg.referral
    if not ref.enabled:
        out.reject(raw, "disabled", "the referral programme is off")
    elif cart.customer is not None and cart.customer.id == row.customer_id:
        out.reject(raw, "self_referral", "a customer cannot use their own referral code")
    elif not cart.shopper.first_order:
        out.reject(raw, "not_first_order", "referral codes are for a first order")
    else:
        offer = domain.Offer(
            ref=f"referral:{row.customer_id}",
            source="referral",
            kind=ref.welcome_kind,
            code=raw.strip().upper(),
            value=ref.welcome_value,
            name="referral welcome",
        )
        _offer_if_met(out, cart, offer, raw)
    return True


def _voucher(session: Session, out: Resolved, cart: Cart, raw: str) -> bool:
    voucher = cart.loyalty.find_voucher(session, cart.caller.programme_id, raw.strip())
    if voucher is None:
        return False
    status = str(getattr(voucher, "status", "active"))
    if voucher.kind not in VOUCHER_KINDS:
        out.reject(raw, "not_applicable_at_checkout", f"a {voucher.kind} reward is not a discount")
    elif status in VOUCHER_STATUS or status in ("cancelled", "void"):
        out.reject(raw, VOUCHER_STATUS.get(status, "disabled"))
    elif not _owns(session, cart, voucher):
        out.reject(raw, "not_your_code", "the reward was bought by another customer")
    else:
        offer = domain.Offer(
            ref=f"reward:{voucher.code}",
            source="reward",
            kind=voucher.kind,
            code=voucher.code,
            value=int(voucher.value or 0),
            product_id=getattr(voucher, "product_id", None),
            name="loyalty reward",
        )
        _offer_if_met(out, cart, offer, raw)
    return True


def _owns(session: Session, cart: Cart, voucher: Any) -> bool:
    """A reward voucher is its buyer's, as a coupon given to one customer is theirs."""
    owner = cart.loyalty.voucher_owner(session, voucher)
    return owner is None or (cart.customer is not None and cart.customer.id == owner)


def automatic(
    session: Session, cart: Cart, promotions: Sequence[domain.Offer]
) -> list[domain.Offer]:
    """Automatic ``promotions`` (active now) whose conditions hold, plus tier and membership
    benefits."""
    offers = [*promotions, *_benefits(session, cart)]
    return [o for o in offers if domain.unmet(o, cart.lines, cart.shopper) is None]


def _benefits(session: Session, cart: Cart) -> list[domain.Offer]:
    if cart.customer is None:
        return []
    out = []
    tier = cart.loyalty.customer_tier(session, cart.customer, cart.now)
    if tier is not None and tier.free_shipping:
        out.append(_free_shipping(f"tier:{tier.name}", "promotion", f"{tier.name} tier"))
    member = cart.loyalty.active_membership(session, cart.customer, cart.now)
    if member is not None and member.free_shipping:
        out.append(_free_shipping(f"membership:{member.plan}", "membership", str(member.plan)))
    return out


def _free_shipping(ref: str, source: str, name: str) -> domain.Offer:
    return domain.Offer(
        ref=ref, source=source, kind="free_shipping", automatic=True, name=name, priority=-1000
    )
