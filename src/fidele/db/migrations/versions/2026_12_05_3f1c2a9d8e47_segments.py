"""segments: saved segments, their members, dirty customers; built-in RFM segments for every
existing merchant (members computed by the first ``segments.refresh``)

Revision ID: 3f1c2a9d8e47
Revises: 211ebe53a440
Create Date: 2026-12-05 00:20:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from fidele.kit.types import UTCDateTime

revision: str = "3f1c2a9d8e47"
down_revision: str | None = "211ebe53a440"  # messaging (merged); main was 7ea55b361597
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# The RFM names as of this revision (fidele.analytics.rfm.DEFAULT_SEGMENTS).
RFM_NAMES = (
    "Champions",
    "Loyal",
    "Can't lose them",
    "At risk",
    "Potential loyalists",
    "New customers",
    "Promising",
    "Need attention",
    "About to sleep",
    "Hibernating",
    "Lost",
)


def upgrade() -> None:
    segments = op.create_table(
        "segments",
        sa.Column("merchant_id", BIGINT, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("rule", JSON, nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("depends", sa.String(length=200), nullable=False),
        sa.Column("member_count", BIGINT, nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("id", BIGINT, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_segments_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("merchant_id", "name", name=op.f("uq_segments_merchant_id_name")),
    )
    op.create_table(
        "segment_members",
        sa.Column("segment_id", BIGINT, nullable=False),
        sa.Column("customer_id", BIGINT, nullable=False),
        sa.Column("merchant_id", BIGINT, nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_members_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_segment_members_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_segment_members_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("segment_id", "customer_id", name=op.f("pk_segment_members")),
    )
    op.create_index("ix_segment_members_customer", "segment_members", ["customer_id"])
    op.create_table(
        "segment_dirty",
        sa.Column("customer_id", BIGINT, nullable=False),
        sa.Column("merchant_id", BIGINT, nullable=False),
        sa.Column("kinds", sa.Integer(), nullable=False),
        sa.Column("marked_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_segment_dirty_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_segment_dirty_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_segment_dirty")),
    )
    conn = op.get_bind()
    merchants = [row[0] for row in conn.execute(sa.text("SELECT id FROM merchants ORDER BY id"))]
    now = datetime.now(UTC)
    rows = [
        {
            "merchant_id": m,
            "name": name,
            "rule": {"field": "insights.segment", "op": "eq", "value": name},
            "builtin": True,
            "depends": "insights",
            "member_count": 0,
            "computed_at": None,
            "created_at": now,
            "updated_at": now,
        }
        for m in merchants
        for name in RFM_NAMES
    ]
    if rows:
        op.bulk_insert(segments, rows)


def downgrade() -> None:
    op.drop_table("segment_dirty")
    op.drop_index("ix_segment_members_customer", table_name="segment_members")
    op.drop_table("segment_members")
    op.drop_table("segments")
