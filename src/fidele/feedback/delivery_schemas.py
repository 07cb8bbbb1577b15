"""Bodies of the delivery endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from fidele.kit.schemas import InputModel, UtcDatetime


class DeliveryIn(InputModel):
    """What the shop knows of an order's delivery; absent fields keep what was known."""

    promised_at: UtcDatetime | None = Field(None, description="Promised delivery date and time")
    delivered_at: UtcDatetime | None = Field(None, description="Actual delivery")
    carrier: str | None = Field(None, min_length=1, max_length=100)


class DeliveryOut(BaseModel):
    order_id: str
    promised_at: datetime | None
    delivered_at: datetime | None
    carrier: str | None
    days_late: int | None
    gesture: dict[str, Any] | None = None


class DeliveryKpis(BaseModel):
    """On-time rate and delay of delivered orders with a promised date, overall and by
    carrier, and the repeat rate within ``window_days`` of delivery, on time against late
    (only deliveries whose whole window has passed count)."""

    since: datetime | None
    until: datetime
    delivered: int
    on_time: int
    late: int
    on_time_rate: float | None
    average_delay_days: float | None
    average_days_late_when_late: float | None
    by_carrier: dict[str, dict[str, Any]]
    repeat: dict[str, Any]
