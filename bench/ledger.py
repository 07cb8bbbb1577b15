"""Loyalty ledger benchmark (PostgreSQL at 127.0.0.1:5432, user postgres).

1. Orders turned into points through the service (``orders.create``: order row, event, rule
   evaluation, pending lot and ledger posting, one transaction each) by 8 parallel worker
   processes, against ``pgbench -c 8 -j 2 -b tpcb-like`` on the same server in the same run.
2. A replay of N orders from the event log into empty loyalty tables (``--orders``).

Two more references say what the Python stack itself costs: pgbench's own tpcb-like
transaction (3 UPDATEs, a SELECT, an INSERT) issued by 8 Python processes, once through bare
psycopg 3 and once through a SQLAlchemy session (the service's stack), on the same pgbench
database in the same run. They bound what any one-order-per-transaction path written in this
stack can reach on this machine.

Scratch databases are created and dropped here. Usage:
    .venv/bin/python bench/ledger.py [--seconds 30] [--orders 1000000] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text

from fidele.customers.models import Customer
from fidele.db.engine import make_engine
from fidele.db.migrate import upgrade
from fidele.db.session import make_sessionmaker, transaction
from fidele.events.domain import payload_hash
from fidele.events.models import Event
from fidele.ledger import service as ledger
from fidele.loyalty import replay
from fidele.orders import service as orders
from fidele.orders.models import Order
from fidele.orders.schemas import OrderIn
from fidele.tenancy import service as tenancy
from fidele.tenancy.service import Caller

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def scratch(name: str) -> str:
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", name], check=True)
    sh("createdb", "-h", "127.0.0.1", "-U", "postgres", name)
    return name


def drop(name: str) -> None:
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--force", name], check=False)


def setup(url: str) -> Caller:
    engine = make_engine(url)
    upgrade(engine)
    with transaction(make_sessionmaker(engine)) as s:
        made = tenancy.create_merchant(s, name="bench", now=T0, server_secret="bench")
    engine.dispose()
    return Caller(made.merchant_id, made.programme_id, None, frozenset({"write"}))


def order_in(i: int, customer: str, at: datetime) -> OrderIn:
    price = 1000 + (i * 7919) % 20000
    return OrderIn(
        id=f"o{i}",
        customer_id=customer,
        placed_at=at,
        currency="EUR",
        lines=[
            {
                "product_id": f"p{i % 50}",
                "category": f"c{i % 5}",
                "quantity": 1,
                "unit_price": price,
            }
        ],
        total=price,
    )


def worker(url: str, caller: Caller, wid: int, seconds: float, out: mp.Queue) -> None:
    engine = make_engine(url, pool_size=1)
    factory = make_sessionmaker(engine)
    rng = random.Random(wid)
    done, i, errors = 0, 0, 0
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            i += 1
            now = T0 + timedelta(seconds=i)
            body = order_in(wid * 10_000_000 + i, f"w{wid}-c{rng.randrange(5000)}", now)
            try:
                with transaction(factory) as s:
                    orders.create(s, caller, body, now)
                done += 1
            except Exception as exc:  # a worker must report, whatever happens
                errors += 1
                if errors == 1:
                    print(f"worker {wid}: {type(exc).__name__}: {exc}"[:300])
    finally:
        out.put((done, errors))
        engine.dispose()


def throughput(workers: int, seconds: float) -> float:
    name = scratch(f"fidele_bench_tp_{os.getpid()}")
    try:
        url = PG + name
        caller = setup(url)
        out: mp.Queue = mp.Queue()
        procs = [
            mp.Process(target=worker, args=(url, caller, w, seconds, out)) for w in range(workers)
        ]
        for p in procs:
            p.start()
        results = [out.get(timeout=seconds + 120) for _ in procs]
        total = sum(d for d, _ in results)
        if any(e for _, e in results):
            print(f"failed orders: {sum(e for _, e in results)}")
        for p in procs:
            p.join()
        engine = make_engine(url)
        with transaction(make_sessionmaker(engine)) as s:
            assert ledger.verify(s).ok, "ledger mismatch after the run"
        engine.dispose()
        return total / seconds
    finally:
        drop(name)


TPCB = (
    "UPDATE pgbench_accounts SET abalance = abalance + %(delta)s WHERE aid = %(aid)s",
    "SELECT abalance FROM pgbench_accounts WHERE aid = %(aid)s",
    "UPDATE pgbench_tellers SET tbalance = tbalance + %(delta)s WHERE tid = %(tid)s",
    "UPDATE pgbench_branches SET bbalance = bbalance + %(delta)s WHERE bid = %(bid)s",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)"
    " VALUES (%(tid)s, %(bid)s, %(aid)s, %(delta)s, CURRENT_TIMESTAMP)",
)


def tpcb_worker(name: str, how: str, scale: int, seconds: float, out: mp.Queue) -> None:
    """pgbench's tpcb-like transaction from Python: ``psycopg`` (bare driver, one transaction
    per loop) or ``sqlalchemy`` (a session per transaction, ``text()`` statements, as the
    service's own edge does)."""
    rng = random.Random(os.getpid())
    done = 0
    deadline = time.perf_counter() + seconds

    def params() -> dict[str, int]:
        return {
            "aid": rng.randint(1, 100_000 * scale),
            "bid": rng.randint(1, scale),
            "tid": rng.randint(1, 10 * scale),
            "delta": rng.randint(-5000, 5000),
        }

    if how == "psycopg":
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={name}") as conn:
            while time.perf_counter() < deadline:
                p = params()
                with conn.transaction():
                    for sql in TPCB:
                        conn.execute(sql, p)
                done += 1
    else:
        engine = make_engine(PG + name, pool_size=1)
        factory = make_sessionmaker(engine)
        stmts = [text(sql.replace("%(", ":").replace(")s", "")) for sql in TPCB]
        while time.perf_counter() < deadline:
            p = params()
            with transaction(factory) as s:
                for stmt in stmts:
                    s.execute(stmt, p)
            done += 1
        engine.dispose()
    out.put(done)


def pgbench(clients: int, seconds: int) -> dict[str, float]:
    """pgbench's own TPS, then the same transaction from Python processes (see the module's
    docstring), on one pgbench database."""
    name = scratch(f"fidele_bench_pgb_{os.getpid()}")
    scale = 8
    try:
        sh("pgbench", "-h", "127.0.0.1", "-U", "postgres", "-i", "-s", str(scale), "-q", name)
        res = sh(
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
        )
        m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", res)
        assert m, res
        found = {"pgbench_tpcb_tps": float(m.group(1))}
        for how in ("psycopg", "sqlalchemy"):
            out: mp.Queue = mp.Queue()
            procs = [
                mp.Process(target=tpcb_worker, args=(name, how, scale, seconds, out))
                for _ in range(clients)
            ]
            for p in procs:
                p.start()
            total = sum(out.get(timeout=seconds + 60) for _ in procs)
            for p in procs:
                p.join()
            found[f"python_{how}_tpcb_tps"] = total / seconds
        return found
    finally:
        drop(name)


def fill_log(url: str, caller: Caller, n: int, customers: int) -> None:
    """Write N placed orders and their events directly (bench only: the service is timed
    above), spread over a year, for ``customers`` customers."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(Customer),
            [
                {
                    "merchant_id": caller.merchant_id,
                    "programme_id": caller.programme_id,
                    "external_id": f"c{c}",
                    "attributes": {},
                    "created_at": T0,
                    "updated_at": T0,
                    "email_marketing": False,
                    "sms_marketing": False,
                }
                for c in range(customers)
            ],
        )
        ids = dict(conn.execute(text("SELECT external_id, id FROM customers")).all())
    step = 365 * 86400 / n
    for start in range(0, n, 20_000):
        rows, evs = [], []
        for i in range(start, min(n, start + 20_000)):
            at = T0 + timedelta(seconds=i * step)
            body = order_in(i, f"c{i % customers}", at).model_dump(mode="json")
            rows.append(
                {
                    "id": i + 1,
                    "merchant_id": caller.merchant_id,
                    "programme_id": caller.programme_id,
                    "customer_id": ids[body["customer_id"]],
                    "external_id": body["id"],
                    "placed_at": at,
                    "currency": "EUR",
                    "subtotal": body["total"],
                    "discounts": 0,
                    "shipping": 0,
                    "tax": 0,
                    "total": body["total"],
                    "refunded_total": 0,
                    "status": "placed",
                    "source": "bench",
                    "payload_hash": "-",
                    "attributes": {},
                    "created_at": at,
                    "updated_at": at,
                }
            )
            evs.append(
                {
                    "merchant_id": caller.merchant_id,
                    "programme_id": caller.programme_id,
                    "customer_id": ids[body["customer_id"]],
                    "order_id": i + 1,
                    "type": "order.placed",
                    "source": "bench",
                    "occurred_at": at,
                    "received_at": at,
                    "payload_hash": payload_hash(body),
                    "payload": body,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(Order), rows)
            conn.execute(insert(Event), evs)
    with engine.begin() as conn:
        conn.execute(text("SELECT setval('orders_id_seq', (SELECT max(id) FROM orders))"))
    engine.dispose()


def replay_rate(n: int, customers: int) -> tuple[float, float]:
    name = scratch(f"fidele_bench_rp_{os.getpid()}")
    try:
        url = PG + name
        caller = setup(url)
        t = time.perf_counter()
        fill_log(url, caller, n, customers)
        fill = time.perf_counter() - t
        engine = make_engine(url)
        factory = make_sessionmaker(engine)
        t = time.perf_counter()
        with transaction(factory) as s:
            count = replay.replay(s, caller.programme_id, T0 + timedelta(days=400))
        took = time.perf_counter() - t
        with transaction(factory) as s:
            assert ledger.verify(s).ok, "ledger mismatch after replay"
        engine.dispose()
        return count / took, fill
    finally:
        drop(name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    result: dict[str, float] = {}
    if not args.skip_throughput:
        result["service_orders_per_s"] = round(throughput(args.workers, args.seconds), 1)
        refs = pgbench(args.workers, args.seconds)
        result.update({k: round(v, 1) for k, v in refs.items()})
        result["ratio"] = round(result["service_orders_per_s"] / refs["pgbench_tpcb_tps"], 3)
        for how in ("psycopg", "sqlalchemy"):
            tps = refs[f"python_{how}_tpcb_tps"]
            result[f"python_{how}_tpcb_vs_pgbench"] = round(tps / refs["pgbench_tpcb_tps"], 3)
    if args.orders:  # 0: throughput only
        rate, fill = replay_rate(args.orders, min(args.customers, args.orders))
        result.update(
            {
                "replay_orders": args.orders,
                "replay_orders_per_s": round(rate, 1),
                "log_fill_seconds": round(fill, 1),
            }
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
