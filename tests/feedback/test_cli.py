"""`fidele surveys ...` through the installed console script, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from fidele.app import create_app
from fidele.db.engine import make_engine
from fidele.settings import Settings, get_settings
from tests.fixtures.console import fidele, user_env

FORM = """
code: welcome_form
kind: form
title: {en: Welcome, fr: Bienvenue}
questions:
  - id: found_us
    type: choice
    label: {en: "How did you find us?", fr: "Comment nous avez-vous connus ?"}
    options:
      - {value: search, label: {en: Search}}
      - {value: friend, label: {en: A friend}}
"""


def test_list_create_link_results(empty_database_url: str, tmp_path: Path) -> None:
    # the pages (served here in-process) check links with the process's settings
    env = user_env(empty_database_url, FIDELE_SECRET_KEY=get_settings().secret_key)
    made = fidele("merchant", "create", "CLI shop", "--json", env=env)
    assert made.returncode == 0, made.stderr
    merchant = str(json.loads(made.stdout)["merchant_id"])

    listed = fidele("surveys", "list", "--merchant", merchant, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [s["code"] for s in json.loads(listed.stdout)] == ["nps", "csat"]

    spec = tmp_path / "form.yaml"
    spec.write_text(FORM)
    created = fidele("surveys", "create", str(spec), "--merchant", merchant, "--json", env=env)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["questions"] == 1
    again = fidele("surveys", "create", str(spec), "--merchant", merchant, env=env)
    assert again.returncode == 1 and "exists" in again.stderr
    spec.write_text("code: Bad Code\nkind: nps\n")
    bad = fidele("surveys", "create", str(spec), "--merchant", merchant, env=env)
    assert bad.returncode == 1 and "code" in bad.stderr

    nobody = fidele(
        "surveys",
        "link",
        "nps",
        "--customer",
        "c1",
        "--occasion",
        "o1",
        "--merchant",
        merchant,
        env=env,
    )
    assert nobody.returncode == 1 and "not found" in nobody.stderr

    # a customer, then their answer through the page, read back by `surveys results`
    settings = Settings(
        env="test", database_url=empty_database_url, secret_key=get_settings().secret_key
    )
    engine = make_engine(empty_database_url)
    app = create_app(settings, engine=engine, start_worker=False)
    with TestClient(app) as client:
        key = fidele("apikey", "create", "--merchant", merchant, "--json", env=env)
        assert key.returncode == 0, key.stderr
        client.headers["Authorization"] = f"Bearer {json.loads(key.stdout)['key']}"
        assert client.put("/v1/customers/c1", json={}).status_code == 201
        link = fidele(
            "surveys",
            "link",
            "nps",
            "--customer",
            "c1",
            "--occasion",
            "o1",
            "--merchant",
            merchant,
            "--json",
            env=env,
        )
        assert link.returncode == 0, link.stderr
        url = json.loads(link.stdout)["url"].removeprefix("http://127.0.0.1:8000")
        assert client.post(url, data={"q_score": "10", "q_comment": "great"}).status_code == 200
    engine.dispose()

    results = fidele("surveys", "results", "nps", "--merchant", merchant, "--json", env=env)
    assert results.returncode == 0, results.stderr
    got = json.loads(results.stdout)
    assert got["nps"]["promoters"] == 1 and got["nps"]["nps"] == 100.0
    assert got["texts"][0]["text"] == "great"
    table = fidele("surveys", "results", "nps", "--merchant", merchant, env=env)
    assert table.returncode == 0 and "promoters" in table.stdout
