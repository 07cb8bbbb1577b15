"""orders: payment status, tax-inclusive prices, adjustment (discrepancy), line ids

Revision ID: 6e8b504fea28
Revises: 5e1d0c7a9b21
Create Date: 2026-12-04 21:31:10.112464
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fidele.kit.types

revision: str = "6e8b504fea28"
down_revision: str | None = "5e1d0c7a9b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("line_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("variant_id", sa.String(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("tax", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("prices_include_tax", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column(
                "adjustment",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=False,
                server_default="0",
            )
        )
        batch_op.add_column(
            sa.Column("payment_status", sa.String(length=20), nullable=False, server_default="paid")
        )
        batch_op.add_column(
            sa.Column("paid_at", fidele.kit.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("paid_at")
        batch_op.drop_column("payment_status")
        batch_op.drop_column("adjustment")
        batch_op.drop_column("prices_include_tax")

    with op.batch_alter_table("order_lines", schema=None) as batch_op:
        batch_op.drop_column("tax")
        batch_op.drop_column("variant_id")
        batch_op.drop_column("line_id")
