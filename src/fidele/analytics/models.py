from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base
from fidele.kit.types import BigInt, JSONType


class CustomerInsight(Base):
    """Each customer's latest analytics, rewritten by the daily refresh so that segments and
    campaigns can filter on them. Money in minor units of the programme's currency."""

    __tablename__ = "customer_insights"
    __table_args__ = (
        Index("ix_customer_insights_merchant_segment", "merchant_id", "segment"),
        Index("ix_customer_insights_merchant_next_order", "merchant_id", "next_expected_order"),
    )

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    r_score: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    f_score: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    m_score: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    segment: Mapped[str | None] = mapped_column(String(50), default=None)
    p_alive: Mapped[float | None] = mapped_column(Float, default=None)
    expected_purchases_90d: Mapped[float | None] = mapped_column(Float, default=None)
    expected_spend: Mapped[int | None] = mapped_column(BigInt, default=None)
    clv: Mapped[int | None] = mapped_column(BigInt, default=None)
    # how p_alive, expected purchases/spend and CLV were estimated: "model",
    # "penalised_model" (the BG/NBD needed a weak prior) or "cadence_average" (no usable model)
    clv_method: Mapped[str | None] = mapped_column(String(20), default=None)
    next_expected_order: Mapped[date | None] = mapped_column(default=None)
    expected_gap_days: Mapped[float | None] = mapped_column(Float, default=None)
    overdue_ratio: Mapped[float | None] = mapped_column(Float, default=None)
    engagement_score: Mapped[int] = mapped_column(default=0)
    engagement_status: Mapped[str | None] = mapped_column(String(30), default=None)
    computed_at: Mapped[datetime]


class AnalyticsReport(Base):
    """The latest shop-level report of each kind (``kpis``, ``cohorts``, ``rfm``, ``clv``)."""

    __tablename__ = "analytics_reports"

    merchant_id: Mapped[int] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(30), primary_key=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    computed_at: Mapped[datetime]
