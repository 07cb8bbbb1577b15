"""Resumption: an import killed mid-way and run again completes with no duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.events.models import Event
from fidele.ingest.importers import runner
from fidele.kit.clock import FrozenClock
from fidele.orders.models import Order, OrderLine
from tests.fixtures.factories import Tenant, make_tenant
from tests.ingest.importing import order_row, write_csv, write_parquet


class Crash(Exception):
    pass


def totals(session: Session) -> tuple[int, int, int]:
    orders = session.scalar(select(func.count()).select_from(Order)) or 0
    lines = session.scalar(select(func.count()).select_from(OrderLine)) or 0
    placed = session.scalar(select(func.count()).where(Event.type == "order.placed")) or 0
    return orders, lines, placed


def test_crash_between_batches_then_rerun(
    factory: sessionmaker[Session],
    session: Session,
    tenant: Tenant,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    path = write_csv(tmp_path / "o.csv", [order_row(i) for i in range(50)])
    done = []

    def crash_after_two(n: int) -> None:
        done.append(n)
        if len(done) == 2:
            raise Crash

    opts = runner.Options("orders", batch_size=10)
    with pytest.raises(Crash):
        runner.run(factory, tenant.caller, path, opts, clock, progress=crash_after_two)
    assert totals(session) == (20, 20, 20)
    summary = runner.run(factory, tenant.caller, path, opts, clock)
    assert (summary.created, summary.unchanged, summary.rejected) == (30, 20, 0)
    assert totals(session) == (50, 50, 50)


def _fidele(db_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "FIDELE_DATABASE_URL": db_url, "FIDELE_SECRET_KEY": "test-secret-key"}
    cli = Path(sys.executable).parent / "fidele"
    return subprocess.Popen(
        [str(cli), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(Order)) or 0


def test_killed_process_then_rerun(
    committed_engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    """SIGKILL a real ``fidele import`` once its first batches are committed; run it again."""
    total = 6000
    with Session(committed_engine) as s:
        tenant = make_tenant(s, clock.now())
        s.commit()
    path = write_parquet(tmp_path / "o.parquet", [order_row(i) for i in range(total)])
    url = committed_engine.url.render_as_string(hide_password=False)
    args = [
        "import",
        "orders",
        str(path),
        "--merchant",
        str(tenant.merchant_id),
        "--batch-size",
        "100",
        "--json",
    ]
    proc = _fidele(url, *args)
    deadline = time.monotonic() + 60
    while _count(committed_engine) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _count(committed_engine)
    assert 0 < partial < total, "the import must be killed mid-way for this test to mean much"
    rerun = _fidele(url, *args)
    out, _ = rerun.communicate(timeout=120)
    summary = json.loads(out)
    assert summary["created"] + summary["unchanged"] == total
    assert summary["unchanged"] == partial
    with Session(committed_engine) as s:
        orders, lines, placed = totals(s)
    assert (orders, lines, placed) == (total, total, total)
