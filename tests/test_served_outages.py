"""A served process while the database is held or gone (issue #12.3, #20.6).

- SQLite has one write lock: reads must not take it (a deferred BEGIN), and a job must hold it
  only briefly (short transactions), so requests do not queue behind a long catch-up.
- PostgreSQL gone (connections terminated, new ones refused): requests answer 503 in the JSON
  error shape with Retry-After, /healthz says 503, and all is well once it is back."""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL
from tests.fixtures.served import FIDELE, Served, fresh_database, serve, timed

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)
MEMBERS = 1500


def _orders_csv(path: Path, n: int) -> Path:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["id", "customer_id", "placed_at", "currency", "lines", "total"])
        line = json.dumps([{"product_id": "p", "quantity": 1, "unit_price": 5000}])
        for i in range(n):
            out.writerow([f"o{i}", f"c{i}", "2026-01-10T12:00:00+00:00", "EUR", line, 5000])
    return path


def _lease_owner(db: Path, job: str) -> str | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT owner FROM job_leases WHERE name = ?", (job,)).fetchone()
    return row[0] if row else None


def _wait_for(cond: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_requests_do_not_queue_behind_a_long_catch_up_on_sqlite(tmp_path: Path) -> None:
    """The SQLite-only finding: on PostgreSQL a job never held a lock requests needed."""
    with fresh_database("sqlite", None, tmp_path) as url, serve(url, tmp_path) as served:
        db = Path(make_url(url).database or "")
        served.cli("import", "orders", str(_orders_csv(tmp_path / "o.csv", MEMBERS)), "--json")
        served.cli("loyalty", "replay", "--programme", "1", "--json")
        with sqlite3.connect(db) as conn:  # every member's tier review is due: real work
            conn.execute("UPDATE loyalty_members SET tier_review_at = '2026-01-01 00:00:00'")
        worker = subprocess.Popen(
            [FIDELE, "worker", "--once", "--json"],
            env=served.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for(lambda: _lease_owner(db, "loyalty.catch_up") is not None, 600, "catch-up")
            latencies = _measure_while(served, lambda: _lease_owner(db, "loyalty.catch_up"))
        finally:
            output = worker.communicate(timeout=900)[0].decode(errors="replace")
        assert worker.returncode == 0, output
        runs = {r["job"]: r for r in json.loads(output.strip().splitlines()[-1])}
        assert runs["loyalty.catch_up"]["result"] == MEMBERS, runs
        log.info("during the catch-up: %d requests, slowest %.2f s", *latencies)


def _measure_while(served: Served, running: Callable[[], object]) -> tuple[int, float]:
    """A read and a write through the served process, over and over while the job runs: each
    answers 2xx (a wait for the write lock past its bound would be a 503)."""
    slowest, count = 0.0, 0
    with served.client() as c:
        while running() and count < 60:
            path = f"/v1/customers/during-{count}"
            got, took = timed(lambda p=path: c.put(p, json={}))  # type: ignore[misc]
            assert got.status_code == 201, got.text
            slowest = max(slowest, took)
            got, took = timed(lambda: c.get("/v1/customers/c1"))
            assert got.status_code == 200, got.text
            slowest = max(slowest, took)
            count += 2
    assert count >= 4, "the job ended before the requests could overlap it"
    return count, slowest


def test_sqlite_reads_pass_a_held_write_lock_and_writes_answer_503(tmp_path: Path) -> None:
    with fresh_database("sqlite", None, tmp_path) as url, serve(url, tmp_path) as served:
        assert served.call("PUT", "/v1/customers/c1", json={}).status_code == 201
        holder = sqlite3.connect(make_url(url).database or "", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            got, took = timed(lambda: served.call("GET", "/v1/customers/c1"))
            assert got.status_code == 200, got.text  # a read does not wait for the writer
            assert served.call("GET", "/healthz").status_code == 200
            got, took = timed(lambda: served.call("PUT", "/v1/customers/c2", json={}))
            assert got.status_code == 503, got.text
            assert got.json()["error"] == "busy" and got.headers["retry-after"]
            log.info("a write behind a held lock answered 503 after %.1f s", took)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert served.call("PUT", "/v1/customers/c2", json={}).status_code == 201


@pytest.mark.skipif(not PG_URL, reason="needs FIDELE_TEST_POSTGRES_URL")
def test_postgres_gone_answers_503_json_then_recovers(tmp_path: Path) -> None:
    assert PG_URL
    with fresh_database("postgres", PG_URL, tmp_path) as url, serve(url, tmp_path) as served:
        name = make_url(url).database
        assert served.call("PUT", "/v1/customers/c1", json={}).status_code == 201
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
            for method, path, body in [
                ("GET", "/v1/customers/c1", None),
                ("PUT", "/v1/customers/c2", {}),
                ("GET", "/v1/customers/c1", None),
            ]:
                got = served.call(method, path, json=body)
                assert got.status_code == 503, got.text
                assert got.json()["error"] == "unavailable", got.text
                assert int(got.headers["retry-after"]) > 0
            health = served.call("GET", "/healthz")
            assert health.status_code == 503, health.text
            assert health.json()["database"] == "unreachable"
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            _wait_for(lambda: _ok(served), 30, "the database to be back")
            assert served.call("PUT", "/v1/customers/c2", json={}).status_code == 201
            assert served.call("GET", "/v1/customers/c2").status_code == 200
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            admin.dispose()


def _ok(served: Served) -> bool:
    try:
        return served.call("GET", "/healthz").status_code == 200
    except httpx.HTTPError:
        return False
