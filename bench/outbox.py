"""Outbox delivery throughput: webhooks delivered per second by 1 and 2 ``fidele worker``
processes to a loopback receiver, against a bare loop POSTing the same signed bodies with
httpx from one process, in the same run (the bare loop runs before and after the workers).

Creates a scratch PostgreSQL database (createdb/dropdb -h 127.0.0.1 -U postgres), one merchant
with one endpoint on the receiver (bench/_receiver.py, its own process), and ``--messages``
pending webhooks; each round resets them to pending and times the receiver's first to last
delivery. Run: ``.venv/bin/python bench/outbox.py [--messages 3000] [--workers 1,2]``.

``--rate 100 --seconds 30`` then adds the "keeps up" check: a producer thread publishes
``--rate`` orders' webhooks per second (one message per endpoint, ``--endpoints``, each order
its own transaction, as the API writes them) while ``fidele worker`` processes deliver; the
backlog (messages committed to the outbox and still pending: not yet delivered, or delivered
and not yet recorded) is sampled twice a second, and the time to drain it once the producer
stops is reported."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine, text

from fidele.db.engine import make_engine
from fidele.db.migrate import upgrade
from fidele.db.session import make_sessionmaker, transaction
from fidele.outbox.models import OutboxMessage
from fidele.tenancy import service as tenancy
from fidele.webhooks import service as webhooks
from ingest import BIN, createdb, dropdb

HERE = Path(__file__).parent
SECRET = "bench-secret-key"
PRODUCERS = 4  # threads publishing the keep-up rounds' orders (one alone lags on a busy machine)
RECEIVER = {"port": 0}  # set by start_receiver: a free port, so runs never share a receiver


def start_receiver() -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_receiver.py")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    RECEIVER["port"] = int(proc.stdout.readline())
    return proc


def receiver_url(path: str = "/hook") -> str:
    return f"http://127.0.0.1:{RECEIVER['port']}{path}"


def stats() -> dict[str, float]:
    return httpx.get(receiver_url("/stats"), timeout=10).json()


def reset() -> None:
    httpx.post(receiver_url("/reset"), timeout=10)


def fidele_env(url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "FIDELE_DATABASE_URL": url,
        "FIDELE_SECRET_KEY": SECRET,
        "FIDELE_EMBEDDED_WORKER": "false",
        "FIDELE_WEBHOOKS_ALLOW_PRIVATE": "true",  # the receiver is on loopback
        **extra,
    }


def start_workers(url: str, n: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [str(BIN / "fidele"), "worker"],
            env=fidele_env(url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]


def seed(url: str, n: int) -> list[tuple[bytes, dict[str, str]]]:
    """A merchant, an endpoint on the receiver and ``n`` pending webhooks; returns the bodies
    and headers the webhook sender will POST, for the bare loop."""
    engine = make_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    now = datetime.now(UTC)
    with transaction(factory) as s:
        made = tenancy.create_merchant(s, name="Bench", now=now, server_secret=SECRET)
        webhooks.create(
            s,
            merchant_id=made.merchant_id,
            url=receiver_url(),
            topics=[],
            now=now,
            allow_private=True,  # the receiver is on loopback
        )
        for i in range(n):
            webhooks.publish(
                s,
                programme_id=made.programme_id,
                merchant_id=made.merchant_id,
                topic="loyalty.points_earned",
                payload={"member_id": i, "points": 80, "balance": 80 + i, "order_id": f"o-{i}"},
                dedup_key=f"bench:{i}",
                now=now,
            )
    requests = []
    with transaction(factory) as s:
        secret = made.webhook_secret
        for msg in s.query(OutboxMessage).order_by(OutboxMessage.id):
            body = json.dumps(msg.payload["body"], sort_keys=True, separators=(",", ":")).encode()
            headers = {
                "Content-Type": "application/json",
                "X-Fidele-Signature": webhooks.sign(secret, body),
                "X-Fidele-Topic": msg.topic,
                "X-Fidele-Delivery": str(msg.id),
            }
            requests.append((body, headers))
    engine.dispose()
    return requests


def bare_loop(requests: list[tuple[bytes, dict[str, str]]]) -> float:
    reset()
    with httpx.Client() as client:
        t0 = time.perf_counter()
        for body, headers in requests:
            client.post(receiver_url(), content=body, headers=headers).raise_for_status()
        elapsed = time.perf_counter() - t0
    return len(requests) / elapsed


def workers_round(url: str, n_workers: int, n: int, timeout: float = 600) -> dict[str, float]:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE outbox SET status = 'pending', attempts = 0, sent_at = NULL, "
                "locked_until = NULL, next_attempt_at = now() - interval '1 second'"
            )
        )
    engine.dispose()
    reset()
    t0 = time.time()
    procs = start_workers(url, n_workers)
    try:
        deadline = time.monotonic() + timeout
        while (s := stats())["unique"] < n and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    return {
        "per_s": s["unique"] / max(s["last"] - s["first"], 1e-9),
        "wall_s": s["last"] - t0,
        "delivered": s["unique"],
        "duplicated": s["duplicated"],
    }


def pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM outbox WHERE status = 'pending'")).scalar_one()
        )


def rate_round(
    url: str, n_workers: int, rate: float, seconds: float, endpoints: int
) -> dict[str, float]:
    """Publish ``rate`` orders' webhooks a second for ``seconds`` while ``n_workers`` deliver;
    the backlog seen meanwhile and the time to drain it afterwards."""
    engine = make_engine(url, pool_size=PRODUCERS + 1)
    factory = make_sessionmaker(engine)
    now = datetime.now(UTC)
    with transaction(factory) as s:  # what earlier rounds left is not this round's
        s.execute(text("UPDATE outbox SET status = 'sent' WHERE status = 'pending'"))
        made = tenancy.create_merchant(s, name=f"Rate {n_workers}", now=now, server_secret=SECRET)
        for _ in range(endpoints):
            webhooks.create(
                s,
                merchant_id=made.merchant_id,
                url=receiver_url(),
                topics=[],
                now=now,
                allow_private=True,
            )
    produced = {"orders": 0, "messages": 0}
    stop = threading.Event()
    tickets = itertools.count()
    lock = threading.Lock()

    def produce(t0: float) -> None:
        """One of PRODUCERS threads: order i is published at t0 + i / rate (or as soon as
        possible when behind), each in its own transaction as the API writes them."""
        while not stop.is_set():
            i = next(tickets)
            delay = t0 + i / rate - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return
            with transaction(factory) as s:
                queued = webhooks.publish(
                    s,
                    programme_id=made.programme_id,
                    merchant_id=made.merchant_id,
                    topic="loyalty.points_earned",
                    payload={"member_id": i, "points": 80, "balance": 80 + i, "order_id": f"r{i}"},
                    dedup_key=f"rate:{n_workers}:{made.merchant_id}:{i}",
                    now=datetime.now(UTC),
                )
            with lock:
                produced["orders"] += 1
                produced["messages"] += queued

    reset()
    procs = start_workers(url, n_workers)
    try:
        while stats()["unique"] == 0 and procs[0].poll() is None:  # a first webhook: workers up
            with transaction(factory) as s:
                webhooks.publish(
                    s,
                    programme_id=made.programme_id,
                    merchant_id=made.merchant_id,
                    topic="loyalty.points_earned",
                    payload={"warm": True},
                    dedup_key=f"rate:{n_workers}:{made.merchant_id}:warm",
                    now=datetime.now(UTC),
                )
            time.sleep(0.2)
        base = stats()["unique"]
        t0 = time.monotonic()
        producers = [
            threading.Thread(target=produce, args=(t0,), daemon=True) for _ in range(PRODUCERS)
        ]
        for producer in producers:
            producer.start()
        backlog = []
        while time.monotonic() - t0 < seconds:
            time.sleep(0.5)
            backlog.append(pending(engine))
        stop.set()
        for producer in producers:
            producer.join()
        elapsed = time.monotonic() - t0
        stopped = time.monotonic()
        while stats()["unique"] - base < produced["messages"] and time.monotonic() - stopped < 120:
            time.sleep(0.05)
        drained = time.monotonic() - stopped
        final = stats()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
        engine.dispose()
    return {
        "orders_per_s": produced["orders"] / elapsed,
        "messages": produced["messages"],
        "delivered": final["unique"] - base,
        "duplicated": final["duplicated"],
        "backlog_max": max(backlog),
        "backlog_mean": sum(backlog) / len(backlog),
        "backlog_last": backlog[-1],
        "drain_s": drained,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=4000)
    p.add_argument(
        "--workers",
        default="1,2,1,2",
        help="worker counts of the rounds, in order (alternated: the machine's load drifts)",
    )
    p.add_argument("--rate", type=float, default=0, help="orders/s of the keep-up rounds")
    p.add_argument("--seconds", type=float, default=30, help="length of a keep-up round")
    p.add_argument("--endpoints", type=int, default=1, help="endpoints (messages per order)")
    p.add_argument("--rate-workers", default="1,2", help="worker counts of the keep-up rounds")
    args = p.parse_args()
    name = f"fidele_bench_outbox_{os.getpid()}"
    url = createdb(name).replace("postgresql://", "postgresql+psycopg://")
    receiver = start_receiver()
    try:
        requests = seed(url, args.messages)
        rows = [("bare loop (httpx, 1 process)", bare_loop(requests), None)]
        for k in (int(x) for x in args.workers.split(",") if x):
            r = workers_round(url, k, args.messages)
            rows.append((f"{k} x fidele worker", r["per_s"], r))
        rows.append(("bare loop again", bare_loop(requests), None))
        kept = [
            (k, rate_round(url, k, args.rate, args.seconds, args.endpoints))
            for k in (int(x) for x in args.rate_workers.split(","))
            if args.rate
        ]
    finally:
        receiver.terminate()
        dropdb(name)
    bare = (rows[0][1] + rows[-1][1]) / 2
    print(f"{args.messages} webhooks to a loopback receiver; load: {os.getloadavg()}")
    print("msgs/s from the receiver's first delivery to its last; wall s from the workers' spawn")
    print(f"{'run':32} {'msgs/s':>8} {'vs bare':>8} {'wall s':>7} {'dup':>4}")
    for label, rate, extra in rows:
        wall = f"{extra['wall_s']:7.1f}" if extra else " " * 7
        dup = f"{extra['duplicated']:4d}" if extra else " " * 4
        print(f"{label:32} {rate:8.0f} {rate / bare:8.0%} {wall} {dup}")
    for k in sorted({label for label, _, extra in rows if extra}):
        rates = sorted(rate for label, rate, extra in rows if label == k)
        median = statistics.median(rates)  # of 2 rounds: their mean
        print(f"median {k:25} {median:8.0f} {median / bare:8.0%}")

    if kept:
        print(
            f"keep-up: {args.rate:.0f} orders/s x {args.endpoints} endpoint(s) for "
            f"{args.seconds:.0f} s; backlog = outbox rows pending (sampled every 0.5 s)"
        )
        print(
            f"{'workers':>7} {'orders/s':>8} {'messages':>8} {'delivered':>9} {'dup':>4} "
            f"{'backlog max':>11} {'mean':>6} {'at stop':>7} {'drained in s':>12}"
        )
        for k, r in kept:
            print(
                f"{k:7d} {r['orders_per_s']:8.1f} {r['messages']:8d} {r['delivered']:9d} "
                f"{r['duplicated']:4d} {r['backlog_max']:11d} {r['backlog_mean']:6.1f} "
                f"{r['backlog_last']:7d} {r['drain_s']:12.2f}"
            )


if __name__ == "__main__":
    main()
