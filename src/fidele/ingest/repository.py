"""The ingest domain's SQL: the packages of orders as the shops' webhooks describe them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from fidele.ingest.connectors.shop import Package
from fidele.ingest.models import ShopPackage
from fidele.kit.repository import insert_unless_exists

PACKAGES: Table = ShopPackage.__table__  # type: ignore[assignment]


class PackageRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def record(self, merchant_id: int, order_id: int, package: Package, now: datetime) -> None:
        """Insert the package or bring what is known of it up to date: a cancelled package
        stays cancelled, its lines are those last named, and its first delivery time stands
        (a redelivered webhook or a later update does not move it)."""
        values: dict[str, Any] = {
            "merchant_id": merchant_id,
            "order_id": order_id,
            "package_id": package.package_id,
            "live": package.live,
            "lines": package.lines,
            "delivered_at": package.delivered_at,
            "updated_at": now,
        }
        if insert_unless_exists(self.session, PACKAGES, ["order_id", "package_id"], values):
            return
        row = self.session.scalars(
            select(ShopPackage)
            .where(ShopPackage.order_id == order_id, ShopPackage.package_id == package.package_id)
            .with_for_update()
        ).one()
        row.live = row.live and package.live
        row.lines = package.lines if package.lines is not None else row.lines
        row.delivered_at = row.delivered_at or package.delivered_at
        row.updated_at = now

    def of_order(self, order_id: int) -> list[Package]:
        rows = self.session.scalars(
            select(ShopPackage).where(ShopPackage.order_id == order_id).order_by(ShopPackage.id)
        )
        return [Package(r.package_id, r.live, r.lines, r.delivered_at) for r in rows]
