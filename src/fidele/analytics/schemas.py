from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from fidele.analytics.models import AnalyticsReport, CustomerInsight


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
