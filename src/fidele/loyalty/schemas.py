from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from fidele.kit.schemas import (
    INT32,
    Currency,
    Email,
    ExternalId,
    InputModel,
    Minor,
    OutputModel,
    UtcDatetime,
    required_in,
    when,
)
from fidele.orders.schemas import LineIn

RewardKind = Literal[
    "amount_off", "percent_off", "free_shipping", "free_product", "donation", "custom"
]


class RewardIn(InputModel):
    """``value``: minor units (amount_off, donation), basis points (percent_off), else 0."""

    name: str = Field(min_length=1, max_length=200)
    points_cost: int = Field(gt=0, le=10**9)
    kind: RewardKind
    value: int = Field(0, ge=0, le=10**12)
    stock: int | None = Field(None, ge=0, le=INT32)
    per_customer_limit: int | None = Field(None, ge=1, le=INT32)
    tiers: list[str] = Field(default_factory=list, max_length=20)
    members_only: bool = False
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = Field(None, description="after starts_at (422 otherwise)")

    # ends_at > starts_at cannot be said in JSON Schema; it is in the field's description.
    schema_rules = (when("kind", "percent_off", required_in("value", minimum=1, maximum=10_000)),)

    @model_validator(mode="after")
    def _window(self) -> RewardIn:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class RewardOut(OutputModel):
    id: int
    name: str
    points_cost: int
    kind: str
    value: int
    stock: int | None
    issued: int
    per_customer_limit: int | None
    tiers: list[str]
    members_only: bool
    starts_at: UtcDatetime | None
    ends_at: UtcDatetime | None


class RedemptionIn(InputModel):
    reward_id: int = Field(gt=0)


class RedemptionOut(OutputModel):
    id: int
    reward_id: int
    points: int
    status: str
    code: str | None
    voucher_status: str | None
    created_at: UtcDatetime
    cancelled_at: UtcDatetime | None


class AdjustmentIn(InputModel):
    points: int = Field(
        ge=-(10**9), le=10**9, description="not 0", json_schema_extra={"not": {"const": 0}}
    )
    reason: str = Field(min_length=1, max_length=500)


class AdjustmentOut(OutputModel):
    id: int
    points: int
    reason: str
    available: int


class SimulateOrder(InputModel):
    """An order as ``POST /v1/orders`` takes it; ``id``, ``total`` and the rest are optional
    here and do not change the points."""

    id: ExternalId | None = None
    total: Minor | None = None
    email: Email | None = None
    codes: list[str] = Field(default_factory=list, max_length=20)
    attributes: dict[str, Any] = Field(default_factory=dict)
    customer_id: ExternalId | None = None
    currency: Currency
    lines: list[LineIn] = Field(min_length=1, max_length=1000)
    shipping: Minor = 0
    discounts: Minor = 0
    tax: Minor = 0
    channel: str | None = None
    placed_at: UtcDatetime | None = None


class SimulateEvent(InputModel):
    type: str = Field(min_length=1, max_length=100)
    customer_id: ExternalId | None = None


class SimulateIn(InputModel):
    order: SimulateOrder | None = None
    event: SimulateEvent | None = None

    schema_rules = (
        {
            "oneOf": [
                {"properties": {"order": {"type": "object"}}, "required": ["order"]},
                {"properties": {"event": {"type": "object"}}, "required": ["event"]},
            ]
        },
    )

    @model_validator(mode="after")
    def _one(self) -> SimulateIn:
        if (self.order is None) == (self.event is None):
            raise ValueError("give exactly one of order or event")
        return self


class RuleHit(OutputModel):
    rule: str
    points: int


class SimulateOut(OutputModel):
    points: int
    rules: list[RuleHit]


class StatementLine(OutputModel):
    id: int
    account: str
    points: int
    reason: str
    source: str
    at: UtcDatetime
    meta: dict[str, Any]


class LoyaltyOut(OutputModel):
    available: int
    pending: int
    debt: int
    lifetime_earned: int
    lifetime_spent: int
    tier: dict[str, Any] | None
    # Points past their expiry date (or the inactivity deadline) that the expiry job has not
    # booked yet: already left out of ``available``.
    expired: int = 0
    expiring: dict[str, int]
    membership: dict[str, Any] | None


def window(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    from datetime import UTC

    return start or datetime(1970, 1, 1, tzinfo=UTC), end or now
