from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.kit.types import JSONType

_CUSTOMER = "customers.id"
_MERCHANT = "merchants.id"


class Flow(IdMixin, Base):
    """A merchant's journey. Its definitions are versions (``flow_versions``); the flow enrolls
    new customers on ``active_version`` while ``status`` is ``active``."""

    __tablename__ = "flows"
    __table_args__ = (
        UniqueConstraint("merchant_id", "name"),
        Index("ix_flows_status_trigger", "status", "trigger_kind"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="draft")  # draft, active, paused
    active_version: Mapped[int] = mapped_column(default=1)
    latest_version: Mapped[int] = mapped_column(default=1)
    # denormalised from the active version, for the event handler and the trigger jobs
    trigger_kind: Mapped[str] = mapped_column(String(20))  # event, date, prediction
    trigger_event: Mapped[str | None] = mapped_column(String(100), default=None)
    template: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class FlowVersion(IdMixin, Base):
    __tablename__ = "flow_versions"
    __table_args__ = (UniqueConstraint("flow_id", "version"),)

    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    version: Mapped[int]
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]


class Enrollment(IdMixin, Base):
    """One customer walking one flow version: the step to run next and when. The worker
    claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and advances each once."""

    __tablename__ = "flow_enrollments"
    __table_args__ = (
        # one enrollment per trigger occurrence (the event, the year, the lapse)
        UniqueConstraint("flow_id", "customer_id", "occurrence"),
        Index("ix_flow_enrollments_due", "status", "due_at"),
        Index("ix_flow_enrollments_customer", "customer_id", "status"),
        Index("ix_flow_enrollments_flow", "flow_id", "id"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="RESTRICT"))
    version: Mapped[int]
    customer_id: Mapped[int] = mapped_column(ForeignKey(_CUSTOMER, ondelete="RESTRICT"))
    occurrence: Mapped[str] = mapped_column(String(100))
    # active, completed, exited, failed
    status: Mapped[str] = mapped_column(String(20), default="active")
    step: Mapped[str] = mapped_column(String(50))
    due_at: Mapped[datetime | None] = mapped_column(default=None)
    # set while the current step waits for an event (a wait step with ``event``)
    waiting_for: Mapped[str | None] = mapped_column(String(100), default=None)
    entered_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    exit_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    # the trigger's facts (event id, order id, gap days) and what steps produced (coupon)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class EnrollmentStep(IdMixin, Base):
    """The journey's history: each step taken, its outcome and why (sent, skipped: no
    consent, deferred until, exited on goal...)."""

    __tablename__ = "flow_enrollment_steps"
    __table_args__ = (
        Index("ix_flow_enrollment_steps_enrollment", "enrollment_id", "id"),
        Index("ix_flow_enrollment_steps_customer", "customer_id"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey(_MERCHANT, ondelete="RESTRICT"))
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("flow_enrollments.id", ondelete="CASCADE")
    )
    customer_id: Mapped[int] = mapped_column(ForeignKey(_CUSTOMER, ondelete="RESTRICT"))
    at: Mapped[datetime]
    step: Mapped[str] = mapped_column(String(50))
    kind: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(200), default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
