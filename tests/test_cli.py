from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from fidele.cli import app
from fidele.settings import get_settings


@pytest.fixture
def cli(committed_engine: Engine, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(
        "FIDELE_DATABASE_URL", committed_engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("FIDELE_SECRET_KEY", "cli-secret")
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    yield run
    get_settings.cache_clear()


def test_merchant_and_key_lifecycle(cli, committed_engine: Engine) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from fidele.app import create_app

    m = json.loads(cli("merchant", "create", "Boutique", "--json"))
    assert set(m) >= {"programme_id", "merchant_id", "webhook_secret"}
    m2 = json.loads(
        cli("merchant", "create", "Annexe", "--programme", str(m["programme_id"]), "--json")
    )
    assert m2["programme_id"] == m["programme_id"]
    key = json.loads(
        cli(
            "apikey",
            "create",
            "--merchant",
            str(m["merchant_id"]),
            "--scopes",
            "read,write",
            "--json",
        )
    )["key"]
    listed = json.loads(cli("apikey", "list", "--merchant", str(m["merchant_id"]), "--json"))
    assert len(listed) == 1 and key.split("_")[1] == listed[0]["prefix"]
    assert key not in json.dumps(listed)
    app_ = create_app(get_settings(), engine=committed_engine, start_worker=False)
    with TestClient(app_) as client:
        h = {"Authorization": f"Bearer {key}"}
        assert client.get("/v1/customers", headers=h).status_code == 200
        cli("apikey", "revoke", listed[0]["prefix"])
        assert client.get("/v1/customers", headers=h).status_code == 401


def test_help_on_every_command() -> None:
    runner = CliRunner()
    for args in (
        ["--help"],
        ["merchant", "--help"],
        ["apikey", "create", "--help"],
        ["db", "upgrade", "--help"],
        ["serve", "--help"],
        ["worker", "--help"],
    ):
        assert runner.invoke(app, args).exit_code == 0


def test_worker_once_reports_jobs(cli) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(cli("worker", "--once", "--json"))
    assert any(r["job"] == "outbox.deliver" and r["ran"] for r in rows)
