"""Segments on PostgreSQL: a 4-criteria count on 1,000,000 customers against hand-written SQL
for the same question, and event-to-membership latency under 100 orders/s.

    .venv/bin/python bench/segments.py [n_customers] [--seconds 30] [--rate 100]
        [--db=NAME] [--no-count] [--no-latency]
    .venv/bin/python bench/segments.py --http [--seconds 60] [--rate 100] [--repeat 3]
        [--backend sqlite|postgresql|both]

Builds (kept between runs for the same size: a marker table) the database
``fidele_bench_segments`` on 127.0.0.1: migrations, a merchant through the service, then
customers (country, locale, age), their insights (RFM segment and scores), their orders over two
years (most customers buy once, some often; none in the last 8 days) and newsletter consents,
all by ``INSERT ... SELECT generate_series`` in the real tables, then ANALYZE.

1. Count: the rule "RFM segment in {Champions, Loyal, At risk} and >= 2 orders in the last
   365 days and country FR and newsletter consent by email" through ``segments.service.count``
   (the compiler's one query) and through two hand-written SQL queries (correlated count,
   grouped join); each 7 times after a warm-up, median and best reported. Also the
   compiler's plan (EXPLAIN ANALYZE).
2. Latency: a segment "bought in the last 7 days" (nobody is in it) plus the 4-criteria one
   saved; the membership loop (as in ``fidele worker``) runs in this process; producer threads
   place orders through the orders service (one transaction each) for random existing
   customers at ``rate`` per second for ``seconds``; a watcher polls the event log every 50 ms
   and notes when each customer's ``segment.entered`` becomes visible. Latency = visible -
   order committed. Reference in the same run: the order's own commit time.

``--http``: the path users take, on SQLite and on PostgreSQL (scratch databases, nothing of the
1M shop). ``fidele serve`` in a subprocess on loopback, its embedded worker on (the default:
the membership loop runs in the server process, as an operator runs it); customers with one
order 30 days ago (``fidele import orders``); then, ``--repeat`` times, two runs of
``--seconds`` each at ``--rate`` orders/s, open loop (request i due at start + i/rate, 64
senders), each POST /v1/orders a second order for a customer not used before:

- reference: no segment of ours defined (the built-in RFM segments only, which depend on
  insights, not orders): what the POST itself costs;
- segment: ``orders.count >= 2 within_days 365`` saved by POST /v1/segments first (deleted at
  the end): every order makes its customer enter. A watcher thread polls the event log every
  50 ms. Latency per order = ``segment.entered`` visible to the watcher (and, separately, the
  event row's ``received_at``) - the POST's send time.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "src"))

from fidele.db.engine import make_engine  # noqa: E402
from fidele.db.migrate import upgrade  # noqa: E402
from fidele.db.session import make_sessionmaker, transaction  # noqa: E402
from fidele.kit.clock import SystemClock  # noqa: E402

DB = next(
    (a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--db=")), "fidele_bench_segments"
)
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB}"
RULE = {
    "all": [
        {"field": "insights.segment", "op": "in", "value": ["Champions", "Loyal", "At risk"]},
        {"field": "orders.count", "op": "gte", "value": 2, "within_days": 365},
        {"field": "customer.country", "op": "eq", "value": "FR"},
        {"field": "consent.newsletter.email", "op": "eq", "value": True},
    ]
}
RECENT = {"field": "orders.count", "op": "gte", "value": 1, "within_days": 7}
# The watcher re-reads this many ids back: event ids are taken at insert, so a transaction that
# committed later may hold lower ids than one already seen.
RESCAN = 5000
HAND_CORRELATED = """
SELECT count(*) FROM customers c
JOIN customer_insights i ON i.customer_id = c.id
WHERE c.merchant_id = :m AND c.erased_at IS NULL AND c.country = 'FR'
  AND i.segment IN ('Champions', 'Loyal', 'At risk')
  AND EXISTS (SELECT 1 FROM consents k WHERE k.customer_id = c.id AND k.topic = 'newsletter'
              AND k.channel = 'email' AND k.granted)
  AND (SELECT count(*) FROM orders o WHERE o.customer_id = c.id AND o.merchant_id = :m
       AND o.status <> 'cancelled' AND o.placed_at >= :since) >= 2
"""
# The same question on the order facts layout (``customer_order_facts``, kept by every order
# write): ">= 2 orders in the last 365 days" is "the 2nd most recent order is in the window".
HAND_FACTS = """
SELECT count(*) FROM customers c
JOIN customer_insights i ON i.customer_id = c.id
JOIN customer_order_facts f ON f.customer_id = c.id
WHERE c.merchant_id = :m AND c.erased_at IS NULL AND c.country = 'FR'
  AND i.segment IN ('Champions', 'Loyal', 'At risk')
  AND EXISTS (SELECT 1 FROM consents k WHERE k.customer_id = c.id AND k.topic = 'newsletter'
              AND k.channel = 'email' AND k.granted)
  AND f.recent_2 >= :since
"""
HAND_GROUPED = """
SELECT count(*) FROM customers c
JOIN customer_insights i ON i.customer_id = c.id
JOIN consents k ON k.customer_id = c.id AND k.topic = 'newsletter' AND k.channel = 'email'
                AND k.granted
JOIN (SELECT customer_id FROM orders WHERE merchant_id = :m AND status <> 'cancelled'
      AND placed_at >= :since GROUP BY customer_id HAVING count(*) >= 2) o
  ON o.customer_id = c.id
WHERE c.merchant_id = :m AND c.erased_at IS NULL AND c.country = 'FR'
  AND i.segment IN ('Champions', 'Loyal', 'At risk')
"""


def _psql(sql: str, db: str = "postgres") -> str:
    cmd = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-Atqc", sql]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def _say(msg: str) -> None:
    print(msg, flush=True)


def build(n: int, now: datetime) -> dict[str, int]:
    """The shop (reused when a build of the same size exists)."""
    if _psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB}'"):
        if _psql("SELECT to_regclass('bench_marker')", DB):
            info = json.loads(_psql("SELECT payload FROM bench_marker", DB))
            if info.get("n") == n:
                _say(f"reusing the shop of {n:,} customers (merchant {info['merchant_id']})")
                engine = make_engine(URL)
                upgrade(engine)  # a later revision (the order facts are filled by it)
                engine.dispose()
                return info
        _psql(f'DROP DATABASE "{DB}" WITH (FORCE)')
    _psql(f'CREATE DATABASE "{DB}"')
    engine = make_engine(URL)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    from fidele.tenancy import service as tenancy

    with transaction(factory) as session:
        made = tenancy.create_merchant(
            session, name="Bench shop", now=now, server_secret="bench-secret-" * 3
        )
    m, p = made.merchant_id, made.programme_id
    t0 = time.perf_counter()
    steps = [
        (
            "customers",
            f"""
            SELECT setseed(0.42);
            INSERT INTO customers (merchant_id, programme_id, external_id, email,
                email_normalized, country, locale, attributes, email_marketing, sms_marketing,
                created_at, updated_at)
            SELECT {m}, {p}, 'b' || g, 'b' || g || '@example.com', 'b' || g || '@example.com',
                (ARRAY['FR','FR','FR','DE','GB','ES','IT','BE','NL','CH'])
                    [1 + floor(random() * 10)],
                (ARRAY['fr-FR','en-GB','de-DE'])[1 + floor(random() * 3)], '{{}}'::jsonb,
                false, false, ts, ts
            FROM (SELECT g, now() - random() * interval '900 days' AS ts
                  FROM generate_series(1, {n}) g) s
            """,
        ),
        (
            "insights",
            f"""
            INSERT INTO customer_insights (customer_id, merchant_id, segment, r_score, f_score,
                m_score, p_alive, engagement_score, computed_at)
            SELECT id, {m}, (ARRAY['Champions','Loyal','Can''t lose them','At risk',
                'Potential loyalists','New customers','Promising','Need attention',
                'About to sleep','Hibernating','Lost'])[1 + floor(random() * 11)],
                1 + floor(random() * 5), 1 + floor(random() * 5), 1 + floor(random() * 5),
                random(), floor(random() * 60), now()
            FROM customers WHERE merchant_id = {m}
            """,
        ),
        (
            "orders",
            f"""
            INSERT INTO orders (merchant_id, programme_id, customer_id, external_id, placed_at,
                currency, subtotal, discounts, shipping, tax, prices_include_tax, adjustment,
                total, refunded_total, status, payment_status, source, payload_hash,
                attributes, created_at, updated_at)
            SELECT {m}, {p}, id, 'o' || id || '-' || k, ts, 'EUR', amount, 0, 0, 0, false,
                0, amount, 0, CASE WHEN random() < 0.03 THEN 'cancelled' ELSE 'delivered' END,
                'paid', 'bench', 'x', '{{}}'::jsonb, ts, ts
            FROM (SELECT c.id, k,
                         now() - interval '8 days' - random() * interval '720 days' AS ts,
                         (1500 + random() * 15000)::bigint AS amount
                  FROM (SELECT id, floor(-ln(1 - random()) * 2.2)::int AS n FROM customers
                        WHERE merchant_id = {m}) c
                  CROSS JOIN LATERAL generate_series(0, c.n) k) s
            """,
        ),
        (
            "consents",
            f"""
            INSERT INTO consents (merchant_id, customer_id, topic, channel, granted, at, source)
            SELECT {m}, id, 'newsletter', 'email', random() < 0.8, now(), 'bench'
            FROM customers WHERE merchant_id = {m} AND random() < 0.7
            """,
        ),
    ]
    with engine.begin() as conn:
        for name, sql in steps:
            t = time.perf_counter()
            for stmt in sql.split(";\n"):
                if stmt.strip():
                    conn.execute(text(stmt))
            _say(f"  {name}: {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    with transaction(factory) as session:  # what the order writes keep (bulk: recomputed)
        from fidele.segments import service as segments

        segments.rebuild_order_facts(session, m)
    _say(f"  order facts: {time.perf_counter() - t:.1f} s")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    orders = int(_psql("SELECT count(*) FROM orders", DB))
    info = {"n": n, "merchant_id": m, "programme_id": p, "orders": orders}
    marker = json.dumps(info)
    _psql(
        f"CREATE TABLE bench_marker (payload text); INSERT INTO bench_marker VALUES ('{marker}')",
        DB,
    )
    _say(f"built {n:,} customers, {orders:,} orders in {time.perf_counter() - t0:.0f} s")
    engine.dispose()
    return info


def _timed(fn, repeat: int = 7) -> tuple[list[float], object]:  # type: ignore[no-untyped-def]
    fn()  # warm-up (plans, caches)
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return times, result


def count_bench(info: dict[str, int], now: datetime) -> dict[str, object]:
    from fidele.segments import service
    from fidele.segments.domain import parse_rule

    engine = make_engine(URL)
    factory = make_sessionmaker(engine)
    m = info["merchant_id"]
    since = now - timedelta(days=365)
    out: dict[str, object] = {}
    with transaction(factory) as session:

        def compiled() -> int:
            return service.count(session, merchant_id=m, rule=RULE, now=now)

        def hand(sql: str):  # type: ignore[no-untyped-def]
            return lambda: session.execute(text(sql), {"m": m, "since": since}).scalar_one()

        for name, fn in (
            ("compiler (segments.service.count)", compiled),
            ("hand-written, correlated count", hand(HAND_CORRELATED)),
            ("hand-written, grouped join", hand(HAND_GROUPED)),
            ("hand-written on the order facts", hand(HAND_FACTS)),
        ):
            times, result = _timed(fn)
            out[name] = {
                "count": result,
                "median_s": round(statistics.median(times), 3),
                "best_s": round(min(times), 3),
            }
            _say(
                f"  {name}: {result:,} customers, median {statistics.median(times):.3f} s, "
                f"best {min(times):.3f} s"
            )
        comp = service.compiler(session, m, parse_rule(RULE), now)
        stmt = comp.query(parse_rule(RULE), columns=[__import__("sqlalchemy").func.count()])
        compiled_sql = stmt.compile(engine, compile_kwargs={"literal_binds": True})
        plan = session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled_sql}")).scalars()
        out["plan"] = list(plan)
    engine.dispose()
    return out


def latency_bench(info: dict[str, int], seconds: float, rate: float) -> dict[str, object]:
    from fidele.segments import membership, service

    clock = SystemClock()
    engine = make_engine(URL, pool_size=4)
    factory = make_sessionmaker(engine)
    m, p = info["merchant_id"], info["programme_id"]
    with transaction(factory) as session:
        session.execute(text("DELETE FROM segment_dirty"))
        for name, rule in (("Bought this week", RECENT), ("FR regulars, opted in", RULE)):
            found = session.execute(
                text("SELECT id FROM segments WHERE merchant_id = :m AND name = :n"),
                {"m": m, "n": name},
            ).scalar()
            if found is None:
                t = time.perf_counter()
                made = service.create(session, m, name=name, rule=rule, now=clock.now())
                _say(
                    f"  saved {name!r}: {made.member_count:,} members in "
                    f"{time.perf_counter() - t:.1f} s (their segment.entered events included)"
                )
        recent_id = session.execute(
            text("SELECT id FROM segments WHERE merchant_id = :m AND name = 'Bought this week'"),
            {"m": m},
        ).scalar_one()
        # customers not in "Bought this week" yet: each order makes one enter
        candidates = list(
            session.execute(
                text(
                    "SELECT c.external_id, c.id FROM customers c WHERE c.merchant_id = :m AND "
                    "NOT EXISTS (SELECT 1 FROM segment_members s WHERE s.segment_id = :s "
                    "AND s.customer_id = c.id) ORDER BY random() LIMIT :k"
                ),
                {"m": m, "s": recent_id, "k": int(seconds * rate * 1.2) + 10},
            ).all()
        )
    committed: dict[int, float] = {}
    commit_cost: list[float] = []
    seen: dict[int, float] = {}
    stop = threading.Event()
    wanted = {cid for _, cid in candidates}

    def watch() -> None:
        last = 0
        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT id, customer_id FROM events WHERE id > :last AND merchant_id = :m "
                        "AND type = 'segment.entered' AND (payload->>'segment_id')::int = :s "
                        "ORDER BY id"
                    ),
                    {"last": last - RESCAN, "m": m, "s": recent_id},
                ).all()
            now = time.time()
            for eid, cid in rows:
                last = max(last, eid)
                if cid in wanted:
                    seen.setdefault(cid, now)
            if stop.is_set() and (
                all(c in seen for c in committed) or time.monotonic() - stopped_at[0] > 30
            ):
                return
            time.sleep(0.05)

    stopped_at = [0.0]
    loop = membership.MembershipLoop(factory, clock, idle_seconds=0.2)
    loop.start()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    procs = int(_opt("--producers", 8))
    shares = [candidates[i::procs] for i in range(procs)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(procs) as pool:
        ready = manager.Barrier(procs + 1)
        pending = pool.starmap_async(
            produce, [(m, p, share, rate / procs, seconds, ready) for share in shares]
        )
        ready.wait()  # every producer imported everything and placed a warm-up order
        t0 = time.monotonic()
        results = pending.get()
        elapsed = time.monotonic() - t0
    for rows in results:
        for cid, at, cost in rows:
            committed[cid] = at
            commit_cost.append(cost)
    stop.set()
    stopped_at[0] = time.monotonic()
    watcher.join(timeout=40)
    loop.stop()
    span = (max(committed.values()) - min(committed.values())) if committed else 0.0
    del elapsed
    lat = sorted(seen[c] - committed[c] for c in committed if c in seen)
    missing = len([c for c in committed if c not in seen])

    def pct(xs: list[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    cost = sorted(commit_cost)
    out = {
        "orders": len(committed),
        "orders_per_s": round(len(committed) / max(span, 1e-9), 1),
        "entered_seen": len(lat),
        "missing": missing,
        "latency_p50_s": round(pct(lat, 0.5), 3),
        "latency_p95_s": round(pct(lat, 0.95), 3),
        "latency_p99_s": round(pct(lat, 0.99), 3),
        "latency_max_s": round(lat[-1], 3) if lat else None,
        "order_commit_p50_s": round(pct(cost, 0.5), 3),
        "order_commit_p99_s": round(pct(cost, 0.99), 3),
    }
    engine.dispose()
    return out


def produce(
    m: int, p: int, share: list[tuple[str, int]], rate: float, seconds: float, ready: object
) -> list[tuple[int, float, float]]:
    """A producer process: orders for ``share``'s customers at ``rate`` per second for
    ``seconds``, each in its own transaction; (customer id, commit wall time, commit cost)."""
    from fidele.kit.plugins import load_everything
    from fidele.orders import service as orders
    from fidele.tenancy.service import Caller

    load_everything()
    clock = SystemClock()
    engine = make_engine(URL, pool_size=2)
    factory = make_sessionmaker(engine)
    caller = Caller(m, p, None, frozenset({"admin"}))
    out: list[tuple[int, float, float]] = []
    warm = True
    for external, cid in share:
        if warm:  # the first order pays the imports and mapper set-up: not measured
            warm = False
            with transaction(factory) as session:
                orders.create(session, caller, _order(external, clock), clock.now())
            ready.wait()  # type: ignore[attr-defined]
            start = time.monotonic()
            nxt = start
            continue
        if time.monotonic() - start >= seconds:
            break
        body = _order(external, clock)
        t = time.monotonic()
        with transaction(factory) as session:
            orders.create(session, caller, body, clock.now())
        out.append((cid, time.time(), time.monotonic() - t))
        nxt += 1 / rate
        time.sleep(max(0.0, nxt - time.monotonic()))
    engine.dispose()
    return out


def capacity_bench(info: dict[str, int], n: int = 2000) -> dict[str, object]:
    """How fast the membership loop re-evaluates dirty customers, apart from order intake: ``n``
    customers get a fresh order (bulk SQL) and the dirty mark an order event writes; one
    ``drain`` (batches of 500, each in its own transaction) re-evaluates them against the
    merchant's segments and appends their ``segment.entered`` events."""
    from fidele.segments import membership
    from fidele.segments import service as facts

    clock = SystemClock()
    engine = make_engine(URL)
    factory = make_sessionmaker(engine)
    m, p = info["merchant_id"], info["programme_id"]
    bits = membership.kinds_mask({"order", "loyalty", "event"})
    with transaction(factory) as session:
        session.execute(text("DELETE FROM segment_dirty"))
        ids = [
            r[0]
            for r in session.execute(
                text(
                    "SELECT c.id FROM customers c WHERE c.merchant_id = :m AND NOT EXISTS "
                    "(SELECT 1 FROM segment_members s JOIN segments g ON g.id = s.segment_id "
                    "WHERE g.name = 'Bought this week' AND s.customer_id = c.id) "
                    "ORDER BY random() LIMIT :n"
                ),
                {"m": m, "n": n},
            )
        ]
        session.execute(
            text(
                "INSERT INTO orders (merchant_id, programme_id, customer_id, external_id, "
                "placed_at, currency, subtotal, discounts, shipping, tax, prices_include_tax, "
                "adjustment, total, refunded_total, status, payment_status, source, "
                "payload_hash, attributes, created_at, updated_at) "
                "SELECT :m, :p, id, 'cap-' || id || '-' || floor(random() * 1e9), now(), 'EUR', "
                "2500, 0, 0, 0, false, 0, 2500, 0, 'placed', 'paid', 'bench', 'x', '{}', "
                "now(), now() FROM unnest(CAST(:ids AS bigint[])) id"
            ),
            {"m": m, "p": p, "ids": ids},
        )
        facts.refresh_order_facts(session, ids)  # as the order's event handler does
        session.execute(
            text(
                "INSERT INTO segment_dirty (customer_id, merchant_id, kinds, marked_at) "
                "SELECT id, :m, :k, now() FROM unnest(CAST(:ids AS bigint[])) id"
            ),
            {"m": m, "k": bits, "ids": ids},
        )
    t = time.perf_counter()
    done = membership.drain(factory, clock)
    took = time.perf_counter() - t
    engine.dispose()
    return {
        "customers": done,
        "seconds": round(took, 2),
        "customers_per_s": round(done / took, 1),
        "per_batch_of_500_s": round(took / max(1, -(-done // 500)), 2),
    }


def _order(external: str, clock: SystemClock):  # type: ignore[no-untyped-def]
    from fidele.orders.schemas import OrderIn

    return OrderIn.model_validate(
        {
            "id": f"lat-{external}-{random.randrange(10**9)}",
            "customer_id": external,
            "placed_at": clock.now().isoformat(),
            "currency": "EUR",
            "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 2500}],
            "total": 2500,
        }
    )


def sql_intake_bench(info: dict[str, int], seconds: float, rate: float) -> dict[str, object]:
    """Latency at a full ``rate`` of orders per second when the orders service itself cannot
    be driven that fast on this machine: every 100 ms one transaction writes ``rate / 10``
    orders (bulk SQL) and the dirty marks their ``order.placed`` events write; the membership
    loop and the watcher run as in :func:`latency_bench`."""
    from fidele.segments import membership
    from fidele.segments import service as facts

    clock = SystemClock()
    engine = make_engine(URL, pool_size=4)
    factory = make_sessionmaker(engine)
    m, p = info["merchant_id"], info["programme_id"]
    bits = membership.kinds_mask({"order", "loyalty", "event"})
    with transaction(factory) as session:
        session.execute(text("DELETE FROM segment_dirty"))
        recent_id = session.execute(
            text("SELECT id FROM segments WHERE merchant_id = :m AND name = 'Bought this week'"),
            {"m": m},
        ).scalar_one()
        pool = [
            r[0]
            for r in session.execute(
                text(
                    "SELECT c.id FROM customers c WHERE c.merchant_id = :m AND NOT EXISTS "
                    "(SELECT 1 FROM segment_members s WHERE s.segment_id = :s "
                    "AND s.customer_id = c.id) ORDER BY random() LIMIT :k"
                ),
                {"m": m, "s": recent_id, "k": int(seconds * rate) + 10},
            )
        ]
    committed: dict[int, float] = {}
    seen: dict[int, float] = {}
    done = threading.Event()
    wanted = set(pool)

    def watch() -> None:
        last = 0
        deadline = None
        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT id, customer_id FROM events WHERE id > :last AND merchant_id = :m "
                        "AND type = 'segment.entered' AND (payload->>'segment_id')::int = :s "
                        "ORDER BY id"
                    ),
                    {"last": last - RESCAN, "m": m, "s": recent_id},
                ).all()
            now = time.time()
            for eid, cid in rows:
                last = max(last, eid)
                if cid in wanted:
                    seen.setdefault(cid, now)
            if done.is_set():
                deadline = deadline or time.monotonic() + 30
                if all(c in seen for c in committed) or time.monotonic() > deadline:
                    return
            time.sleep(0.05)

    loop = membership.MembershipLoop(factory, clock, idle_seconds=0.2)
    loop.start()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    per_tick = max(1, int(rate / 10))
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < seconds and pool:
        ids, pool = pool[:per_tick], pool[per_tick:]
        with transaction(factory) as session:
            session.execute(
                text(
                    "INSERT INTO orders (merchant_id, programme_id, customer_id, external_id, "
                    "placed_at, currency, subtotal, discounts, shipping, tax, "
                    "prices_include_tax, adjustment, total, refunded_total, status, "
                    "payment_status, source, payload_hash, attributes, created_at, updated_at) "
                    "SELECT :m, :p, id, 'sql-' || id || '-' || floor(random() * 1e9), now(), "
                    "'EUR', 2500, 0, 0, 0, false, 0, 2500, 0, 'placed', 'paid', 'bench', 'x', "
                    "'{}', now(), now() FROM unnest(CAST(:ids AS bigint[])) id"
                ),
                {"m": m, "p": p, "ids": ids},
            )
            facts.refresh_order_facts(session, ids)  # as the order's event handler does
            session.execute(
                text(
                    "INSERT INTO segment_dirty (customer_id, merchant_id, kinds, marked_at) "
                    "SELECT id, :m, :k, now() FROM unnest(CAST(:ids AS bigint[])) id "
                    "ON CONFLICT (customer_id) DO UPDATE SET kinds = segment_dirty.kinds | :k"
                ),
                {"m": m, "k": bits, "ids": ids},
            )
        at = time.time()
        for cid in ids:
            committed[cid] = at
        tick += 1
        time.sleep(max(0.0, start + tick * 0.1 - time.monotonic()))
    elapsed = time.monotonic() - start
    done.set()
    watcher.join(timeout=40)
    loop.stop()
    lat = sorted(seen[c] - committed[c] for c in committed if c in seen)

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

    engine.dispose()
    return {
        "orders": len(committed),
        "orders_per_s": round(len(committed) / elapsed, 1),
        "entered_seen": len(lat),
        "missing": len(committed) - len(lat),
        "latency_p50_s": round(pct(0.5), 3),
        "latency_p95_s": round(pct(0.95), 3),
        "latency_p99_s": round(pct(0.99), 3),
        "latency_max_s": round(lat[-1], 3) if lat else None,
    }


SEG_RULE = {"field": "orders.count", "op": "gte", "value": 2, "within_days": 365}
HTTP_PORT = 8771


def _fidele(url: str, *args: str) -> str:
    from ingest import BIN

    env = {**os.environ, "FIDELE_DATABASE_URL": url, "FIDELE_EMBEDDED_WORKER": "false"}
    done = subprocess.run([str(BIN / "fidele"), *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"fidele {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _q(xs: list[float], q: float) -> float | None:
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 3) if xs else None


LATE = -1  # an order not sent: its due time passed by more than the grace


async def _paced_posts(
    base: str, key: str, customers: list[str], tag: str, rate: float, grace: float = 15.0
) -> list[tuple[str, float, float, int]]:
    """POST one order per customer, request i due at start + i/rate (64 senders); per order
    (customer external id, send wall time, response wall time, status; 0 = transport error,
    ``LATE`` = not sent: the run's length plus ``grace`` had passed when a sender was free)."""
    import asyncio
    from urllib.parse import urlsplit

    from load import RawClient, auth

    parts = urlsplit(base)
    client = RawClient(parts.hostname or "127.0.0.1", parts.port or 80, auth(key))
    out: list[tuple[str, float, float, int]] = []
    pending = iter(enumerate(customers))
    start = time.perf_counter()
    placed = datetime.now(UTC).isoformat()

    deadline = start + len(customers) / rate + grace

    async def sender() -> None:
        for i, external in pending:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            if time.perf_counter() > deadline:  # the server fell that far behind: not sent
                out.append((external, time.time(), math.inf, LATE))
                continue
            request = client.encode(
                "POST",
                "/v1/orders",
                {
                    "id": f"{tag}-{i}",
                    "customer_id": external,
                    "placed_at": placed,
                    "currency": "EUR",
                    "lines": [{"product_id": "p1", "quantity": 1, "unit_price": 2500}],
                    "total": 2500,
                },
            )
            sent = time.time()
            try:
                status = (await client.send(request))[0]
            except OSError:
                status = 0
            out.append((external, sent, time.time(), status))

    await asyncio.gather(*(sender() for _ in range(64)))
    await client.aclose()
    return out


def _http_run(
    base: str,
    key: str,
    url: str,
    customers: list[str],
    ids: dict[str, int],
    tag: str,
    rate: float,
    segment: bool,
) -> dict[str, object]:
    """One run: optionally save the segment, POST the orders, watch ``segment.entered``."""
    import asyncio

    import httpx
    from sqlalchemy import select

    from fidele.events.models import Event

    headers = {"Authorization": f"Bearer {key}"}
    seg_id = None
    if segment:
        t = time.perf_counter()
        made = httpx.post(
            f"{base}/v1/segments",
            json={"name": f"Second order {tag}", "rule": SEG_RULE},
            headers=headers,
            timeout=600,
        )
        made.raise_for_status()
        seg_id = made.json()["id"]
        _say(f"    saved the segment in {time.perf_counter() - t:.1f} s")
    engine = make_engine(url, pool_size=1)
    wanted = {ids[c] for c in customers}
    seen: dict[int, tuple[float, datetime]] = {}
    done = threading.Event()
    with engine.connect() as conn:
        start_id = conn.execute(select(func_max(Event.id))).scalar() or 0

    def watch() -> None:
        last = start_id
        deadline = None
        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(Event.id, Event.customer_id, Event.received_at, Event.payload)
                    .where(Event.id > max(start_id, last - RESCAN))
                    .where(Event.type == "segment.entered")
                    .order_by(Event.id)
                ).all()
            now = time.time()
            for eid, cid, received, payload in rows:
                last = max(last, eid)
                if cid in wanted and payload.get("segment_id") == seg_id:
                    seen.setdefault(cid, (now, received))
            if done.is_set():
                deadline = deadline or time.monotonic() + 30
                if len(seen) >= expected[0] or time.monotonic() > deadline:
                    return
            time.sleep(0.05)

    expected = [len(wanted)]
    watcher = threading.Thread(target=watch, daemon=True)
    if segment:
        watcher.start()
    load_before = _load()
    posts = asyncio.run(_paced_posts(base, key, customers, tag, rate))
    ok = [(c, s, r) for c, s, r, st in posts if 200 <= st < 300]
    expected[0] = len(ok)
    done.set()
    if segment:
        watcher.join(timeout=60)
    load_after = _load()
    sends = [s for _, s, _ in ok]
    span = max(sends) - min(sends) if len(sends) > 1 else float("nan")
    post_lat = sorted(r - s for _, s, r in ok)
    out: dict[str, object] = {
        "run": "segment" if segment else "reference (no segment of ours)",
        "orders_ok": len(ok),
        "orders_failed": sum(1 for p in posts if p[3] not in (LATE,) and not 200 <= p[3] < 300),
        "orders_not_sent": sum(1 for p in posts if p[3] == LATE),
        "statuses": dict(sorted(Counter(str(p[3]) for p in posts).items())),
        "orders_per_s": round((len(ok) - 1) / span, 1) if len(ok) > 1 else None,
        "post_p50_s": _q(post_lat, 0.5),
        "post_p95_s": _q(post_lat, 0.95),
        "post_p99_s": _q(post_lat, 0.99),
        "post_max_s": _q(post_lat, 1.0),
        "load_1min": f"{load_before} -> {load_after}",
    }
    if segment:
        visible, recorded = [], []
        for c, s, _ in ok:
            hit = seen.get(ids[c])
            if hit is not None:
                visible.append(hit[0] - s)
                recorded.append(hit[1].timestamp() - s)
        visible.sort()
        recorded.sort()
        out.update(
            {
                "entered": len(visible),
                "missing": len(ok) - len(visible),
                "entered_visible_p50_s": _q(visible, 0.5),
                "entered_visible_p95_s": _q(visible, 0.95),
                "entered_visible_p99_s": _q(visible, 0.99),
                "entered_visible_max_s": _q(visible, 1.0),
                "entered_recorded_p50_s": _q(recorded, 0.5),
                "entered_recorded_p95_s": _q(recorded, 0.95),
                "entered_recorded_p99_s": _q(recorded, 0.99),
            }
        )
        httpx.delete(f"{base}/v1/segments/{seg_id}", headers=headers, timeout=600)
    engine.dispose()
    return out


def func_max(col):  # type: ignore[no-untyped-def]
    from sqlalchemy import func

    return func.max(col)


def http_latency_bench(backend: str, seconds: float, rate: float, repeat: int) -> list[dict]:
    """Event-to-membership latency through ``fidele serve`` on ``backend`` (see the module
    docstring): ``repeat`` pairs of runs (reference, segment), alternating."""
    import tempfile

    from sqlalchemy import select

    from fidele.customers.models import Customer
    from ingest import BIN, _wait, createdb, dropdb

    per_run = int(seconds * rate)
    n = per_run * 2 * repeat
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        name = f"fidele_bench_seglat_{os.getpid()}"
        if backend == "sqlite":
            url = f"sqlite:///{tmp}/seglat.db"
        else:
            url = createdb(name).replace("postgresql://", "postgresql+psycopg://")
        try:
            merchant = json.loads(_fidele(url, "merchant", "create", "Bench", "--json"))
            m = str(merchant["merchant_id"])
            key = json.loads(_fidele(url, "apikey", "create", "--merchant", m, "--json"))["key"]
            seed = Path(tmp) / "first_orders.csv"
            placed = (datetime.now(UTC) - timedelta(days=30)).isoformat()
            with seed.open("w") as f:
                f.write("id,customer_id,placed_at,currency,product_id,quantity,unit_price,total\n")
                for i in range(n):
                    f.write(f"first-{i},s{i},{placed},EUR,p1,1,2500,2500\n")
            t = time.perf_counter()
            _fidele(url, "import", "orders", str(seed), "--merchant", m, "--json")
            _say(
                f"  {backend}: {n:,} customers with one order imported in "
                f"{time.perf_counter() - t:.0f} s"
            )
            # the jobs' first round before serving (as `fidele demo` does): the analytics
            # refresh of the imported history, the membership of the imported customers...
            # The embedded worker then starts in the steady state an operator's server is in
            # (on a fresh import, that first round in the server's process held SQLite's
            # intake to ~14 orders/s for minutes: see bench/README.md)
            t = time.perf_counter()
            _fidele(url, "worker", "--once")
            _say(f"  first round of jobs (`fidele worker --once`): {time.perf_counter() - t:.0f} s")
            engine = make_engine(url, pool_size=1)
            with engine.connect() as conn:
                ids = {
                    e: i for e, i in conn.execute(select(Customer.external_id, Customer.id)).all()
                }
            engine.dispose()
            env = {**os.environ, "FIDELE_DATABASE_URL": url}  # embedded worker on (default)
            env.pop("FIDELE_EMBEDDED_WORKER", None)
            server = subprocess.Popen(
                [str(BIN / "fidele"), "serve", "--port", str(HTTP_PORT), "--no-access-log"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            base = f"http://127.0.0.1:{HTTP_PORT}"
            try:
                _wait(f"{base}/healthz")
                time.sleep(3)  # the embedded worker's first round of jobs
                for r in range(repeat):
                    for k, segment in enumerate((False, True)):
                        chunk = [
                            f"s{i}" for i in range((2 * r + k) * per_run, (2 * r + k + 1) * per_run)
                        ]
                        _say(
                            f"  {backend} run {r + 1}/{repeat}, "
                            f"{'segment' if segment else 'reference'}:"
                        )
                        res = _http_run(
                            base, key, url, chunk, ids, f"{backend}{r}{k}", rate, segment
                        )
                        res["backend"] = backend
                        _say("    " + json.dumps(res))
                        results.append(res)
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
        finally:
            if backend != "sqlite":
                dropdb(name)
    return results


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
    if "--http" in sys.argv:
        seconds = float(_opt("--seconds", 60))
        rate = float(_opt("--rate", 100))
        repeat = int(_opt("--repeat", 1))
        choice = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--backend=")), None)
        if choice is None and "--backend" in sys.argv:
            choice = sys.argv[sys.argv.index("--backend") + 1]
        chosen = ["sqlite", "postgresql"] if choice in (None, "both") else [choice]
        _say(f"HTTP event-to-membership, {rate:g} orders/s for {seconds:g} s, load {_load()}")
        for backend in chosen:
            http_latency_bench(backend, seconds, rate, repeat)
        return
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    for flag in ("--seconds", "--rate", "--producers"):  # their values are not the size
        if flag in sys.argv:
            args = [a for a in args if a != sys.argv[sys.argv.index(flag) + 1]]
    n = int(args[0]) if args else 1_000_000
    seconds = float(_opt("--seconds", 30))
    rate = float(_opt("--rate", 100))
    now = datetime.now(UTC)
    _say(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    info = build(n, now)
    if "--no-count" not in sys.argv:
        _say("count, 4 criteria:")
        counted = count_bench(info, now)
        for line in counted["plan"]:  # type: ignore[union-attr]
            _say(f"    {line}")
    if "--no-latency" not in sys.argv:
        _say(f"latency at {rate:g} orders/s for {seconds:g} s:")
        latency = latency_bench(info, seconds, rate)
        _say(json.dumps(latency, indent=2))
        _say(f"latency at {rate:g} orders/s written by bulk SQL (orders + dirty marks):")
        _say(json.dumps(sql_intake_bench(info, seconds, rate), indent=2))
        _say("membership loop capacity (2,000 dirty customers, one drain):")
        _say(json.dumps(capacity_bench(info), indent=2))
    _say(f"load: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


def _opt(name: str, default: float) -> float:
    argv = sys.argv
    return float(argv[argv.index(name) + 1]) if name in argv else default


if __name__ == "__main__":
    main()
