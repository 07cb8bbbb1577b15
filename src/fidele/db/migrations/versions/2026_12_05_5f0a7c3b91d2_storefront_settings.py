"""storefront: per-merchant token secret salt, shop origins, widget look

Revision ID: 5f0a7c3b91d2
Revises: c0a1b2d3e4f5
Create Date: 2026-12-05 03:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import fidele.kit.types

revision: str = "5f0a7c3b91d2"
down_revision: str | None = "c0a1b2d3e4f5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "storefront_settings",
        sa.Column(
            "merchant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("secret_salt", sa.String(length=64), nullable=True),
        sa.Column(
            "origins",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "look",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("demo_customer", sa.String(length=255), nullable=True),
        sa.Column("updated_at", fidele.kit.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_storefront_settings_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_storefront_settings")),
    )


def downgrade() -> None:
    op.drop_table("storefront_settings")
