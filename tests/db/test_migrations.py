from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from fidele.db.base import Base, import_all_models


def test_migrations_match_the_models(engine: Engine) -> None:
    """`alembic check`: the migrated schema (upgraded from empty) has no drift from the models."""
    import_all_models()
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diffs = compare_metadata(ctx, Base.metadata)
    assert diffs == []
