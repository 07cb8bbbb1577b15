from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

from fidele.analytics.engagement import DEFAULT_SCALE, DEFAULT_STATUSES
from fidele.analytics.models import AnalyticsReport, CustomerInsight
from fidele.events.schemas import EventType
from fidele.kit.schemas import InputModel, Int


class InsightsOut(BaseModel):
    """A customer's latest analytics. Money in minor units of the programme's currency."""

    customer_id: str
    r_score: int | None
    f_score: int | None
    m_score: int | None
    segment: str | None
    p_alive: float | None
    expected_purchases_90d: float | None
    expected_spend: int | None
    clv: int | None
    clv_method: str | None = Field(
        description="model, penalised_model (a weak prior was needed: rough) or "
        "cadence_average (no usable model: cadence and spend averages, no P(alive))"
    )
    next_expected_order: date | None
    expected_gap_days: float | None
    overdue_ratio: float | None
    engagement_score: int
    engagement_status: str | None
    computed_at: datetime

    @classmethod
    def of(cls, row: CustomerInsight, external_id: str) -> InsightsOut:
        fields = {name: getattr(row, name) for name in cls.model_fields if name != "customer_id"}
        return cls(customer_id=external_id, **fields)


class ReportOut(BaseModel):
    kind: str
    computed_at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, row: AnalyticsReport) -> ReportOut:
        return cls(kind=row.kind, computed_at=row.computed_at, data=row.payload)


class EngagementStatus(InputModel):
    min_score: int = Field(ge=0, le=1_000_000, description="Lowest score of this status")
    status: str = Field(min_length=1, max_length=30)

    @model_validator(mode="before")
    @classmethod
    def _pair(cls, data: Any) -> Any:
        # settings stored before the API kept ``[min score, status]`` pairs
        if isinstance(data, list | tuple) and len(data) == 2:
            return {"min_score": data[0], "status": data[1]}
        return data


class EngagementConfig(InputModel):
    """The engagement scale: points per event type counted over ``window_days``, and the
    statuses its thresholds give (ascending, the first at 0). Event types are the API's
    (``newsletter_subscribed``, ``review_posted``, ``order.placed``, ...) or custom ones; a
    look-alike of a known type (``newsletter.subscribed``) is refused."""

    scale: dict[EventType, Annotated[Int, Field(ge=0, le=10_000)]] = Field(
        default_factory=lambda: dict(DEFAULT_SCALE),
        max_length=200,
        description="Points per event type",
    )
    window_days: int = Field(180, ge=1, le=3650)
    statuses: list[EngagementStatus] = Field(
        default_factory=lambda: [
            EngagementStatus(min_score=m, status=s) for m, s in DEFAULT_STATUSES
        ],
        min_length=1,
        max_length=20,
    )

    @model_validator(mode="after")
    def _ascending(self) -> EngagementConfig:
        scores = [s.min_score for s in self.statuses]
        if scores[0] != 0 or scores != sorted(set(scores)):
            raise PydanticCustomError(
                "statuses", "statuses must start at min_score 0 and ascend strictly", {}
            )
        return self

    def thresholds(self) -> list[tuple[int, str]]:
        return [(s.min_score, s.status) for s in self.statuses]
