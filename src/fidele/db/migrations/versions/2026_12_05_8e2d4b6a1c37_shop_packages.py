"""ingest: each package (Shopify fulfillment) of an order, to deliver the order once all arrived

Revision ID: 8e2d4b6a1c37
Revises: 5f0a7c3b91d2
Create Date: 2026-12-05 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import fidele.kit.types

revision: str = "8e2d4b6a1c37"
down_revision: str | None = "5f0a7c3b91d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shop_packages",
        sa.Column(
            "merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("package_id", sa.String(length=255), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("lines", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.Column("delivered_at", fidele.kit.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", fidele.kit.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_shop_packages_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_shop_packages_order_id_orders"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shop_packages")),
        sa.UniqueConstraint("order_id", "package_id", name=op.f("uq_shop_packages_order_id_package_id")),
    )


def downgrade() -> None:
    op.drop_table("shop_packages")
