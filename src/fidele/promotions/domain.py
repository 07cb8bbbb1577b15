"""Pure promotion rules: conditions, the stacking arithmetic, payments, refunds, code shapes.

No I/O here: every function takes plain values (and ``now`` when time matters).

Stacking arithmetic (what :func:`price` and :func:`pay` do, in this order)
--------------------------------------------------------------------------
1. Every candidate discount is an :class:`Offer`. They are walked in the order of
   :func:`stack_key`: automatic promotions (tier, membership, buy X get Y, ...) first, then typed
   coupons and referral welcome offers, then loyalty reward vouchers; inside a group by
   ``priority`` (higher first), then percent-off before amount-off (free product first, free
   shipping last), then by ``ref`` so the order is total and deterministic.
2. Exclusivity: an exclusive offer is only accepted when nothing was accepted before it, and once
   one is accepted nothing else is. A refused typed code reports ``not_combinable`` and the code
   (or name) that blocked it; an automatic promotion that is blocked is silently left out.
3. Each offer applies to the *running* amount of its eligible lines (after the offers before it):
   percent-off is ``mul_bp(running eligible amount, bp)`` rounded half away from zero, then capped;
   amount-off is ``min(value, running eligible amount)``; free product / buy X get Y / cheapest
   free take whole units (the cheapest first), never more than what remains of a line; free
   shipping takes what remains of shipping. An order-level discount is spread over the eligible
   lines by largest remainder (:func:`fidele.kit.money.allocate`), so line shares add up exactly.
   Nothing ever goes below zero.
4. Then payment-like reductions, on what is left to pay, in this order: points (their money
   value, at most what is left, whole points only), gift cards in the order given, wallet.
   Each takes ``min(requested, available, left to pay)``.
5. A refund gives back to each payment-like source its share of the refunded amount, by
   cumulative rounding (:func:`refund_shares`): refunding everything, in any steps, restores
   exactly what was taken.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fidele.kit import codes
from fidele.kit.money import allocate, div_round, mul_bp

Kind = Literal["amount_off", "percent_off", "free_shipping", "free_product"]
GROUPS = {"promotion": 0, "membership": 0, "coupon": 1, "referral": 1, "reward": 2}
KIND_RANK = {"free_product": 0, "percent_off": 1, "amount_off": 2, "free_shipping": 3}
# Generated codes: one letter naming what they are, 11 random symbols, one check symbol.
PREFIXES = {"C": "coupon", "G": "gift_card", "R": "referral"}
GENERATED_LENGTH = 13


class Conditions(BaseModel):
    """When a coupon or automatic promotion applies. Empty lists mean "any"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_subtotal: int = Field(0, ge=0, description="minimum merchandise amount, minor units")
    products: list[str] = Field(default_factory=list)
    exclude_products: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    exclude_categories: list[str] = Field(default_factory=list)
    first_order_only: bool = False
    tiers: list[str] = Field(default_factory=list)
    segments: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    currency: str | None = None


@dataclass(frozen=True)
class CartLine:
    product_id: str
    category: str | None
    quantity: int
    unit_price: int

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class Shopper:
    """What conditions may look at, besides the cart."""

    currency: str
    first_order: bool = True
    tier: str | None = None
    segments: frozenset[str] = frozenset()
    channel: str | None = None


@dataclass(frozen=True)
class Offer:
    ref: str  # stable id: "coupon:12", "tier:Gold", "reward:R7..."
    source: str  # coupon, promotion, reward, referral, membership
    kind: str
    code: str | None = None
    value: int = 0
    cap: int | None = None
    product_id: str | None = None
    rule: str | None = None  # buy_x_get_y, cheapest_free
    buy: int = 0
    get: int = 0
    priority: int = 0
    exclusive: bool = False
    automatic: bool = False
    conditions: Conditions = field(default_factory=Conditions)
    name: str | None = None


@dataclass(frozen=True)
class Applied:
    offer: Offer
    lines: list[int]  # share of each cart line
    shipping: int

    @property
    def amount(self) -> int:
        return sum(self.lines) + self.shipping


@dataclass(frozen=True)
class Refusal:
    offer: Offer
    reason: str
    detail: str


@dataclass
class Priced:
    subtotal: int
    shipping: int
    applied: list[Applied]
    refused: list[Refusal]

    @property
    def discount(self) -> int:
        return sum(a.amount for a in self.applied)

    @property
    def due(self) -> int:
        return self.subtotal + self.shipping - self.discount


def eligible(line: CartLine, c: Conditions) -> bool:
    if c.products and line.product_id not in c.products:
        return False
    if c.categories and line.category not in c.categories:
        return False
    if line.product_id in c.exclude_products:
        return False
    return not (line.category is not None and line.category in c.exclude_categories)


def unmet(offer: Offer, lines: Sequence[CartLine], who: Shopper) -> str | None:
    """The first condition of ``offer`` that does not hold, or None."""
    c = offer.conditions
    checks = (
        ("currency", c.currency is None or c.currency == who.currency),
        ("channels", not c.channels or who.channel in c.channels),
        ("first_order_only", not c.first_order_only or who.first_order),
        ("tiers", not c.tiers or who.tier in c.tiers),
        ("segments", not c.segments or bool(who.segments & set(c.segments))),
        ("products", any(eligible(ln, c) for ln in lines)),
        ("min_subtotal", sum(ln.amount for ln in lines) >= c.min_subtotal),
        ("free_product", offer.kind != "free_product" or _has_free_product(offer, lines)),
    )
    return next((name for name, ok in checks if not ok), None)


def _has_free_product(offer: Offer, lines: Sequence[CartLine]) -> bool:
    if offer.rule is not None:
        return True
    return any(ln.product_id == offer.product_id for ln in lines)


def stack_key(offer: Offer) -> tuple[int, int, int, str]:
    return (GROUPS.get(offer.source, 1), -offer.priority, KIND_RANK[offer.kind], offer.ref)


def price(lines: Sequence[CartLine], shipping: int, offers: Sequence[Offer]) -> Priced:
    """Apply ``offers`` to the cart by the stacking rules of this module's docstring."""
    running = [ln.amount for ln in lines]
    out = Priced(sum(running), shipping, [], [])
    ship_left = shipping
    for offer in sorted(offers, key=stack_key):
        blocker = _blocker(offer, out.applied)
        if blocker is not None:
            name = blocker.code or blocker.ref
            out.refused.append(Refusal(offer, "not_combinable", f"not combinable with {name}"))
            continue
        applied = _apply(offer, lines, running, ship_left)
        if applied.amount == 0 and offer.automatic:
            continue
        running = [r - s for r, s in zip(running, applied.lines, strict=True)]
        ship_left -= applied.shipping
        out.applied.append(applied)
    return out


def _blocker(offer: Offer, applied: Sequence[Applied]) -> Offer | None:
    if not applied:
        return None
    if offer.exclusive:
        return applied[0].offer
    return next((a.offer for a in applied if a.offer.exclusive), None)


def _apply(offer: Offer, lines: Sequence[CartLine], running: list[int], ship: int) -> Applied:
    mask = [eligible(ln, offer.conditions) for ln in lines]
    weights = [r if m else 0 for r, m in zip(running, mask, strict=True)]
    if offer.kind == "free_shipping":
        return Applied(offer, [0] * len(lines), ship)
    if offer.kind == "free_product":
        return Applied(offer, _free_units(offer, lines, running, mask), 0)
    base = sum(weights)
    if offer.kind == "percent_off":
        amount = mul_bp(base, min(offer.value, 10_000))
        amount = amount if offer.cap is None else min(amount, offer.cap)
    else:
        amount = min(offer.value, base)
    return Applied(offer, allocate(amount, weights) if base else [0] * len(lines), 0)


def free_unit_count(offer: Offer, units: int) -> int:
    """How many units are free: buy X get Y repeats; cheapest-free gives one from ``buy`` units."""
    if offer.rule == "buy_x_get_y":
        return (units // (offer.buy + offer.get)) * offer.get if offer.buy + offer.get else 0
    if offer.rule == "cheapest_free":
        return 1 if units >= max(offer.buy, 1) else 0
    return 1


def _free_units(
    offer: Offer, lines: Sequence[CartLine], running: list[int], mask: list[bool]
) -> list[int]:
    if offer.rule is None:
        idx = [i for i, ln in enumerate(lines) if mask[i] and ln.product_id == offer.product_id]
        idx = idx[:1]
    else:
        idx = sorted((i for i in range(len(lines)) if mask[i]), key=lambda i: lines[i].unit_price)
    left = free_unit_count(offer, sum(lines[i].quantity for i in idx))
    shares = [0] * len(lines)
    for i in idx:
        take = min(left, lines[i].quantity)
        shares[i] = min(take * lines[i].unit_price, running[i])
        left -= take
    return shares


@dataclass(frozen=True)
class Tender:
    """A payment-like reduction asked for: points (already in money), a gift card, the wallet."""

    source: str  # points, gift_card, wallet
    ref: str
    requested: int
    available: int
    code: str | None = None


def pay(due: int, tenders: Sequence[Tender]) -> list[int]:
    """What each tender takes of ``due``, in the given order; never more than is left."""
    left, taken = due, []
    for t in tenders:
        amount = max(0, min(t.requested, t.available, left))
        taken.append(amount)
        left -= amount
    return taken


def points_for(due: int, points: int, minor_per_100: int) -> tuple[int, int]:
    """``(points used, money value)`` of burning up to ``points`` against ``due``: whole points,
    never worth more than ``due``."""
    if minor_per_100 <= 0 or points <= 0:
        return 0, 0
    usable = min(points, (due * 100) // minor_per_100)
    return usable, min(due, div_round(usable * minor_per_100, 100))


def refund_shares(parts: Sequence[int], total: int, before: int, after: int) -> list[int]:
    """What each payment part gets back when the refunded total goes from ``before`` to
    ``after`` (of ``total``): cumulative rounding, so a full refund restores each part exactly."""
    if total <= 0:
        return [0] * len(parts)
    return [div_round(p * after, total) - div_round(p * before, total) for p in parts]


def scheduled_value(
    schedule: Sequence[tuple[int, int]], issued_at: datetime, now: datetime
) -> int | None:
    """Basis points of a next-order coupon used at ``now``: the first ``(days, bp)`` step whose
    deadline has not passed (``[(15, 1500), (30, 1000), (60, 500)]``), or None once expired."""
    for days, bp in sorted(schedule):
        if now <= issued_at + timedelta(days=days):
            return bp
    return None


def next_order_text(
    code: str, schedule: Sequence[tuple[int, int]], issued_at: datetime, shop: str
) -> str:
    """The customer-facing text printed on the parcel insert or sent by email."""
    steps = [
        f"{bp / 100:g}% off until {(issued_at + timedelta(days=d)):%d/%m/%Y}"
        for d, bp in sorted(schedule)
    ]
    return (
        f"Thank you for your order at {shop}! Your next order is cheaper the sooner you come "
        f"back: {'; '.join(steps)}. Your code: {code}"
    )


def looks_generated(norm: str) -> bool:
    """A normalised code shaped like a generated one (prefix letter + 12 symbols)."""
    return (
        len(norm) == GENERATED_LENGTH
        and norm[0] in PREFIXES
        and all(c in codes.ALPHABET for c in norm)
    )


def check_code(raw: str) -> tuple[str, str | None]:
    """``(normalised code, refusal reason or None)`` before any lookup: a generated-shaped code
    must pass its check symbol."""
    norm = codes.normalise(raw)
    if not norm or any(c not in codes.ALPHABET for c in norm):
        return norm, "unknown"
    if looks_generated(norm) and not codes.is_well_formed(norm, prefix=norm[0]):
        return norm, "bad_check_character"
    return norm, None


_SPACES = re.compile(r"[\W_]+")


def normalise_address(address: object) -> str | None:
    """An order's shipping address as comparable text. Attributes are free-form: a shop may
    send the address as one string or as an object (its scalar fields, in key order)."""
    if isinstance(address, dict):
        address = " ".join(
            str(v) for _, v in sorted(address.items()) if isinstance(v, str | int | float)
        )
    if not address or not isinstance(address, str):
        return None
    return _SPACES.sub(" ", address.lower()).strip() or None


@dataclass(frozen=True)
class Identity:
    """What ties an order to a person, for referral fraud rules."""

    customer_id: int
    emails: frozenset[str] = frozenset()
    addresses: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()
    payments: frozenset[str] = frozenset()


def referral_refusal(
    referrer: Identity,
    referee: Identity,
    *,
    already_referred: bool,
    first_order: bool,
    this_month: int,
    monthly_cap: int,
) -> str | None:
    """The reason a referral is refused, or None when it is accepted."""
    if referrer.customer_id == referee.customer_id or referrer.emails & referee.emails:
        return "self_referral"
    if referrer.addresses & referee.addresses:
        return "same_address"
    if referrer.devices & referee.devices or referrer.payments & referee.payments:
        return "same_fingerprint"
    if already_referred:
        return "already_referred"
    if not first_order:
        return "not_first_order"
    if this_month >= monthly_cap:
        return "monthly_cap_reached"
    return None
