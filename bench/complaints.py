"""Complaint figures (``GET /v1/complaints/stats``: rates, times, breaches, complainant
retention) on a demo shop, against reading the rows they need in the same run.

    .venv/bin/python bench/complaints.py [n_customers] [--postgres]

Builds the demo shop (``fidele demo``'s data: customers with two years of orders) in a fresh
SQLite file (or the PostgreSQL database ``fidele_bench_complaints``), opens a complaint for one
customer in ten through the service (a third with a gesture on resolution, most resolved), then
times ``complaints_stats.stats`` 5 times (median) against the reference: the two bare SELECTs
of the complaint rows and every order's (customer, placed_at), fetched in full, 5 times. Prints
one JSON line."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fidele.db.engine import make_engine  # noqa: E402
from fidele.db.migrate import upgrade  # noqa: E402
from fidele.db.session import make_sessionmaker, read_only, transaction  # noqa: E402
from fidele.demo import service as demo  # noqa: E402
from fidele.feedback import complaints_service as service  # noqa: E402
from fidele.feedback import complaints_stats  # noqa: E402
from fidele.feedback.complaints_schemas import ComplaintIn, ComplaintPatch, GestureIn  # noqa: E402
from fidele.kit.clock import utc_now  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
PG_DB = "fidele_bench_complaints"


def _url(postgres: bool) -> str:
    if not postgres:
        return f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    admin = create_engine(PG + "postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {PG_DB}"))
        conn.execute(text(f"CREATE DATABASE {PG_DB}"))
    admin.dispose()
    return PG + PG_DB


def _complaints(factory, shop, now) -> int:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    caller = service.system_caller(shop.merchant_id, shop.programme_id)
    with transaction(factory) as session:
        ids = [
            r[0]
            for r in session.execute(
                text("SELECT external_id FROM customers WHERE merchant_id = :m ORDER BY id"),
                {"m": shop.merchant_id},
            )
        ]
        service.put_settings(session, caller, {"monthly_budget": 10**9}, now)
    chosen = ids[::10]
    for i, ext in enumerate(chosen):
        opened = now - timedelta(days=rng.randint(1, 400))
        with transaction(factory) as session:
            body = ComplaintIn(customer_id=ext, category="damaged", message="broken")
            row, _ = service.open_complaint(session, caller, body, opened)
            if i % 10 < 8:
                service.update(
                    session, caller, row.id, ComplaintPatch(status="in_progress"), opened
                )
                gesture = GestureIn(kind="coupon", value=500) if i % 3 == 0 else None
                done = opened + timedelta(hours=rng.randint(1, 200))
                patch = ComplaintPatch(status="resolved", gesture=gesture)
                service.update(session, caller, row.id, patch, done)
    return len(chosen)


def _median(fn, runs: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 2000
    postgres = "--postgres" in sys.argv
    engine = make_engine(_url(postgres))
    upgrade(engine)
    factory = make_sessionmaker(engine)
    now = utc_now()
    t = time.perf_counter()
    shop = demo.build(factory, seed=3, n_customers=n, now=now, server_secret="bench-secret")
    built = time.perf_counter() - t
    complaints = _complaints(factory, shop, now)
    caller = service.system_caller(shop.merchant_id, shop.programme_id)
    reader = read_only(factory)  # as GET /v1/complaints/stats reads

    if "--profile" in sys.argv:
        import cProfile

        with transaction(reader) as session:
            cProfile.runctx(
                "complaints_stats.stats(session, caller, now)", globals(), locals(), sort="cumtime"
            )

    def figures() -> None:
        with transaction(reader) as session:
            complaints_stats.stats(session, caller, now)

    def reference() -> None:
        with engine.connect() as conn:
            conn.execute(
                text("SELECT * FROM complaints WHERE merchant_id = :m"), {"m": shop.merchant_id}
            ).all()
            conn.execute(
                text(
                    "SELECT customer_id, placed_at FROM orders WHERE merchant_id = :m"
                    " ORDER BY customer_id, placed_at"
                ),
                {"m": shop.merchant_id},
            ).all()

    with engine.connect() as conn:
        orders = conn.execute(text("SELECT count(*) FROM orders")).scalar()
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(
        json.dumps(
            {
                "backend": "postgresql" if postgres else "sqlite",
                "customers": n,
                "orders": orders,
                "complaints": complaints,
                "build_s": round(built, 1),
                "stats_ms": round(_median(figures) * 1000, 1),
                "reference_select_ms": round(_median(reference) * 1000, 1),
                "load": load.split("load average:")[-1].strip(),
            }
        )
    )
    engine.dispose()


if __name__ == "__main__":
    main()
