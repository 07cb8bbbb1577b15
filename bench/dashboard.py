"""Server time of each dashboard page on the 5,000-customer demo shop (SQLite by default, or
``--database-url`` for PostgreSQL), against references measured in the same run: ``GET
/healthz`` (a bare endpoint) and ``GET /v1/analytics/kpis`` (the JSON the overview reads).

The app runs in-process (``create_app``) behind Starlette's test client: the time is the
server's (routing, authentication, the services, rendering), with no socket in between.
Median and 90th percentile of ``--repeat`` requests per page, after one warm-up request.

Usage:
    .venv/bin/python bench/dashboard.py [--customers 5000] [--repeat 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from fidele.app import create_app
from fidele.dashboard import service as dashboard
from fidele.db.engine import make_engine
from fidele.db.migrate import upgrade
from fidele.db.session import make_sessionmaker, transaction
from fidele.demo import service as demo
from fidele.kit.clock import SystemClock
from fidele.settings import Settings

PASSWORD = "bench password 1"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _times(client: TestClient, path: str, repeat: int, **kw: object) -> tuple[float, float]:
    answer = client.get(path, **kw)  # type: ignore[arg-type]
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    seen = []
    for _ in range(repeat):
        start = time.perf_counter()
        answer = client.get(path, **kw)  # type: ignore[arg-type]
        seen.append(time.perf_counter() - start)
        assert answer.status_code == 200, path
    seen.sort()
    return statistics.median(seen) * 1000, seen[int(len(seen) * 0.9) - 1] * 1000


def _parts(engine: object, shop: demo.DemoShop, clock: SystemClock) -> None:
    """The overview's parts, timed one by one (median of 5, ms)."""
    from fidele.analytics import service as analytics
    from fidele.dashboard import views
    from fidele.dashboard.i18n import formats
    from fidele.dashboard.repository import CustomerSearch
    from fidele.dashboard.web import Ctx
    from fidele.loyalty import reports
    from fidele.tenancy.models import Merchant, Programme
    from fidele.tenancy.service import Caller

    now = clock.now()
    caller = Caller(shop.merchant_id, shop.programme_id, None, frozenset({"read"}))
    with make_sessionmaker(engine)() as session:  # type: ignore[arg-type]
        merchant = session.get(Merchant, shop.merchant_id)
        programme = session.get(Programme, shop.programme_id)
        fmt = formats("en", None, "EUR", None)
        ctx = Ctx(None, session, now, None, merchant, programme, caller, fmt, "")  # type: ignore[arg-type]
        parts = {
            "kpis report (stored)": lambda: analytics.report(session, caller, "kpis", now),
            "points liability": lambda: reports.liability(session, shop.programme_id, now),
            "average CLV": lambda: CustomerSearch(session).average_clv(shop.merchant_id),
            "overview data + charts": lambda: views.overview(ctx),
        }
        for name, fn in parts.items():
            seen = []
            for _ in range(5):
                start = time.perf_counter()
                fn()
                seen.append((time.perf_counter() - start) * 1000)
            print(f"  part: {name:40} {statistics.median(seen):8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite)")
    parser.add_argument("--parts", action="store_true", help="also time the overview's parts")
    args = parser.parse_args()
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'demo.db'}"
        engine = make_engine(url, pool_size=4)
        upgrade(engine)
        factory = make_sessionmaker(engine)
        start = time.perf_counter()
        shop = demo.build(
            factory,
            seed=42,
            n_customers=args.customers,
            now=clock.now(),
            server_secret="bench-secret-key",
        )
        demo.settle(factory, clock)  # the jobs' first round: analytics refreshed, as the demo
        with transaction(factory) as session:
            dashboard.create_user(
                session,
                merchant_id=shop.merchant_id,
                email="bench@shop.test",
                password=PASSWORD,
                role="admin",
                now=clock.now(),
            )
        print(f"demo shop: {args.customers} customers built in {time.perf_counter() - start:.1f} s")
        settings = Settings(
            env="test", database_url=url, secret_key="bench-secret-key", embedded_worker=False
        )
        app = create_app(settings, engine=engine, start_worker=False)
        with TestClient(app) as client:
            page = client.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            client.post(
                "/login",
                data={"email": "bench@shop.test", "password": PASSWORD, "csrf_token": token},
            )
            listing = client.get("/customers").text
            customer = re.findall(r'href="/customers/(\d+)"', listing)[7]
            name = re.search(r"<td>(\w+) (\w+)</td>", listing).group(2)  # type: ignore[union-attr]
            print(f"load before: {_load()}  ({engine.dialect.name}, {args.repeat} requests each)")
            rows = [
                ("reference: GET /healthz", "/healthz", {}),
                (
                    "reference: GET /v1/analytics/kpis (JSON)",
                    "/v1/analytics/kpis",
                    {"headers": {"Authorization": f"Bearer {shop.api_key}"}},
                ),
                ("overview /", "/", {"headers": {"Accept": "text/html"}}),
                ("customers /customers", "/customers", {}),
                (f"search /customers?q={name}", f"/customers?q={name}", {}),
                (f"customer 360 /customers/{customer}", f"/customers/{customer}", {}),
                ("analytics /analytics", "/analytics", {}),
                ("KPIs CSV /analytics/kpis.csv", "/analytics/kpis.csv", {}),
                ("settings /settings", "/settings", {}),
                ("loyalty /loyalty", "/loyalty", {}),
                ("loyalty + simulation /loyalty?sim_amount=80", "/loyalty?sim_amount=80", {}),
                ("promotions /promotions", "/promotions", {}),
                ("shop settings /settings/shop", "/settings/shop", {}),
                ("activity /activity", "/activity", {}),
                ("login /login", "/login", {}),
            ]
            print(f"{'page':48} {'median ms':>10} {'p90 ms':>8}")
            for label, path, kw in rows:
                median, p90 = _times(client, path, args.repeat, **kw)
                print(f"{label:48} {median:10.1f} {p90:8.1f}")
        if args.parts:
            _parts(engine, shop, clock)
        print(f"load after: {_load()}")
        engine.dispose()


if __name__ == "__main__":
    main()
