"""All the dashboard's own SQL: its users, its activity log and the customer search."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select

from fidele.analytics.models import CustomerInsight
from fidele.customers.models import Customer
from fidele.dashboard.models import DashboardActivity, DashboardUser
from fidele.kit.repository import RepositoryBase


class UserRepository(RepositoryBase[DashboardUser]):
    model = DashboardUser

    def by_email(self, email: str) -> DashboardUser | None:
        return self.one_or_none(select(DashboardUser).where(DashboardUser.email == email))

    def for_merchant(self, merchant_id: int) -> Sequence[DashboardUser]:
        return self.all(
            select(DashboardUser)
            .where(DashboardUser.merchant_id == merchant_id)
            .order_by(DashboardUser.id)
        )


class ActivityRepository(RepositoryBase[DashboardActivity]):
    model = DashboardActivity

    def latest(
        self, merchant_id: int, *, before_id: int | None, limit: int
    ) -> Sequence[DashboardActivity]:
        stmt = select(DashboardActivity).where(DashboardActivity.merchant_id == merchant_id)
        if before_id is not None:
            stmt = stmt.where(DashboardActivity.id < before_id)
        return self.all(stmt.order_by(DashboardActivity.id.desc()).limit(limit))


class CustomerSearch(RepositoryBase[Customer]):
    model = Customer

    def search(
        self,
        merchant_id: int,
        query: str,
        *,
        after_id: int,
        limit: int,
        segment: str | None = None,
    ) -> Sequence[Customer]:
        """The merchant's customers (erased ones left out) whose shop id, email or name
        contains ``query`` (case-insensitive), or whose internal id is ``query``; all of them
        when ``query`` is empty; only those of an RFM ``segment`` when given (the stored
        insights). Ordered by id, ``after_id`` for the next page."""
        stmt = select(Customer).where(
            Customer.merchant_id == merchant_id,
            Customer.erased_at.is_(None),
            Customer.id > after_id,
        )
        text = query.strip().lower()
        if text:
            like = f"%{text.replace('%', '').replace('_', '')}%"
            full_name = func.lower(
                func.coalesce(Customer.first_name, "") + " " + func.coalesce(Customer.last_name, "")
            )
            found = [
                func.lower(Customer.external_id).like(like),
                Customer.email_normalized.like(like),
                full_name.like(like),
            ]
            if text.isdigit() and len(text) < 19:
                found.append(Customer.id == int(text))
            stmt = stmt.where(or_(*found))
        if segment:
            stmt = stmt.join(CustomerInsight, CustomerInsight.customer_id == Customer.id).where(
                CustomerInsight.segment == segment
            )
        return self.all(stmt.order_by(Customer.id).limit(limit))

    def average_clv(self, merchant_id: int) -> float | None:
        """Mean of the stored CLV estimates (minor units), None before the first refresh."""
        value = self.session.execute(
            select(func.avg(CustomerInsight.clv)).where(CustomerInsight.merchant_id == merchant_id)
        ).scalar()
        return None if value is None else float(value)

    def clv_values(self, merchant_id: int) -> list[int]:
        """Every stored CLV estimate of the merchant (minor units)."""
        rows = self.session.execute(
            select(CustomerInsight.clv).where(
                CustomerInsight.merchant_id == merchant_id, CustomerInsight.clv.is_not(None)
            )
        )
        return [int(v) for (v,) in rows]
