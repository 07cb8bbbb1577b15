"""Print the SQL round trips of one POST /v1/orders and one POST /v1/checkout/evaluate on a
scratch PostgreSQL database (createdb/dropdb -h 127.0.0.1 -U postgres). Not a test.

    .venv/bin/python bench/roundtrips.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).parent))
from checkout import CART, seed  # noqa: E402

from fidele.app import create_app  # noqa: E402
from fidele.settings import Settings  # noqa: E402

ORDER = {
    "id": "o-1",
    "customer_id": "c-1",
    "placed_at": "2026-01-05T10:00:00+01:00",
    "currency": "EUR",
    "lines": [{"product_id": "p1", "quantity": 2, "unit_price": 1500}],
    "shipping": 490,
    "total": 3490,
}


def trace(client: TestClient, engine: Any, label: str, path: str, body: dict) -> None:
    seen: list[str] = []
    listener = lambda *a: seen.append(a[2].split("\n")[0][:110])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    status = client.post(path, json=body).status_code
    event.remove(engine, "before_cursor_execute", listener)
    print(f"{label}: HTTP {status}, {len(seen)} statements (+ BEGIN/COMMIT)")
    for s in seen:
        print("   ", s)


def main() -> None:
    db = f"fidele_rt_{os.getpid()}"
    pg = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["createdb", *pg, db], check=True)
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    try:
        key = seed(url)
        app = create_app(Settings(database_url=url, embedded_worker=False))
        with TestClient(app, headers={"Authorization": f"Bearer {key}"}) as client:
            engine = app.state.engine
            for i in range(2):  # the second run shows the warm path (caches filled)
                trace(client, engine, f"order #{i + 1}", "/v1/orders", {**ORDER, "id": f"o-{i}"})
                trace(client, engine, f"evaluate #{i + 1}", "/v1/checkout/evaluate", CART)
            engine.dispose()
    finally:
        subprocess.run(["dropdb", *pg, "--force", db], check=False)


if __name__ == "__main__":
    main()
