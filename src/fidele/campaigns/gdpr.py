"""Flows' part of a person's GDPR export and erasure: their journeys and what each step did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.campaigns import engine
from fidele.campaigns.repository import FlowRepository
from fidele.customers.gdpr import Erasure, eraser, exporter
from fidele.customers.models import Customer
from fidele.kit.schemas import iso


@exporter("journeys")
def export_journeys(session: Session, customer: Customer, now: datetime) -> list[dict[str, Any]]:
    repo = FlowRepository(session)
    rows = repo.of_customer(customer.merchant_id, customer.id)
    flows = repo.flows_by_id({r.flow_id for r in rows})
    history: dict[int, list[dict[str, Any]]] = {}
    for h in repo.history([r.id for r in rows]):
        history.setdefault(h.enrollment_id, []).append(
            {"at": iso(h.at), "step": h.step, "outcome": h.outcome, "reason": h.reason}
        )
    return [
        {
            "flow": flows[r.flow_id].name,
            "version": r.version,
            "status": r.status,
            "entered_at": iso(r.entered_at),
            "ended_at": iso(r.ended_at),
            "exit_reason": r.exit_reason,
            "history": history.get(r.id, []),
        }
        for r in rows
    ]


@eraser
def erase_journeys(session: Session, erasure: Erasure) -> None:
    """Running journeys end (an erased person is sent nothing more); the rows stay for the
    flows' counts, without the personal context (coupon codes, dates of orders)."""
    customer = erasure.customer
    for enr in FlowRepository(session).of_customer(customer.merchant_id, customer.id):
        if enr.status == "active":
            engine.exit_enrollment(session, enr, erasure.now, "customer erased")
        enr.context = {}
    session.flush()
