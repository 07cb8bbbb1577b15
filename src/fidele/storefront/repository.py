from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.storefront.models import StorefrontSettings


class StorefrontRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, merchant_id: int) -> StorefrontSettings | None:
        return self.session.get(StorefrontSettings, merchant_id)

    def add(self, row: StorefrontSettings) -> StorefrontSettings:
        self.session.add(row)
        self.session.flush()
        return row

    def demo_merchant(self) -> StorefrontSettings | None:
        """The most recent merchant with a demo customer (a shop built by ``fidele demo``)."""
        stmt = (
            select(StorefrontSettings)
            .where(StorefrontSettings.demo_customer.is_not(None))
            .order_by(StorefrontSettings.merchant_id.desc())
            .limit(1)
        )
        return self.session.execute(stmt).scalars().first()
