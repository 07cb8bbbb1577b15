"""``fidele storefront`` through the installed console script: a secret printed once, a token
that the served app accepts for that customer only, settings changed from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from fidele.app import create_app
from fidele.db.engine import make_engine
from fidele.settings import Settings
from fidele.storefront import domain
from tests.fixtures.console import fidele, user_env

SECRET_KEY = "cli-test-secret"


def test_secret_token_and_settings_from_the_command_line(empty_database_url: str) -> None:
    env = user_env(empty_database_url, FIDELE_SECRET_KEY=SECRET_KEY)
    assert fidele("db", "upgrade", env=env).returncode == 0
    made = fidele("merchant", "create", "CLI shop", "--json", env=env)
    merchant = str(json.loads(made.stdout)["merchant_id"])
    key = fidele("apikey", "create", "--merchant", merchant, "--json", env=env)
    api_key = json.loads(key.stdout)["key"]

    secret = fidele("storefront", "secret", "--merchant", merchant, env=env)
    assert secret.returncode == 0, secret.stderr
    secret_text = secret.stdout.strip()
    assert secret_text.startswith("sfsec_")

    done = fidele("storefront", "token", "--merchant", merchant, "--customer", "c1", env=env)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    claims = domain.verify(token, secret_text, datetime.now(UTC))
    assert (claims.merchant_id, claims.customer) == (int(merchant), "c1")
    assert 9 * 60 <= claims.expires - datetime.now(UTC).timestamp() <= 10 * 60
    longer = fidele("storefront", "token", "--merchant", merchant, "--customer", "c1",
                    "--minutes", "60", "--json", env=env)  # fmt: skip
    assert json.loads(longer.stdout)["token"] != token
    bad = fidele("storefront", "token", "--merchant", merchant, "--customer", "c1",
                 "--minutes", "0", env=env)  # fmt: skip
    assert bad.returncode == 1 and "minutes" in bad.stderr

    changed = fidele(
        "storefront", "settings", "--merchant", merchant, "--origin", "https://Shop.example/",
        "--launcher-en", "Points", "--json", env=env,
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    out = json.loads(changed.stdout)
    assert out["origins"] == ["https://shop.example"] and out["look"]["launcher_en"] == "Points"
    refused = fidele("storefront", "settings", "--merchant", merchant, "--origin", "shop", env=env)
    assert refused.returncode == 1 and "origins" in refused.stderr

    engine = make_engine(empty_database_url)
    try:
        app = create_app(
            Settings(env="test", database_url=empty_database_url, secret_key=SECRET_KEY,
                     embedded_worker=False),
            engine=engine,
            start_worker=False,
        )  # fmt: skip
        with TestClient(app) as client:
            auth = {"Authorization": f"Bearer {api_key}"}
            assert client.put("/v1/customers/c1", json={}, headers=auth).is_success
            me = client.get("/storefront/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200 and me.json()["customer_id"] == "c1"
            # rotating from the CLI retires the token at once
            assert fidele("storefront", "secret", "--merchant", merchant, env=env).returncode == 0
            again = client.get("/storefront/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert again.status_code == 401
    finally:
        engine.dispose()
