"""The installed ``fidele`` console script, run as a user runs it (a subprocess), not the Typer
app: ``fidele demo`` once failed there alone, because the script loads only the modules of the
command it runs."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import typer.main

from fidele import __version__
from fidele.cli import app
from tests.fixtures.console import FIDELE, fidele, user_env


def _top_level_commands() -> list[str]:
    # From the full command tree, so that a new command is covered without editing this test.
    return sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_the_console_script_is_installed() -> None:
    assert FIDELE.is_file(), f"{FIDELE} missing: pip install -e . installs it"


@pytest.mark.parametrize("command", _top_level_commands())
def test_every_top_level_command_answers_help(command: str, tmp_path: Path) -> None:
    result = fidele(command, "--help", env=user_env(f"sqlite:///{tmp_path / 'x.db'}"))
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"Usage: fidele {command}" in result.stdout
    assert "unexpected extra argument" not in result.stdout + result.stderr


def test_root_help_lists_every_command_and_version(tmp_path: Path) -> None:
    env = user_env(f"sqlite:///{tmp_path / 'x.db'}")
    result = fidele("--help", env=env)
    assert result.returncode == 0, result.stderr
    for command in _top_level_commands():
        assert command in result.stdout
    version = fidele("--version", env=env)
    assert (version.returncode, version.stdout.strip()) == (0, f"fidele {__version__}")


def test_demo_builds_a_shop_end_to_end(empty_database_url: str) -> None:
    env = user_env(empty_database_url)
    first = fidele("demo", "--customers", "50", "--no-serve", "--json", env=env)
    assert first.returncode == 0, first.stderr
    shop = json.loads(first.stdout)
    assert shop["created"] is True
    assert shop["api_key"].startswith("fdl_")
    assert shop["url"] == "http://127.0.0.1:8000"
    assert isinstance(shop["merchant_id"], int) and isinstance(shop["programme_id"], int)
    counts = shop["counts"]
    assert counts["customers"] == 50
    assert counts["orders"] >= 50 and counts["delivered"] > 0

    # the same database again: the shop is found, not built twice, and a fresh key is printed
    again = json.loads(fidele("demo", "--customers", "50", "--no-serve", "--json", env=env).stdout)
    assert again["created"] is False
    assert (again["merchant_id"], again["programme_id"]) == (
        shop["merchant_id"],
        shop["programme_id"],
    )
    assert again["api_key"] != shop["api_key"]
    keys = fidele("apikey", "list", "--merchant", str(shop["merchant_id"]), "--json", env=env)
    prefixes = {row["prefix"] for row in json.loads(keys.stdout)}
    assert {shop["api_key"].split("_")[1], again["api_key"].split("_")[1]} <= prefixes


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_taken_port_fails_at_once_with_a_clear_message(
    command: str, empty_database_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = fidele(command, "--port", str(port), env=user_env(empty_database_url))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"127.0.0.1:{port} is already in use" in output
    assert "--port" in output
    assert "Application startup complete" not in output
    if empty_database_url.startswith("sqlite"):
        # refused before touching the database (the demo did not build minutes of shop first)
        assert not (tmp_path / "fidele.db").exists()
