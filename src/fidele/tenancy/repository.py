from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from fidele.kit.repository import RepositoryBase
from fidele.tenancy.models import ApiKey, Merchant, Programme


class ProgrammeRepository(RepositoryBase[Programme]):
    model = Programme


class MerchantRepository(RepositoryBase[Merchant]):
    model = Merchant

    def in_programme(self, programme_id: int) -> Sequence[Merchant]:
        return self.all(select(Merchant).where(Merchant.programme_id == programme_id))

    def list_all(self) -> Sequence[Merchant]:
        return self.all(select(Merchant).order_by(Merchant.id))

    def by_ids(self, ids: Sequence[int]) -> Sequence[Merchant]:
        return self.all(select(Merchant).where(Merchant.id.in_(ids)))


class ApiKeyRepository(RepositoryBase[ApiKey]):
    model = ApiKey

    def with_programme(self, prefix: str) -> tuple[ApiKey, int] | None:
        """The key and its merchant's programme in one round trip (every request needs both)."""
        row = self.session.execute(
            select(ApiKey, Merchant.programme_id)
            .join(Merchant, Merchant.id == ApiKey.merchant_id)
            .where(ApiKey.prefix == prefix)
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    def by_prefix(self, prefix: str) -> ApiKey | None:
        return self.one_or_none(select(ApiKey).where(ApiKey.prefix == prefix))

    def for_merchant(self, merchant_id: int) -> Sequence[ApiKey]:
        return self.all(select(ApiKey).where(ApiKey.merchant_id == merchant_id).order_by(ApiKey.id))
