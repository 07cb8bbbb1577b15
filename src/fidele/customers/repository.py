from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select

from fidele.customers.models import Customer
from fidele.kit.repository import RepositoryBase

# Built once: the hot paths (checkout, orders) look a customer up on every request, and
# building the expression costs more CPU than SQLAlchemy's compiled-statement cache saves.
_BY_EXTERNAL_ID = select(Customer).where(
    Customer.merchant_id == bindparam("merchant_id"),
    Customer.external_id == bindparam("external_id"),
)


class CustomerRepository(RepositoryBase[Customer]):
    model = Customer

    def by_external_id(self, merchant_id: int, external_id: str) -> Customer | None:
        found = self.session.execute(
            _BY_EXTERNAL_ID, {"merchant_id": merchant_id, "external_id": external_id}
        )
        return found.scalars().one_or_none()

    def page(
        self, merchant_id: int, *, after_id: int, limit: int, updated_since: datetime | None
    ) -> Sequence[Customer]:
        stmt = (
            select(Customer)
            .where(
                Customer.merchant_id == merchant_id,
                Customer.id > after_id,
                Customer.erased_at.is_(None),
            )
            .order_by(Customer.id)
            .limit(limit)
        )
        if updated_since is not None:
            stmt = stmt.where(Customer.updated_at >= updated_since)
        return self.all(stmt)

    def by_external_ids(self, merchant_id: int, external_ids: Sequence[str]) -> dict[str, Customer]:
        rows = self.all(
            select(Customer).where(
                Customer.merchant_id == merchant_id, Customer.external_id.in_(external_ids)
            )
        )
        return {c.external_id: c for c in rows}
