"""Request and response bodies of complaints and their settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from fidele.feedback import complaints_domain as domain
from fidele.kit.schemas import JSON_INT_MAX, ExternalId, InputModel, UtcDatetime

Category = Literal[
    "late_delivery",
    "damaged",
    "wrong_item",
    "missing_item",
    "refund",
    "quality",
    "service",
    "other",
]
Status = Literal["open", "in_progress", "resolved", "rejected"]
GestureKind = Literal["points", "coupon", "store_credit"]


class ComplaintIn(InputModel):
    customer_id: ExternalId = Field(description="The customer's id in the shop")
    order_id: ExternalId | None = Field(None, description="The shop's order id, if any")
    category: Category
    message: str = Field(min_length=1, max_length=10_000)
    channel: str = Field("api", min_length=1, max_length=30, pattern=r"^[a-z][a-z0-9_-]*$")


class GestureIn(InputModel):
    """``points`` (integer points through loyalty), ``coupon`` (an amount-off next-order coupon,
    ``value`` in minor units) or ``store_credit`` (the cashback wallet, minor units). Its money
    cost counts against the month's recovery budget."""

    kind: GestureKind
    value: int = Field(gt=0, le=10_000_000)


class ComplaintPatch(InputModel):
    status: Status | None = None
    assignee_id: int | None = Field(
        None, ge=1, le=JSON_INT_MAX, description="A dashboard user of this merchant"
    )
    resolution: str | None = Field(None, min_length=1, max_length=10_000)
    gesture: GestureIn | None = Field(None, description="Granted on resolution only")


class NoteIn(InputModel):
    body: str = Field(min_length=1, max_length=10_000)
    author: str | None = Field(None, min_length=1, max_length=200)


class NoteOut(BaseModel):
    id: int
    author: str | None
    body: str
    created_at: datetime


class ComplaintOut(BaseModel):
    id: int
    customer_id: str
    order_id: str | None
    category: str
    message: str
    channel: str
    source: str
    status: str
    assignee_id: int | None
    opened_at: datetime
    first_response_due: datetime
    resolution_due: datetime
    first_response_at: datetime | None
    closed_at: datetime | None
    first_response_breached: bool
    resolution_breached: bool
    resolution: str | None
    gesture: dict[str, Any] | None
    notes: list[NoteOut] = []


class SlaTarget(InputModel):
    first_response_hours: float = Field(gt=0, le=24 * 365)
    resolution_hours: float = Field(gt=0, le=24 * 365)


class LateRule(InputModel):
    """A gesture for each delivery more than ``min_days_late - 1`` days late (``min_days_late``
    3 = "more than 2 days late"); ``kind`` none turns it off."""

    min_days_late: int = Field(ge=1, le=365)
    kind: Literal["points", "coupon", "store_credit", "none"]
    value: int = Field(0, ge=0, le=10_000_000)


class ComplaintSettingsIn(InputModel):
    """Everything optional: an absent key keeps fidele's default."""

    sla: dict[Category, SlaTarget] | None = Field(
        None, description="Per category, in business hours"
    )
    business_hours: dict[str, str] | None = Field(
        None,
        description='Opening per weekday, e.g. {"mon": "09:00-18:00"}; absent days are closed',
    )
    timezone: str | None = Field(
        None, max_length=64, description="IANA zone; default the messaging policy's"
    )
    monthly_budget: int | None = Field(
        None, ge=0, le=10**12, description="Recovery budget per month, minor units"
    )
    late_delivery_rule: LateRule | None = None

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            try:
                domain.business_hours(value)
            except domain.RuleError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                domain.zone(value)
            except domain.RuleError as exc:
                raise ValueError(str(exc)) from None
        return value


class ComplaintSettingsOut(BaseModel):
    sla: dict[str, dict[str, float]]
    business_hours: dict[str, str]
    timezone: str
    monthly_budget: int
    currency: str
    budget_spent_this_month: int
    late_delivery_rule: dict[str, Any]


class HelpdeskTicketIn(InputModel):
    """The generic helpdesk shape (map your helpdesk's webhook onto it): one ticket, once."""

    ticket_id: ExternalId
    customer_id: ExternalId
    order_id: ExternalId | None = None
    category: Category = "other"
    message: str = Field(min_length=1, max_length=10_000)
    channel: str = Field("helpdesk", min_length=1, max_length=30, pattern=r"^[a-z][a-z0-9_-]*$")
    occurred_at: UtcDatetime | None = None
