"""The loyalty commands against a scratch SQLite file (the CLI owns its transactions)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from fidele.cli import app
from fidele.db.session import transaction
from fidele.kit import cli as k
from fidele.settings import get_settings
from tests.fixtures.factories import make_tenant

runner = CliRunner()


@pytest.fixture
def programme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv("FIDELE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    with transaction(k.factory()) as session:
        tenant = make_tenant(session, k.clock.now())
    yield tenant.programme_id
    get_settings.cache_clear()


def test_rules_load_refuses_invalid_file_and_keeps_rules(programme: int, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "settings:\n  points_per_unit: 2\nrules:\n  - id: r\n    type: action\n"
        "    event_type: review_posted\n    points: lots\n"
    )
    result = runner.invoke(
        app, ["loyalty", "rules", "load", str(bad), "--programme", str(programme)]
    )
    assert result.exit_code == 1
    assert "bad.yaml:7" in result.output
    good = tmp_path / "good.yaml"
    good.write_text("settings:\n  points_per_unit: 2\n")
    ok = runner.invoke(app, ["loyalty", "rules", "load", str(good), "--programme", str(programme)])
    assert ok.exit_code == 0, ok.output
    shown = runner.invoke(app, ["loyalty", "rules", "show", "--programme", str(programme)])
    assert '"points_per_unit": 2' in shown.output


def test_verify_exits_non_zero_on_mismatch(programme: int) -> None:
    assert runner.invoke(app, ["loyalty", "verify"]).exit_code == 0
    with transaction(k.factory()) as session:
        session.execute(
            text(
                "INSERT INTO ledger_accounts (key, programme_id, kind, unit, balance, "
                "allow_negative, created_at) VALUES ('x', :p, 'available', 'PTS', 5, 0, "
                "'2026-01-01 00:00:00')"
            ),
            {"p": programme},
        )
    result = runner.invoke(app, ["loyalty", "verify", "--json"])
    assert result.exit_code == 1
    assert '"ok": false' in result.output


def test_settlement_and_replay_commands(programme: int) -> None:
    r = runner.invoke(app, ["loyalty", "settlement", "--programme", str(programme), "--json"])
    assert r.exit_code == 0, r.output
    assert '"total": 0' in r.output
    r = runner.invoke(app, ["loyalty", "replay", "--programme", str(programme), "--json"])
    assert r.exit_code == 0, r.output
