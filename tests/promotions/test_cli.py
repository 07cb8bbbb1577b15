from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fidele.cli import app
from fidele.kit import codes
from fidele.settings import get_settings


def test_batch_writes_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIDELE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    runner = CliRunner()
    made = runner.invoke(app, ["merchant", "create", "Shop", "--json"])
    assert made.exit_code == 0, made.output
    out = tmp_path / "codes.csv"
    r = runner.invoke(
        app, ["coupons", "batch", "3", "--merchant", "1", "--value", "500", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3
    assert all(codes.is_well_formed(row["code"], prefix="C") for row in rows)
    gc = runner.invoke(app, ["gift-cards", "issue", "2500", "--merchant", "1", "--json"])
    assert gc.exit_code == 0, gc.output
    get_settings.cache_clear()
