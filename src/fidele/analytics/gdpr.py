"""The analytics domain's part of a person's GDPR export (its rows hold scores, no personal
field, so erasure keeps them: they describe an anonymised customer)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.analytics.repository import AnalyticsRepository
from fidele.analytics.schemas import InsightsOut
from fidele.customers.gdpr import exporter
from fidele.customers.models import Customer


@exporter("insights")
def export_insights(session: Session, customer: Customer, now: datetime) -> dict[str, Any] | None:
    """The latest RFM segment, churn and value predictions (None before the first refresh)."""
    row = AnalyticsRepository(session).insight(customer.id)
    return (
        None if row is None else InsightsOut.of(row, customer.external_id).model_dump(mode="json")
    )
