"""The programme's scale: one validated document (settings, earning rules, tiers, plans).

Stored as JSON versions (``RuleVersion``), edited through ``PUT /v1/loyalty/rules`` or loaded
from YAML with ``fidele loyalty rules load FILE``. A YAML file that does not validate is refused
with the line of the offending value, and the active version stays."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from fidele.events.schemas import EventType
from fidele.kit.documents import DocumentError, validate, validate_yaml
from fidele.kit.schemas import Currency

Bp = Annotated[int, Field(ge=0, le=1_000_000)]
Pts = Annotated[int, Field(ge=0, le=10_000_000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Settings(_Strict):
    """``points_per_unit`` points per major currency unit of the earning ``base``:
    ``total`` (as paid, shipping and tax included), ``net`` (lines after discounts, no shipping
    or tax) or ``no_shipping`` (lines after discounts plus tax). The base is the same whether
    the shop's prices include tax or not: the tax inside tax-inclusive prices is taken out.
    ``earn_on``: ``paid`` earns when the order is paid (an order placed unpaid, such as cash on
    delivery or a check, earns on its payment), ``placed`` earns pending points at placement
    (released after ``pending_days``; a cancellation takes them back). Order points are
    ``floor(sum(line amount * multipliers) * points_per_unit / (unit * 10_000^k))``: one floor
    per order, never per line, so splitting an order never gains a point.
    ``point_value`` is the money value of 100 points in minor units of ``currency``.
    ``clawback``: what a refund does with points of the order already spent: ``debt`` (the
    default) takes them from the customer's other available points, then keeps the rest as a
    debt repaid from the next points (shown apart from ``available``); ``negative`` is the
    same, the debt shown as a negative ``available``; ``forgive`` lets the customer keep them.
    What the order's lot still holds is always taken back, and its expired points never are."""

    points_per_unit: Annotated[int, Field(ge=0, le=100_000)] = 1
    base: Literal["total", "net", "no_shipping"] = "net"
    pending_days: Annotated[int, Field(ge=0, le=365)] = 14
    earn_on: Literal["paid", "placed"] = "paid"
    expiry_months: Annotated[int | None, Field(ge=1, le=600)] = 12
    inactivity_months: Annotated[int | None, Field(ge=1, le=600)] = None
    expiring_notice_days: Annotated[int, Field(ge=1, le=365)] = 30
    clawback: Literal["debt", "negative", "forgive"] = "debt"
    point_value: Annotated[int, Field(ge=0, le=10**9)] = 500
    currency: Currency = "EUR"


class Budget(_Strict):
    """Points a rule may award per period (``day``, ``month`` or ``total`` for its whole life),
    overall and per member; once spent the rule stops awarding and the refusal is recorded."""

    period: Literal["day", "month", "total"] = "month"
    total: Pts | None = None
    per_member: Pts | None = None


class _Rule(_Strict):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9_.-]+$")
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    budget: Budget | None = None

    def live(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (
            self.ends_at is None or now < self.ends_at
        )


class Multiplier(_Rule):
    """Multiplies the points of matching lines: by category, product, channel or tier; a
    multiplier with dates is a time-boxed campaign (double points this weekend)."""

    type: Literal["multiplier"]
    multiplier_bp: Annotated[int, Field(ge=0, le=1_000_000)]
    categories: list[str] = Field(default_factory=list)
    products: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    tiers: list[str] = Field(default_factory=list)


class FirstOrder(_Rule):
    type: Literal["first_order"]
    points: Pts


class Birthday(_Rule):
    """A fixed bonus on the birthday (awarded once a year) and/or a multiplier on orders placed
    during the birthday month."""

    type: Literal["birthday"]
    points: Pts = 0
    multiplier_bp: Bp = 10_000


class Anniversary(_Rule):
    type: Literal["anniversary"]
    points: Pts


class Action(_Rule):
    """Points for an event of the log (newsletter_subscribed, review_posted, any custom type),
    with caps on how many count per day, per month and in a lifetime."""

    type: Literal["action"]
    event_type: EventType
    points: Pts
    per_day: Pts | None = None
    per_month: Pts | None = None
    lifetime: Pts | None = None


Rule = Annotated[
    Multiplier | FirstOrder | Birthday | Anniversary | Action, Field(discriminator="type")
]


class Threshold(_Strict):
    metric: Literal["points", "spent", "orders"] = "points"
    value: Annotated[int, Field(ge=0)] = 0


class Tier(_Strict):
    """Entry threshold on ``metric`` over the programme's tier window; benefits apply while in
    the tier. Seniority adds ``seniority_bp_per_year`` of the metric per full year since the
    member's first order."""

    name: str = Field(min_length=1, max_length=100)
    threshold: Threshold = Threshold()
    multiplier_bp: Bp = 10_000
    free_shipping: bool = False
    exclusive_rewards: bool = False


class Tiers(_Strict):
    window: Literal["rolling_365", "calendar_year"] = "rolling_365"
    review_months: Annotated[int, Field(ge=1, le=120)] = 12
    grace_days: Annotated[int, Field(ge=0, le=3650)] = 30
    seniority_bp_per_year: Bp = 0
    levels: list[Tier] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _ordered(self) -> Tiers:
        values = [t.threshold.value for t in self.levels]
        if values != sorted(values) or (values and values[0] != 0):
            raise ValueError("tiers must start at threshold 0 and rise")
        if len({t.name for t in self.levels}) != len(self.levels):
            raise ValueError("tier names must be unique")
        return self


class Plan(_Strict):
    code: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=200)
    price: Annotated[int, Field(ge=0)] = 0
    period_months: Annotated[int, Field(ge=1, le=120)] = 12
    multiplier_bp: Bp = 10_000
    free_shipping: bool = False
    exclusive_rewards: bool = False


class Scale(_Strict):
    settings: Settings = Settings()
    rules: list[Rule] = Field(default_factory=list, max_length=500)
    tiers: Tiers = Tiers()
    plans: list[Plan] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _unique_ids(self) -> Scale:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate rule ids: {', '.join(dupes)}")
        return self

    def rule(self, rule_id: str) -> Any:
        return next((r for r in self.rules if r.id == rule_id), None)

    def plan(self, code: str) -> Plan | None:
        return next((p for p in self.plans if p.code == code), None)


def default_scale(currency: str = "EUR") -> Scale:
    """What a new programme starts with: 1 point per currency unit (net), 14 days pending,
    12-month expiry, a first-order bonus, newsletter/review actions and three tiers."""
    return Scale(
        settings=Settings(currency=currency),
        rules=[
            FirstOrder(id="first-order", type="first_order", points=50),
            Action(
                id="newsletter",
                type="action",
                event_type="newsletter_subscribed",
                points=10,
                lifetime=1,
            ),
            Action(id="review", type="action", event_type="review_posted", points=2, per_day=3),
        ],
        tiers=Tiers(
            levels=[
                Tier(name="Bronze"),
                Tier(name="Silver", threshold=Threshold(value=500), multiplier_bp=12_500),
                Tier(
                    name="Gold",
                    threshold=Threshold(value=2000),
                    multiplier_bp=15_000,
                    free_shipping=True,
                    exclusive_rewards=True,
                ),
            ]
        ),
    )


class ScaleError(DocumentError):
    """A scale that does not validate; ``errors`` are ``(line or None, location, reason)``."""


def parse(data: Any) -> Scale:
    return validate(Scale, data, ScaleError)


def parse_yaml(text: str) -> Scale:
    """Validate a YAML scale; errors carry the 1-based line of the offending node."""
    return validate_yaml(Scale, text, ScaleError)
