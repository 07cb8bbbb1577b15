"""Pure loyalty rules: what an order earns and why, tiers, dates. No I/O, integers only."""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from fidele.kit.money import unit
from fidele.loyalty.config import Multiplier, Scale, Tier

BASE_RULE = "base"


@dataclass(frozen=True)
class Line:
    product_id: str | None
    category: str | None
    amount: int  # minor units after this line's share of discounts


@dataclass(frozen=True)
class OrderFacts:
    currency: str
    lines: Sequence[Line]
    shipping: int
    tax: int
    total: int
    channel: str | None
    placed_at: datetime


@dataclass(frozen=True)
class Context:
    """What the rules need to know about the member at the time of the order."""

    first_order: bool = False
    tier: Tier | None = None
    plan_multiplier_bp: int = 10_000
    birthday_month: bool = False


@dataclass
class Earning:
    """Points per rule (``base`` first); ``total`` is their sum, never below zero."""

    awards: list[tuple[str, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return max(sum(p for _, p in self.awards), 0)


def earns_at_placement(earn_on: str, payment_status: str) -> bool:
    """Whether an order earns when placed; otherwise it earns when its payment is recorded."""
    return earn_on == "placed" or payment_status == "paid"


def eligible_lines(facts: OrderFacts, base: str) -> list[Line]:
    """The order's lines the base counts; shipping and tax become a line of no category."""
    lines = list(facts.lines)
    extra = 0
    if base == "total":
        extra = facts.total - sum(ln.amount for ln in lines)
    elif base == "no_shipping":
        extra = facts.tax
    if extra > 0:
        lines.append(Line(None, None, extra))
    return lines


Source = tuple[str, int, Callable[[Line], bool]]


def _everything(_: Line) -> bool:
    return True


def multiplier_sources(scale: Scale, facts: OrderFacts, ctx: Context) -> list[Source]:
    """Multipliers that apply to this order, in rule order, then tier, plan and birthday."""
    sources: list[Source] = []
    tier_name = ctx.tier.name if ctx.tier else None
    for rule in scale.rules:
        if isinstance(rule, Multiplier) and rule.live(facts.placed_at):
            if rule.channels and facts.channel not in rule.channels:
                continue
            if rule.tiers and tier_name not in rule.tiers:
                continue
            sources.append((rule.id, rule.multiplier_bp, _matcher(rule)))
        elif rule.type == "birthday" and ctx.birthday_month and rule.live(facts.placed_at):
            if rule.multiplier_bp != 10_000:
                sources.append((rule.id, rule.multiplier_bp, _everything))
    if ctx.tier is not None and ctx.tier.multiplier_bp != 10_000:
        sources.append((f"tier:{ctx.tier.name}", ctx.tier.multiplier_bp, _everything))
    if ctx.plan_multiplier_bp != 10_000:
        sources.append(("membership", ctx.plan_multiplier_bp, _everything))
    return sources


def _matcher(rule: Multiplier) -> Callable[[Line], bool]:
    if not rule.categories and not rule.products:
        return _everything
    cats, prods = set(rule.categories), set(rule.products)
    return lambda ln: ln.category in cats or ln.product_id in prods


def order_points(scale: Scale, facts: OrderFacts, ctx: Context) -> Earning:
    """Points of an order and the rule that gave each part.

    Multipliers compound: after ``k`` of them each line weighs ``amount * prod(bp)``, and the
    order earns ``floor(sum(weights) * points_per_unit / (unit * 10_000**k))``. Each multiplier
    is credited with the difference it made, so the parts add up to the total exactly."""
    ppu = scale.settings.points_per_unit
    lines = eligible_lines(facts, scale.settings.base)
    denom = unit(facts.currency)
    weights = [ln.amount for ln in lines]
    previous = sum(weights) * ppu // denom
    earning = Earning([(BASE_RULE, previous)])
    for k, (rule_id, bp, match) in enumerate(multiplier_sources(scale, facts, ctx), start=1):
        weights = [w * (bp if match(ln) else 10_000) for w, ln in zip(weights, lines, strict=True)]
        current = sum(weights) * ppu // (denom * 10_000**k)
        earning.awards.append((rule_id, current - previous))
        previous = current
    for rule in scale.rules:
        if rule.type == "first_order" and ctx.first_order and rule.live(facts.placed_at):
            earning.awards.append((rule.id, rule.points))
    return earning


def refund_clawback(earned: int, order_amount: int, refunded: int) -> int:
    """Points to have taken back once ``refunded`` of ``order_amount`` is refunded (cumulative,
    rounded down, so a full refund takes back exactly what was earned)."""
    if order_amount <= 0:
        return earned if refunded > 0 else 0
    return earned * min(refunded, order_amount) // order_amount


@dataclass(frozen=True)
class Clawback:
    """How points taken back from an order's lot are found: ``from_lot`` from what the lot
    still holds, ``recover`` (spent points) from the member's other available points and then
    as a debt; ``forgiven`` (expired points, and spent ones a programme forgives) not taken."""

    from_lot: int
    recover: int
    forgiven: int


def clawback_split(
    points: int,
    *,
    lot_points: int,
    remaining: int,
    expired: int,
    spent: int,
    clawed: int,
    forgive_spent: bool,
) -> Clawback:
    """Split ``points`` more to take back from a lot in its current state: first what it still
    holds, then its expired points (never taken from the customer: they were never spendable),
    then its spent points (a debt, unless ``forgive_spent``).

    The lot's points are ``remaining + expired + spent`` plus what earlier clawbacks took from
    the lot itself; what earlier clawbacks counted beyond that (``clawed`` less it) covered its
    expired points first, then its spent ones, so each point is split once over any number of
    partial refunds."""
    from_lot = min(points, remaining)
    rest = points - from_lot
    own_before = max(lot_points - remaining - expired - spent, 0)
    beyond_before = max(clawed - own_before, 0)
    expired_left = max(expired - beyond_before, 0)
    forgiven_expired = min(rest, expired_left)
    spent_part = rest - forgiven_expired
    recover = 0 if forgive_spent else spent_part
    return Clawback(from_lot, recover, rest - recover)


def expired_as_of(
    lots: Sequence[tuple[int, datetime]],
    available: int,
    inactive_since: datetime | None,
    now: datetime,
) -> int:
    """Available points past their expiry at ``now`` that the expiry job has not booked yet:
    lots' (remaining points, expiry date) due by ``now``, or all of ``available`` once the
    inactivity deadline ``inactive_since`` has passed."""
    if inactive_since is not None and inactive_since <= now:
        return available
    return min(sum(p for p, at in lots if at <= now), available)


def tier_rank(
    levels: Sequence[Tier], metrics: dict[str, int], seniority_years: int, bp_per_year: int
) -> int:
    """Highest tier whose threshold the member meets; seniority inflates the metrics."""
    factor = 10_000 + seniority_years * bp_per_year
    rank = 0
    for i, tier in enumerate(levels):
        value = metrics.get(tier.threshold.metric, 0) * factor // 10_000
        if value >= tier.threshold.value:
            rank = i
    return rank


def tier_window_start(window: str, now: datetime) -> datetime:
    if window == "calendar_year":
        return now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return now - timedelta(days=365)


def add_months(at: datetime, months: int) -> datetime:
    """Same day ``months`` later, clipped to the month's last day (31 Jan + 1 = 28/29 Feb)."""
    month0 = at.month - 1 + months
    year, month = at.year + month0 // 12, month0 % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def full_years(since: datetime | None, now: datetime) -> int:
    if since is None or since > now:
        return 0
    years = now.year - since.year
    return years - 1 if add_months(since, 12 * years) > now else years


def period_key(period: str, at: datetime) -> str:
    if period == "day":
        return at.strftime("%Y-%m-%d")
    if period == "month":
        return at.strftime("%Y-%m")
    return "all"


def birthday_in(year: int, birthday: date) -> date:
    """The birthday's date in ``year`` (29 February falls on the 28th in other years)."""
    day = min(birthday.day, calendar.monthrange(year, birthday.month)[1])
    return date(year, birthday.month, day)


def expiring_buckets(lots: Sequence[tuple[int, datetime]], now: datetime) -> dict[str, int]:
    """Points expiring within 30, 60 and 90 days (cumulative)."""
    out = {}
    for days in (30, 60, 90):
        limit = now + timedelta(days=days)
        out[str(days)] = sum(p for p, at in lots if at <= limit)
    return out


AGE_BUCKETS = ((30, "0-30"), (90, "31-90"), (180, "91-180"), (365, "181-365"))


OLDEST_BUCKET = "365+"


def age_bucket(earned_at: datetime, now: datetime) -> str:
    age = (now - earned_at).days
    return next((name for limit, name in AGE_BUCKETS if age <= limit), OLDEST_BUCKET)


def age_bucket_starts(now: datetime) -> list[tuple[str, datetime]]:
    """:func:`age_bucket` as bounds a query can compare with, youngest bucket first: a lot
    earned after the bound is in that bucket or a younger one (``(now - earned_at).days <=
    limit`` exactly when ``earned_at > now - (limit + 1) days``)."""
    return [(name, now - timedelta(days=limit + 1)) for limit, name in AGE_BUCKETS]


def money_value(points: int, point_value: int) -> int:
    """Minor units worth ``points`` at ``point_value`` minor units per 100 points (floor)."""
    return points * point_value // 100
