"""Ingestion benchmark (prints figures; not a test). Needs PostgreSQL at 127.0.0.1:5432
(trust auth, user postgres) and pgbench. Creates and drops its own scratch databases.

1. Bulk import of N orders (default 1,000,000; ~200k customers, 1-5 lines each) from a
   generated Parquet with `fidele import orders`, against a bare COPY of the same rows into a
   plain table in the same run.
2. POST /v1/orders over HTTP (uvicorn via `fidele serve`, 1 and 2 workers), 16 concurrent
   clients for 30 s from a second process, against pgbench tpcb-like at 16 clients; then an
   open-loop client paced at 500 requests/s.

    .venv/bin/python bench/ingest.py [--orders 1000000] [--seconds 30] [--skip-http]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import psycopg

PG = "postgresql://postgres@127.0.0.1:5432"
BIN = Path(sys.executable).parent
HERE = Path(__file__).parent


def createdb(name: str) -> str:
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", name], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
    return f"{PG}/{name}"


def dropdb(name: str) -> None:
    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", name], check=False
    )


def fidele(url: str, *args: str) -> str:
    env = {**os.environ, "FIDELE_DATABASE_URL": url, "FIDELE_EMBEDDED_WORKER": "false"}
    done = subprocess.run([str(BIN / "fidele"), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"fidele {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def generate(n_orders: int, path: Path, seed: int = 7) -> int:
    """One row per line: ~200k customers, 1-5 lines per order; returns the row count."""
    rng = np.random.default_rng(seed)
    n_lines = rng.integers(1, 6, n_orders)
    order_idx = np.repeat(np.arange(n_orders), n_lines)
    rows = len(order_idx)
    qty = rng.integers(1, 4, rows)
    price = rng.integers(300, 9000, rows)
    sub = np.bincount(order_idx, weights=qty * price, minlength=n_orders).astype(np.int64)
    shipping = np.where(sub > 5000, 0, 490)
    total = sub + shipping
    seconds = rng.integers(0, 2 * 365 * 86400, n_orders) + 1_704_067_200  # from 2024-01-01
    frame = pl.DataFrame(
        {
            "id": [f"b-{i}" for i in order_idx],
            "customer_id": [f"c-{c}" for c in rng.integers(0, 200_000, n_orders)[order_idx]],
            "placed_at": pl.Series(seconds[order_idx] * 1000, dtype=pl.Int64)
            .cast(pl.Datetime("ms", "UTC"))
            .dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "currency": "EUR",
            "product_id": [f"p-{p}" for p in rng.integers(0, 2000, rows)],
            "quantity": qty,
            "unit_price": price,
            "shipping": shipping[order_idx],
            "discounts": 0,
            "tax": 0,
            "total": total[order_idx],
        }
    )
    frame.write_parquet(path)
    return rows


def bare_copy(url: str, path: Path) -> float:
    """COPY the file's rows into a plain table (no index, no constraint): the reference."""
    frame = pl.read_parquet(path)
    buf = io.BytesIO()
    frame.write_csv(buf, include_header=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bare (id text, customer_id text, placed_at timestamptz, "
            "currency text, product_id text, quantity int, unit_price bigint, "
            "shipping bigint, discounts bigint, tax bigint, total bigint)"
        )
        t0 = time.perf_counter()
        with conn.cursor().copy("COPY bare FROM STDIN (FORMAT csv)") as copy:
            copy.write(buf.getvalue())
        return time.perf_counter() - t0


def bench_import(n_orders: int, batch: int) -> dict[str, float]:
    name = f"fidele_bench_import_{os.getpid()}"
    url = createdb(name)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "orders.parquet"
            rows = generate(n_orders, path)
            sqla = url.replace("postgresql://", "postgresql+psycopg://")
            merchant = json.loads(fidele(sqla, "merchant", "create", "Bench", "--json"))
            t0 = time.perf_counter()
            out = fidele(
                sqla,
                "import",
                "orders",
                str(path),
                "--merchant",
                str(merchant["merchant_id"]),
                "--batch-size",
                str(batch),
                "--json",
            )
            took = time.perf_counter() - t0
            summary = json.loads(out)
            copy = bare_copy(url, path)
    finally:
        dropdb(name)
    return {
        "orders": n_orders,
        "rows": rows,
        "created": summary["created"],
        "import_s": took,
        "orders_per_s": n_orders / took,
        "copy_s": copy,
        "copy_rows_per_s": rows / copy,
        "ratio_to_copy": took / copy,
    }


def pgbench(seconds: int, clients: int = 16) -> float:
    name = f"fidele_bench_pgbench_{os.getpid()}"
    createdb(name)
    try:
        subprocess.run(
            ["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-i", "-q", "-s", str(clients), name],
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            [
                "pgbench",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-c",
                str(clients),
                "-j",
                "2",
                "-T",
                str(seconds),
                "-b",
                "tpcb-like",
                name,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        dropdb(name)
    return float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]


def load(url: str, key: str, seconds: int, run: str, *, rate: float = 0.0) -> dict:
    args = [
        sys.executable,
        str(HERE / "load.py"),
        "--url",
        url,
        "--key",
        key,
        "--seconds",
        str(seconds),
        "--run",
        run,
    ]
    if rate:
        args += ["--rate", str(rate)]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr[-1500:]}
    return json.loads(done.stdout)


def bench_http(seconds: int, workers: int) -> dict[str, dict]:
    name = f"fidele_bench_http_{os.getpid()}"
    url = createdb(name).replace("postgresql://", "postgresql+psycopg://")
    env = {**os.environ, "FIDELE_DATABASE_URL": url, "FIDELE_EMBEDDED_WORKER": "false"}
    try:
        merchant = json.loads(fidele(url, "merchant", "create", "Bench", "--json"))
        key = json.loads(
            fidele(url, "apikey", "create", "--merchant", str(merchant["merchant_id"]), "--json")
        )["key"]
        server = subprocess.Popen(
            [
                str(BIN / "fidele"),
                "serve",
                "--port",
                "8765",
                "--workers",
                str(workers),
                "--no-access-log",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait("http://127.0.0.1:8765/healthz")
            base = "http://127.0.0.1:8765"
            load(base, key, 3, f"warm{workers}")
            closed = load(base, key, seconds, f"c{workers}")
            print(f"  workers={workers} closed 16:", json.dumps(closed), flush=True)
            paced = load(base, key, seconds, f"p{workers}", rate=500)
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        dropdb(name)
    return {"closed_16": closed, "paced_500": paced}


def _wait(health: str) -> None:
    import httpx

    for _ in range(100):
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("fidele serve did not start")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=1_000_000)
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--skip-import", action="store_true")
    p.add_argument("--skip-http", action="store_true")
    args = p.parse_args()
    if not args.skip_import:
        print("import:", json.dumps(bench_import(args.orders, args.batch_size)), flush=True)
    if not args.skip_http:
        print("pgbench tpcb-like 16 clients tps:", pgbench(args.seconds), flush=True)
        for workers in (1, 2):
            print(
                f"http workers={workers}:",
                json.dumps(bench_http(args.seconds, workers)),
                flush=True,
            )


if __name__ == "__main__":
    main()
