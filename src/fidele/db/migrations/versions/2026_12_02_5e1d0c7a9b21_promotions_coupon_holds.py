"""promotions: coupon usages held at checkout evaluate

Revision ID: 5e1d0c7a9b21
Revises: 1436af2fa61a
Create Date: 2026-12-02 14:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import fidele.kit.types

revision: str = "5e1d0c7a9b21"
down_revision: str | None = "1436af2fa61a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("coupons") as batch:
        batch.add_column(sa.Column("held_count", sa.Integer(), nullable=False, server_default="0"))
        batch.create_check_constraint(
            "held_le_limit", "usage_limit IS NULL OR used_count + held_count <= usage_limit"
        )
        batch.create_check_constraint("held_nonneg", "held_count >= 0")
    op.create_table(
        "coupon_holds",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column(
            "coupon_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", fidele.kit.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["coupon_id"],
            ["coupons.id"],
            name=op.f("fk_coupon_holds_coupon_id_coupons"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_coupon_holds_customer_id_customers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["checkout_sessions.id"],
            name=op.f("fk_coupon_holds_session_id_checkout_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "coupon_id", name=op.f("pk_coupon_holds")),
    )
    op.create_index("ix_coupon_holds_coupon_customer", "coupon_holds", ["coupon_id", "customer_id"])


def downgrade() -> None:
    op.drop_index("ix_coupon_holds_coupon_customer", table_name="coupon_holds")
    op.drop_table("coupon_holds")
    with op.batch_alter_table("coupons") as batch:
        batch.drop_constraint("held_nonneg", type_="check")
        batch.drop_constraint("held_le_limit", type_="check")
        batch.drop_column("held_count")
