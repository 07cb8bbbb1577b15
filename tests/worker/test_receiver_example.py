"""The README's webhook receiver, run as written: it deduplicates a redelivery (the message
POSTed again after its ``sent`` write was lost, as after a database failover) on
``X-Fidele-Delivery`` and refuses a bad signature."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from fidele.db.session import make_sessionmaker
from fidele.kit.clock import SystemClock
from fidele.outbox.models import OutboxMessage
from fidele.outbox.service import deliver_due
from fidele.webhooks import service as webhooks
from tests.fixtures.factories import SECRET
from tests.worker.test_processes import queue_webhook

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_receiver() -> dict[str, Any]:
    block = re.search(
        r"<!-- receiver-example -->\n```python\n(.*?)```", README.read_text(), re.DOTALL
    )
    assert block, "the receiver example is missing from the README"
    namespace: dict[str, Any] = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.chdir(tmp_path)  # the example keeps its deliveries.db in the working directory
    ns = readme_receiver()
    applied: list[dict[str, Any]] = []
    ns["apply"].__globals__["apply"] = applied.append  # the effect, observed
    ns["applied"] = applied

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(ns["receive"](dict(self.headers), body))
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ns["url"] = f"http://127.0.0.1:{server.server_port}/hook"
    webhooks.server_secret["value"] = SECRET
    yield ns
    webhooks.server_secret["value"] = None
    server.shutdown()


def test_readme_receiver_deduplicates_a_redelivery(
    committed_engine: Engine, example: dict[str, Any]
) -> None:
    now = SystemClock().now()
    tenant, msg_id = queue_webhook(committed_engine, example["url"], now)
    example["SECRET"] = tenant.webhook_secret.encode()
    factory = make_sessionmaker(committed_engine)
    assert deliver_due(factory, now) == 1
    with Session(committed_engine) as s:  # the `sent` write lost: the message is due again
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == msg_id)
            .values(status="pending", sent_at=None)
        )
        s.commit()
    assert deliver_due(factory, now) == 1  # POSTed twice, with the same X-Fidele-Delivery
    assert example["applied"] == [{"topic": "loyalty.points_earned"}]
    with closing(sqlite3.connect("deliveries.db")) as db:
        assert db.execute("SELECT id FROM deliveries").fetchall() == [(str(msg_id),)]
    forged = httpx.post(
        example["url"],
        content=b'{"topic": "loyalty.points_earned"}',
        headers={"X-Fidele-Signature": "sha256=00", "X-Fidele-Delivery": "999"},
    )
    assert forged.status_code == 401 and len(example["applied"]) == 1
