from __future__ import annotations

import pytest
from pydantic import ValidationError

from fidele.settings import DEV_SECRET, Settings


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValidationError, match="FIDELE_SECRET_KEY"):
        Settings(env="production", secret_key=DEV_SECRET)
    assert Settings(env="production", secret_key="a-real-one").env == "production"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIDELE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("FIDELE_MAX_BODY_BYTES", "2048")
    s = Settings()
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.max_body_bytes == 2048
    assert not s.is_sqlite
