"""feedback: surveys, survey answers, reviews

Revision ID: 5b7e2c9a4f10
Revises: 5e9b7c1d2a60
Create Date: 2026-12-05 03:20:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import fidele.kit.types

revision: str = "5b7e2c9a4f10"
down_revision: str | None = "5e9b7c1d2a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = fidele.kit.types.UTCDateTime(timezone=True)
JSON = fidele.kit.types.JSONType


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="RESTRICT",
    )


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("title", JSON, nullable=False),
        sa.Column("questions", JSON, nullable=False),
        sa.Column("link_days", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        _fk("surveys", "merchant_id", "merchants"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("merchant_id", "code", name=op.f("uq_surveys_merchant_id_code")),
    )
    op.create_table(
        "survey_answers",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("survey_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("occasion", sa.String(length=200), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("answers", JSON, nullable=False),
        sa.Column("locale", sa.String(length=5), nullable=False),
        sa.Column("answered_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        _fk("survey_answers", "merchant_id", "merchants"),
        _fk("survey_answers", "survey_id", "surveys"),
        _fk("survey_answers", "customer_id", "customers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_answers")),
        sa.UniqueConstraint(
            "survey_id",
            "customer_id",
            "occasion",
            name=op.f("uq_survey_answers_survey_id_customer_id_occasion"),
        ),
    )
    op.create_index(
        "ix_survey_answers_survey_answered", "survey_answers", ["survey_id", "answered_at"]
    )
    op.create_index("ix_survey_answers_customer", "survey_answers", ["customer_id"])
    op.create_table(
        "reviews",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("merchant_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("order_id", ID, nullable=False),
        sa.Column("product_id", sa.String(length=255), nullable=False),
        sa.Column("product_name", sa.String(length=500), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("locale", sa.String(length=5), nullable=False),
        sa.Column("posted_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        _fk("reviews", "merchant_id", "merchants"),
        _fk("reviews", "customer_id", "customers"),
        _fk("reviews", "order_id", "orders"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("order_id", "product_id", name=op.f("uq_reviews_order_id_product_id")),
    )
    op.create_index("ix_reviews_merchant_id_id", "reviews", ["merchant_id", "id"])
    op.create_index("ix_reviews_customer", "reviews", ["customer_id"])
    _default_surveys()


# The built-in surveys as of this revision (fidele.feedback.domain.standard_questions): every
# existing merchant gets them, as a new merchant does (the ready-made journeys link to them).
_TEXTS = {
    "nps": (
        {"en": "Your opinion", "fr": "Votre avis"},
        {
            "en": "How likely are you to recommend us to a friend?",
            "fr": "Quelle est la probabilité que vous nous recommandiez à un proche ?",
        },
        {"en": "Why this score?", "fr": "Pourquoi cette note ?"},
        (0, 10),
    ),
    "csat": (
        {"en": "Your satisfaction", "fr": "Votre satisfaction"},
        {
            "en": "How satisfied are you with your experience?",
            "fr": "Êtes-vous satisfait de votre expérience ?",
        },
        {"en": "Tell us more", "fr": "Dites-nous en plus"},
        (1, 5),
    ),
}


def _default_surveys() -> None:
    bind = op.get_bind()
    surveys = sa.table(
        "surveys",
        sa.column("merchant_id", ID),
        sa.column("code", sa.String),
        sa.column("kind", sa.String),
        sa.column("title", JSON),
        sa.column("questions", JSON),
        sa.column("link_days", sa.Integer),
        sa.column("active", sa.Boolean),
        sa.column("created_at", WHEN),
        sa.column("updated_at", WHEN),
    )
    now = datetime.now(UTC)
    merchants = [row[0] for row in bind.execute(sa.text("SELECT id FROM merchants"))]
    rows = []
    for merchant_id in merchants:
        for code, (title, question, why, (low, high)) in _TEXTS.items():
            questions = [
                {
                    "id": "score",
                    "type": "scale",
                    "label": question,
                    "min": low,
                    "max": high,
                    "required": True,
                },
                {"id": "comment", "type": "text", "label": why, "required": False},
            ]
            rows.append(
                {
                    "merchant_id": merchant_id,
                    "code": code,
                    "kind": code,
                    "title": title,
                    "questions": questions,
                    "link_days": 30,
                    "active": True,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if rows:
        op.bulk_insert(surveys, rows)


def downgrade() -> None:
    op.drop_index("ix_reviews_customer", table_name="reviews")
    op.drop_index("ix_reviews_merchant_id_id", table_name="reviews")
    op.drop_table("reviews")
    op.drop_index("ix_survey_answers_customer", table_name="survey_answers")
    op.drop_index("ix_survey_answers_survey_answered", table_name="survey_answers")
    op.drop_table("survey_answers")
    op.drop_table("surveys")
