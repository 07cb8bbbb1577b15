"""The HTTP contract, fuzzed from its own /openapi.json the way a user finds its faults: the
schemathesis CLI with every check (``--checks all``: no 5xx, documented statuses and content
types, responses matching their schemas, schema-valid requests accepted and schema-violating
ones refused, 405 with a full ``Allow`` on undeclared methods, ...) against a served
``fidele serve`` process, on SQLite and PostgreSQL.

The examples per operation are few (``EXAMPLES``) so the suite stays fast; the seed is fixed,
so a failure here replays the same requests. ``schemathesis.toml`` at the root lists the only
operations where a schema-valid request may be a 422 (rules JSON Schema cannot say).

Also here, because it needs a real server: a chunked body past the limit is a 413."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from fidele.kit.clock import FrozenClock
from tests.fixtures.factories import make_tenant

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EXAMPLES = 5
SEED = "20261204"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(committed_engine: Engine, clock: FrozenClock) -> Iterator[tuple[str, str]]:
    """A ``fidele serve`` process on the test database; yields its URL and an admin key."""
    with Session(committed_engine) as s:
        key = make_tenant(s, clock.now()).key
        s.commit()
    port = _free_port()
    env = {
        **os.environ,
        "FIDELE_DATABASE_URL": committed_engine.url.render_as_string(hide_password=False),
        "FIDELE_SECRET_KEY": "test-secret-key",
        "FIDELE_EMBEDDED_WORKER": "false",
    }
    proc = subprocess.Popen(
        [str(BIN / "fidele"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail("fidele serve did not answer /healthz within 60 s")
        yield url, key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_schemathesis_all_checks_pass(served: tuple[str, str], tmp_path: Path) -> None:
    url, key = served
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "--config-file",
            str(ROOT / "schemathesis.toml"),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            SEED,
            "--no-color",
            "-H",
            f"Authorization: Bearer {key}",
        ],
        cwd=tmp_path,  # its cache and reports stay out of the repository
        capture_output=True,
        text=True,
        timeout=900,
    )
    # the failures come before schemathesis' long closing notes: keep both ends
    out = result.stdout
    (tmp_path / "schemathesis.txt").write_text(out)
    start = out.find("FAILURES")
    summary = out[-4000:]
    report = (out[start : start + 8000] + "\n...\n" if start >= 0 else "") + summary
    assert result.returncode == 0, report
    assert " passed" in summary and "failure" not in summary.lower(), summary


def test_chunked_body_past_the_limit_is_413(served: tuple[str, str]) -> None:
    url, key = served

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server sees it only as it streams
        yield b'{"type": "x", "customer_id": "c1", "occurred_at": "2026-01-01T00:00:00Z", "p": "'
        for _ in range(32):
            yield b"a" * 65536
        yield b'"}'

    r = httpx.post(
        f"{url}/v1/events",
        content=chunks(),
        headers={
            "Authorization": f"Bearer {key}",
            "Idempotency-Key": "chunked-1",
            "Content-Type": "application/json",
        },
        timeout=60,
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "payload_too_large"
