"""Surveys, their answers and product reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.feedback import siblings
from fidele.kit.types import JSONType


class Survey(IdMixin, Base):
    """A merchant's survey: ``kind`` nps (0-10 + why), csat (1-5 + why) or form (its own
    questions). ``questions`` is the whole definition as shown (``feedback.domain``), texts in
    French and English; ``link_days`` is how long a link stays valid."""

    __tablename__ = "surveys"
    __table_args__ = (UniqueConstraint("merchant_id", "code"),)

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(10))
    title: Mapped[dict[str, str]] = mapped_column(JSONType)
    questions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    link_days: Mapped[int] = mapped_column(default=30)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SurveyAnswer(IdMixin, Base):
    """One customer's answer to a survey on one occasion (a journey's enrollment, an order, a
    complaint's resolution): answering again updates it. ``score`` is the nps/csat score,
    ``comment`` the free text of the "why" question."""

    __tablename__ = "survey_answers"
    __table_args__ = (
        UniqueConstraint("survey_id", "customer_id", "occasion"),
        Index("ix_survey_answers_survey_answered", "survey_id", "answered_at"),
        Index("ix_survey_answers_customer", "customer_id"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="RESTRICT"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    occasion: Mapped[str] = mapped_column(String(200))
    score: Mapped[int | None] = mapped_column(default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    answers: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    locale: Mapped[str] = mapped_column(String(5), default="en")
    answered_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Review(IdMixin, Base):
    """A customer's rating (1-5) and text of one product of one of their orders: one per
    product and order (posting again edits it; the points were earned once)."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("order_id", "product_id"),
        Index("ix_reviews_merchant_id_id", "merchant_id", "id"),
        Index("ix_reviews_customer", "customer_id"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"))
    product_id: Mapped[str] = mapped_column(String(255))
    product_name: Mapped[str | None] = mapped_column(String(500), default=None)
    rating: Mapped[int]
    text: Mapped[str | None] = mapped_column(Text, default=None)
    locale: Mapped[str] = mapped_column(String(5), default="en")
    posted_at: Mapped[datetime]
    updated_at: Mapped[datetime]


siblings("models")  # complaints_models, delivery_models: their tables join the metadata
