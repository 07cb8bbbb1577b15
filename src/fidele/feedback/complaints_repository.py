"""All SQL of complaints, recovery gestures and their measurement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, or_, select

from fidele.customers.models import Customer
from fidele.dashboard.models import DashboardUser
from fidele.feedback.complaints_domain import OPEN_STATUSES
from fidele.feedback.complaints_models import (
    Complaint,
    ComplaintNote,
    ComplaintSettings,
    RecoveryGesture,
)
from fidele.kit.repository import RepositoryBase, insert_or_twin
from fidele.orders.models import Order


class ComplaintRepository(RepositoryBase[Complaint]):
    model = Complaint

    def find(self, merchant_id: int, complaint_id: int, *, lock: bool = False) -> Complaint | None:
        stmt = select(Complaint).where(
            Complaint.merchant_id == merchant_id, Complaint.id == complaint_id
        )
        return self.one_or_none(stmt.with_for_update() if lock else stmt)

    def by_source_ref(self, merchant_id: int, source_ref: str) -> Complaint | None:
        return self.one_or_none(
            select(Complaint).where(
                Complaint.merchant_id == merchant_id, Complaint.source_ref == source_ref
            )
        )

    def listing(
        self, merchant_id: int, *, status: str | None, after_id: int, limit: int
    ) -> Sequence[Complaint]:
        stmt = select(Complaint).where(
            Complaint.merchant_id == merchant_id, Complaint.id > after_id
        )
        if status is not None:
            stmt = stmt.where(Complaint.status == status)
        return self.all(stmt.order_by(Complaint.id).limit(limit))

    def latest_of_customer(
        self, merchant_id: int, customer_id: int, limit: int
    ) -> Sequence[Complaint]:
        return self.all(
            select(Complaint)
            .where(Complaint.merchant_id == merchant_id, Complaint.customer_id == customer_id)
            .order_by(Complaint.opened_at.desc(), Complaint.id.desc())
            .limit(limit)
        )

    def of_customer(self, customer_id: int) -> Sequence[Complaint]:
        return self.all(
            select(Complaint).where(Complaint.customer_id == customer_id).order_by(Complaint.id)
        )

    def open_of(self, merchant_id: int) -> Sequence[Complaint]:
        return self.all(
            select(Complaint)
            .where(Complaint.merchant_id == merchant_id, Complaint.status.in_(OPEN_STATUSES))
            .order_by(Complaint.id)
        )

    def overdue(self, merchant_id: int, now: datetime) -> Sequence[Complaint]:
        """Still open, past the first-response due time without a response, or past the
        resolution due time."""
        return self.all(
            select(Complaint)
            .where(
                Complaint.merchant_id == merchant_id,
                Complaint.status.in_(OPEN_STATUSES),
                or_(
                    (Complaint.first_response_at.is_(None)) & (Complaint.first_response_due < now),
                    Complaint.resolution_due < now,
                ),
            )
            .order_by(Complaint.resolution_due, Complaint.id)
        )

    def open_count(self, customer_id: int) -> int:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(Complaint)
                .where(Complaint.customer_id == customer_id, Complaint.status.in_(OPEN_STATUSES))
            )
            or 0
        )

    def merchants_with_open(self) -> Sequence[int]:
        return self.session.scalars(
            select(Complaint.merchant_id)
            .where(Complaint.status.in_(OPEN_STATUSES))
            .distinct()
            .order_by(Complaint.merchant_id)
        ).all()

    def notes(self, complaint_id: int) -> Sequence[ComplaintNote]:
        return self.session.scalars(
            select(ComplaintNote)
            .where(ComplaintNote.complaint_id == complaint_id)
            .order_by(ComplaintNote.id)
        ).all()

    def add_note(self, note: ComplaintNote) -> ComplaintNote:
        self.session.add(note)
        self.session.flush()
        return note

    def external_ids(self, rows: Sequence[Complaint]) -> tuple[dict[int, str], dict[int, str]]:
        """Shop ids of the customers and orders of ``rows``."""
        cids = {r.customer_id for r in rows}
        oids = {r.order_id for r in rows if r.order_id is not None}
        customers = (
            dict(
                self.session.execute(
                    select(Customer.id, Customer.external_id).where(Customer.id.in_(cids))
                ).all()
            )
            if cids
            else {}
        )
        orders = (
            dict(
                self.session.execute(
                    select(Order.id, Order.external_id).where(Order.id.in_(oids))
                ).all()
            )
            if oids
            else {}
        )
        return customers, orders

    def user_of(self, merchant_id: int, user_id: int) -> DashboardUser | None:
        return self.session.scalars(
            select(DashboardUser).where(
                DashboardUser.merchant_id == merchant_id, DashboardUser.id == user_id
            )
        ).one_or_none()

    # -- measurement

    def all_of(self, merchant_id: int) -> Sequence[Complaint]:
        return self.all(
            select(Complaint).where(Complaint.merchant_id == merchant_id).order_by(Complaint.id)
        )

    def order_times(self, merchant_id: int) -> Sequence[Row[tuple[int, datetime]]]:
        """(customer id, placed at) of every order not cancelled, by customer then time."""
        return self.session.execute(
            select(Order.customer_id, Order.placed_at)
            .where(Order.merchant_id == merchant_id, Order.status != "cancelled")
            .order_by(Order.customer_id, Order.placed_at)
        ).all()

    def order_count(self, merchant_id: int, since: datetime | None, until: datetime) -> int:
        stmt = (
            select(func.count())
            .select_from(Order)
            .where(Order.merchant_id == merchant_id, Order.placed_at <= until)
        )
        if since is not None:
            stmt = stmt.where(Order.placed_at >= since)
        return self.session.scalar(stmt) or 0


class SettingsRepository(RepositoryBase[ComplaintSettings]):
    model = ComplaintSettings

    def document(self, merchant_id: int) -> dict[str, Any]:
        row = self.session.get(ComplaintSettings, merchant_id)
        return dict(row.document) if row else {}

    def put(self, merchant_id: int, document: dict[str, Any], now: datetime) -> None:
        row = self.session.get(ComplaintSettings, merchant_id)
        if row is None:
            self.add(ComplaintSettings(merchant_id=merchant_id, document=document, updated_at=now))
        else:
            row.document, row.updated_at = document, now
            self.session.flush()

    def lock(self, merchant_id: int, now: datetime) -> ComplaintSettings:
        """The merchant's settings row, locked (made if missing): gestures check and spend the
        month's budget one at a time."""
        stmt = select(ComplaintSettings).where(ComplaintSettings.merchant_id == merchant_id)
        row = self.one_or_none(stmt.with_for_update())
        if row is not None:
            return row
        insert_or_twin(
            self.session, ComplaintSettings(merchant_id=merchant_id, document={}, updated_at=now)
        )
        found = self.one_or_none(stmt.with_for_update())
        assert found is not None
        return found


class GestureRepository(RepositoryBase[RecoveryGesture]):
    model = RecoveryGesture

    def by_source_ref(self, merchant_id: int, source_ref: str) -> RecoveryGesture | None:
        return self.one_or_none(
            select(RecoveryGesture).where(
                RecoveryGesture.merchant_id == merchant_id,
                RecoveryGesture.source_ref == source_ref,
            )
        )

    def spent(self, merchant_id: int, month: str) -> int:
        return int(
            self.session.scalar(
                select(func.coalesce(func.sum(RecoveryGesture.cost), 0)).where(
                    RecoveryGesture.merchant_id == merchant_id, RecoveryGesture.month == month
                )
            )
            or 0
        )

    def by_complaint(self, merchant_id: int) -> dict[int, str]:
        rows = self.session.execute(
            select(RecoveryGesture.complaint_id, RecoveryGesture.kind).where(
                RecoveryGesture.merchant_id == merchant_id,
                RecoveryGesture.complaint_id.is_not(None),
            )
        ).all()
        return {cid: kind for cid, kind in rows if cid is not None}
