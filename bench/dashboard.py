"""Server time of each dashboard page on the 5,000-customer demo shop (SQLite by default, or
``--database-url`` for PostgreSQL), against references measured in the same run: ``GET
/healthz`` (a bare endpoint) and ``GET /v1/analytics/kpis`` (the JSON the overview reads).

The app runs in-process (``create_app``) behind Starlette's test client: the time is the
server's (routing, authentication, the services, rendering), with no socket in between.
Median and 90th percentile of ``--repeat`` requests per page, after one warm-up request.

Usage:
    .venv/bin/python bench/dashboard.py [--customers 5000] [--repeat 20] [--database-url URL]
    .venv/bin/python bench/dashboard.py --million [1000000] [--repeat 7]

``--million``: the overview of a 1,000,000-customer shop on PostgreSQL (see :func:`million`).
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


def _parts(
    engine: object, shop: demo.DemoShop, clock: SystemClock, live_journeys: bool = False
) -> None:
    """The overview's parts, timed one by one (median of 5, ms)."""
    from fidele.analytics import service as analytics
    from fidele.dashboard import journeys_report, views
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
            "points liability (live)": lambda: reports.liability(session, shop.programme_id, now),
            "average CLV (live)": lambda: CustomerSearch(session).average_clv(shop.merchant_id),
            "overview data + charts": lambda: views.overview(ctx),
            "journeys card (stored report)": lambda: journeys_report.read(
                session, shop.merchant_id, now
            ),
            "liability + average CLV (stored report)": lambda: journeys_report.read_overview(
                session, shop.merchant_id, now
            ),
        }
        if live_journeys:
            parts["reference: journeys card computed live"] = lambda: journeys_report.compute(
                session, shop.merchant_id, now
            )
        for name, fn in parts.items():
            seen = []
            for _ in range(5):
                start = time.perf_counter()
                fn()
                seen.append((time.perf_counter() - start) * 1000)
            print(f"  part: {name:40} {statistics.median(seen):8.1f} ms")


MILLION_DB = "fidele_bench_dashjourneys"
MILLION_SQL = [
    (
        "loyalty members and lots",
        """
        INSERT INTO loyalty_members (programme_id, email_normalized, tier_rank, tier_grace,
            lifetime_earned, lifetime_spent, created_at)
        SELECT {p}, email_normalized, 0, false, 0, 0, created_at
        FROM customers WHERE merchant_id = {m} AND random() < 0.6;
        INSERT INTO loyalty_customer_links (customer_id, member_id)
        SELECT c.id, l.id FROM customers c
        JOIN loyalty_members l ON l.programme_id = {p} AND l.email_normalized = c.email_normalized
        WHERE c.merchant_id = {m};
        INSERT INTO loyalty_lots (programme_id, merchant_id, member_id, source_key, reason,
            points, remaining, clawed, status, earned_at, available_at, order_amount,
            refunded_amount, detail)
        SELECT {p}, {m}, l.id, 'bench:' || l.id || ':' || k, 'order', pts,
            CASE WHEN random() < 0.5 THEN pts ELSE 0 END, 0, 'available', ts, ts, 0, 0,
            '[]'::jsonb
        FROM (SELECT id, k, (10 + random() * 300)::bigint AS pts,
                     now() - random() * interval '700 days' AS ts
              FROM loyalty_members CROSS JOIN generate_series(1, 2) k
              WHERE programme_id = {p}) l
        """,
    ),
    (
        "journey messages this month (10% held out) and the orders after them",
        """
        INSERT INTO message_sends (merchant_id, customer_id, key, topic, channel, flow_id,
            flow_version, step, source, context, status, attempts, created_at, sent_at)
        SELECT {m}, c.id, 'bench:' || f.id || ':' || c.id, 'lifecycle', 'email', f.id, 1,
            f.step, '{{}}'::jsonb, '{{}}'::jsonb,
            CASE WHEN random() < 0.1 THEN 'held_out' ELSE 'sent' END, 1, ts, ts
        FROM (SELECT id, now() - random() * (now() - date_trunc('month', now())) AS ts
              FROM customers WHERE merchant_id = {m} AND random() < 0.05) c
        CROSS JOIN (VALUES {flows}) AS f(id, step);
        INSERT INTO orders (merchant_id, programme_id, customer_id, external_id, placed_at,
            currency, subtotal, discounts, shipping, tax, prices_include_tax, adjustment,
            total, refunded_total, status, payment_status, source, payload_hash,
            attributes, created_at, updated_at)
        SELECT {m}, {p}, customer_id, 'after-' || id, ts, 'EUR', amount, 0, 0, 0, false, 0,
            amount, 0, 'delivered', 'paid', 'bench', 'x', '{{}}'::jsonb, ts, ts
        FROM (SELECT id, customer_id, created_at + random() * interval '2 days' AS ts,
                     (1500 + random() * 9000)::bigint AS amount
              FROM message_sends WHERE merchant_id = {m} AND random() < 0.06) s
        """,
    ),
]


def million(n: int, repeat: int, keep: bool = False) -> None:
    """The overview of an ``n``-customer shop on PostgreSQL (database ``MILLION_DB``, dropped
    at the end): bench/segments.py's builder (customers, insights, orders, consents by
    ``INSERT ... SELECT generate_series``), plus loyalty lots, the ready-made journeys and a
    month of their messages (10% held out) with orders after them. Then the precomputed
    reports the page reads (the daily analytics refresh and the hourly journeys report) are
    computed and timed, and ``GET /`` is timed (median of ``repeat``) against ``/healthz`` and
    the JSON KPIs in the same run; the overview's parts are timed one by one, with the
    journeys card computed live as the reference that shows why it is precomputed."""
    import subprocess
    import sys
    from datetime import UTC, datetime

    from sqlalchemy import text

    sys.path.insert(0, str(Path(__file__).parent))
    import segments as builder  # bench/segments.py
    from fidele.analytics import service as analytics
    from fidele.campaigns import templates
    from fidele.dashboard import journeys_report
    from fidele.tenancy.service import Caller

    builder.DB = MILLION_DB
    builder.URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{MILLION_DB}"
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load: {uptime}", flush=True)
    now = datetime.now(UTC)
    clock = SystemClock()
    info = builder.build(n, now)
    m, p = info["merchant_id"], info["programme_id"]
    engine = make_engine(builder.URL, pool_size=4)
    factory = make_sessionmaker(engine)
    try:
        caller = Caller(m, p, None, frozenset({"admin"}))
        with transaction(factory) as session:
            flows = [f for f, _ in templates.install_all(session, caller, now, activate=True)]
            steps = [(f.id, "welcome" if f.name == "welcome" else "s2") for f in flows][:3]
            if not dashboard.users_of(session, m):
                dashboard.create_user(
                    session, merchant_id=m, email="bench@shop.test", password=PASSWORD,
                    role="admin", now=now,
                )  # fmt: skip
        values = ", ".join(f"({i}, '{s}')" for i, s in steps)
        with engine.begin() as conn:
            done = conn.execute(text("SELECT count(*) FROM message_sends")).scalar_one()
            for name, sql in MILLION_SQL if not done else []:  # a kept shop has them
                t = time.perf_counter()
                for stmt in sql.format(m=m, p=p, flows=values).split(";\n"):
                    if stmt.strip():
                        conn.execute(text(stmt))
                print(f"  {name}: {time.perf_counter() - t:.1f} s", flush=True)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            sends = conn.execute(text("SELECT count(*) FROM message_sends")).scalar_one()
            lots = conn.execute(text("SELECT count(*) FROM loyalty_lots")).scalar_one()
        print(f"shop: {n:,} customers, {info['orders']:,}+ orders, {lots:,} lots, {sends:,} "
              f"journey messages this month")  # fmt: skip
        t = time.perf_counter()
        with transaction(factory) as session:
            from fidele.analytics.repository import AnalyticsRepository

            if AnalyticsRepository(session).report(m, "kpis") is None:  # a kept shop has it
                analytics.refresh(session, m, clock.now())
                print(f"precompute: analytics refresh (daily job) {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        journeys_report.refresh_all(factory, clock.now())
        print(
            f"precompute: journeys report, liability, average CLV (hourly job) "
            f"{time.perf_counter() - t:.1f} s"
        )
        settings = Settings(
            env="test", database_url=builder.URL, secret_key="bench-secret-key",
            embedded_worker=False,
        )  # fmt: skip
        app = create_app(settings, engine=engine, start_worker=False)
        with TestClient(app) as client:
            page = client.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            client.post(
                "/login",
                data={"email": "bench@shop.test", "password": PASSWORD, "csrf_token": token},
            )
            home = client.get("/", headers={"Accept": "text/html"}).text
            assert 'id="journeys-incremental"' in home and 'id="kpi-customers"' in home
            fresh = re.search(r'id="journeys-freshness">([^<]+)<', home)
            print(f"overview shows: journeys card {fresh.group(1) if fresh else '?'}")
            print(f"load before: {_load()}  (postgresql, {repeat} requests each)")
            print(f"{'page':48} {'median ms':>10} {'p90 ms':>8}")
            from fidele.tenancy.service import create_api_key

            with transaction(factory) as session:
                _, key = create_api_key(session, merchant_id=m, scopes="read", now=now)
            for label, path, kw in (
                ("reference: GET /healthz", "/healthz", {}),
                ("reference: GET /v1/analytics/kpis (JSON)", "/v1/analytics/kpis",
                 {"headers": {"Authorization": f"Bearer {key}"}}),
                (f"overview / ({n:,} customers)", "/", {"headers": {"Accept": "text/html"}}),
            ):  # fmt: skip
                median, p90 = _times(client, path, repeat, **kw)
                print(f"{label:48} {median:10.1f} {p90:8.1f}", flush=True)
        shop = demo.DemoShop(p, m, "", created=False)
        _parts(engine, shop, clock, live_journeys=True)
        print(f"load after: {_load()}")
    finally:
        engine.dispose()
        if not keep:
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc",
                 f'DROP DATABASE IF EXISTS "{MILLION_DB}" WITH (FORCE)'],
                check=False,
            )  # fmt: skip
        print(f"{'kept' if keep else 'dropped'} {MILLION_DB}")


def main() -> None:
    if "--million" in __import__("sys").argv:
        _million_main()
        return
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
                ("segments /segments", "/segments", {}),
                ("journeys /journeys", "/journeys", {}),
                ("messages /journeys/messages", "/journeys/messages", {}),
                ("newsletters /newsletters", "/newsletters", {}),
                ("feedback /feedback", "/feedback", {}),
                ("complaints /feedback/complaints", "/feedback/complaints", {}),
                ("storefront settings /settings/storefront", "/settings/storefront", {}),
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


def _million_main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--million", nargs="?", type=int, const=1_000_000, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database for a rerun")
    args = parser.parse_args()
    million(args.million, args.repeat, args.keep)


if __name__ == "__main__":
    main()
