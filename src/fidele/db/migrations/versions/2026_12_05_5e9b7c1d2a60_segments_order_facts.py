"""segments: customer_order_facts (a customer's counted orders summed up, and their five most
recent order times), filled from the existing orders

Revision ID: 5e9b7c1d2a60
Revises: d3a1f0c2b7e4
Create Date: 2026-12-05 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fidele.kit.types import UTCDateTime

revision: str = "5e9b7c1d2a60"
down_revision: str | None = "d3a1f0c2b7e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
RECENT_K = 5
RECENT = ", ".join(f"recent_{k}" for k in range(1, RECENT_K + 1))
PICKS = ", ".join(f"max(CASE WHEN rn = {k} THEN placed_at END)" for k in range(1, RECENT_K + 1))
BACKFILL = f"""
INSERT INTO customer_order_facts (customer_id, merchant_id, orders_count, spent, first_at,
    last_at, {RECENT})
SELECT customer_id, max(merchant_id), count(*), sum(net), min(placed_at), max(placed_at), {PICKS}
FROM (SELECT customer_id, merchant_id, placed_at, total - refunded_total AS net,
             row_number() OVER (PARTITION BY customer_id ORDER BY placed_at DESC, id DESC) AS rn
      FROM orders WHERE status <> 'cancelled') ranked
GROUP BY customer_id
"""


def upgrade() -> None:
    op.create_table(
        "customer_order_facts",
        sa.Column("customer_id", BIGINT, nullable=False),
        sa.Column("merchant_id", BIGINT, nullable=False),
        sa.Column("orders_count", BIGINT, nullable=False),
        sa.Column("spent", BIGINT, nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=True),
        sa.Column("last_at", UTCDateTime(), nullable=True),
        *(sa.Column(f"recent_{k}", UTCDateTime(), nullable=True) for k in range(1, RECENT_K + 1)),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_order_facts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_customer_order_facts_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_order_facts")),
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_table("customer_order_facts")
