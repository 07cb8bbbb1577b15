"""Soak of the multi-process setup, loopback only and bounded in time: 2 ``fidele serve`` and
2 ``fidele worker`` processes on a scratch PostgreSQL database (createdb/dropdb -h 127.0.0.1
-U postgres), a paced mixed load (70% POST /v1/orders, 10% of them retries of an acknowledged
order; 20% GET loyalty; 10% GET order) spread over both servers, one webhook endpoint on a
loopback receiver (bench/_receiver.py), and three faults:

- at 25% of the run, kill -9 of one server (a supervisor restarts it 5 s later; meanwhile the
  client, like a load balancer, retries a refused connection on the other server);
- at 45%, kill -9 of one worker (restarted 5 s later);
- at 65%, every connection to the database terminated (``pg_terminate_backend``).

Reports lost writes (acknowledged orders missing), duplicated writes, 5xx and transport errors,
the outbox backlog when the load stops and how long the workers take to drain it, and webhooks
received twice or never. Run: ``.venv/bin/python bench/soak.py [--seconds 60] [--rate 90]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
from load import RawClient, auth, body

from ingest import BIN, PG, _wait, createdb, dropdb, fidele
from outbox import fidele_env, receiver_url, start_receiver, stats

MAX_IN_FLIGHT = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PORTS = (free_port(), free_port())


class Fleet:
    """The fidele processes of the soak, by role, restartable after a kill -9."""

    def __init__(self, url: str, logs: Path) -> None:
        self.url, self.logs = url, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, role: str) -> None:
        kind, _, n = role.partition("-")
        args = (
            ["serve", "--port", str(PORTS[int(n)]), "--no-access-log"]
            if kind == "serve"
            else ["worker"]
        )
        out = (self.logs / f"{role}.log").open("ab")
        self.procs[role] = subprocess.Popen(
            [str(BIN / "fidele"), *args], env=fidele_env(self.url), stdout=out, stderr=out
        )

    def kill(self, role: str) -> None:
        self.procs[role].send_signal(signal.SIGKILL)
        self.procs[role].wait()

    def stop(self) -> None:
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            p.wait(timeout=60)


def setup(url: str) -> tuple[str, int]:
    merchant = json.loads(fidele(url, "merchant", "create", "Soak", "--json"))
    key = json.loads(
        fidele(
            url,
            "apikey",
            "create",
            "--merchant",
            str(merchant["merchant_id"]),
            "--scopes",
            "read,write,admin",
            "--json",
        )
    )["key"]
    return key, merchant["merchant_id"]


def terminate_connections(name: str) -> int:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


async def faults(fleet: Fleet, name: str, seconds: float, log: list[str]) -> None:
    t0 = time.monotonic()

    async def at(fraction: float) -> None:
        await asyncio.sleep(max(0.0, t0 + seconds * fraction - time.monotonic()))

    await at(0.25)
    fleet.kill("serve-0")
    log.append(f"{time.monotonic() - t0:5.1f} s kill -9 serve-0")
    await asyncio.sleep(5)
    fleet.start("serve-0")
    log.append(f"{time.monotonic() - t0:5.1f} s serve-0 restarted")
    await at(0.45)
    fleet.kill("worker-0")
    log.append(f"{time.monotonic() - t0:5.1f} s kill -9 worker-0")
    await asyncio.sleep(5)
    fleet.start("worker-0")
    log.append(f"{time.monotonic() - t0:5.1f} s worker-0 restarted")
    await at(0.65)
    n = terminate_connections(name)
    log.append(f"{time.monotonic() - t0:5.1f} s {n} database connections terminated")


async def load(key: str, seconds: float, rate: float) -> dict[str, object]:
    clients = [RawClient("127.0.0.1", port, auth(key)) for port in PORTS]
    acked: list[str] = []
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    rerouted = 0

    async def one(i: int) -> None:
        nonlocal rerouted
        kind = i % 10
        if kind < 7:
            if kind == 6 and acked:  # a client retrying an order it already sent
                order = body(0, int(acked[i % len(acked)].rsplit("-", 1)[1]), "soak")
            else:
                order = body(0, i, "soak")
            request = ("POST", "/v1/orders", order)
        elif kind < 9:  # the loyalty of a customer who ordered (body() derives the customer)
            n = int(acked[i % len(acked)].rsplit("-", 1)[1]) if acked else i
            request = ("GET", f"/v1/customers/{body(0, n, 'soak')['customer_id']}/loyalty", None)
        else:
            request = ("GET", f"/v1/orders/{acked[-1] if acked else 'none'}", None)
        if len(pending) >= MAX_IN_FLIGHT:  # an overloaded fleet: shed, do not queue forever
            statuses[f"{request[0]} shed"] += 1
            return
        t = time.perf_counter()
        code: int | str = 0
        for attempt in range(2):  # a refused connection is retried on the other server
            client = clients[(i + attempt) % 2]
            try:
                code, _ = await asyncio.wait_for(client.send(client.encode(*request)), 30)
                break
            except TimeoutError:
                code = "timeout"
                break
            except (OSError, EOFError):  # refused, reset, closed mid-answer
                code = "conn_error"
                rerouted += attempt == 0
        latencies.append(time.perf_counter() - t)
        statuses[f"{request[0]} {code}"] += 1
        if request[0] == "POST" and code in (200, 201):
            acked.append(str(request[2]["id"]))  # type: ignore[index]

    pending: set[asyncio.Task[None]] = set()
    tasks = []
    t0 = time.monotonic()
    i = 0
    while (now := time.monotonic()) < t0 + seconds:
        task = asyncio.create_task(one(i))
        pending.add(task)
        task.add_done_callback(pending.discard)
        tasks.append(task)
        i += 1
        await asyncio.sleep(max(0.0, t0 + i / rate - now))
    await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "requests": i,
        "acked": sorted(set(acked)),
        "statuses": dict(statuses),
        "rerouted": rerouted,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
    }


def database_counts(url: str, acked: list[str]) -> dict[str, int]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:

        def one(sql: str, *args: object) -> int:
            return int(conn.execute(sql, args).fetchone()[0])  # type: ignore[index]

        return {
            "orders": one("SELECT count(*) FROM orders"),
            "acked_missing": one(
                "SELECT count(*) FROM unnest(%s::text[]) a(id) "
                "WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.external_id = a.id)",
                acked,
            ),
            "orders_duplicated": one(
                "SELECT count(*) FROM (SELECT external_id FROM orders "
                "GROUP BY merchant_id, external_id HAVING count(*) > 1) d"
            ),
            "postings_duplicated": one(
                "SELECT count(*) FROM (SELECT source_key FROM ledger_postings "
                "GROUP BY programme_id, source_key HAVING count(*) > 1) d"
            ),
            "outbox": one("SELECT count(*) FROM outbox"),
            "outbox_pending": one("SELECT count(*) FROM outbox WHERE status = 'pending'"),
            "outbox_sent": one("SELECT count(*) FROM outbox WHERE status = 'sent'"),
            "outbox_dead": one("SELECT count(*) FROM outbox WHERE status = 'dead'"),
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--rate", type=float, default=90, help="requests per second")
    p.add_argument("--drain", type=float, default=120, help="max seconds to wait for the outbox")
    args = p.parse_args()
    name = f"fidele_soak_{os.getpid()}"
    url = createdb(name).replace("postgresql://", "postgresql+psycopg://")
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / name
    logs.mkdir(parents=True, exist_ok=True)
    receiver = start_receiver()
    fleet = Fleet(url, logs)
    events: list[str] = []
    try:
        fidele(url, "db", "upgrade")
        key, _ = setup(url)
        for role in ("serve-0", "serve-1", "worker-0", "worker-1"):
            fleet.start(role)
        for port in PORTS:
            _wait(f"http://127.0.0.1:{port}/healthz")
        r = httpx.post(
            f"http://127.0.0.1:{PORTS[0]}/v1/webhooks/endpoints",
            json={"url": receiver_url()},
            headers=auth(key),
        )
        r.raise_for_status()

        async def run() -> dict[str, object]:
            fault_task = asyncio.create_task(faults(fleet, name, args.seconds, events))
            result = await load(key, args.seconds, args.rate)
            await fault_task
            return result

        result = asyncio.run(run())
        acked = result.pop("acked")
        at_stop = database_counts(url, acked)  # type: ignore[arg-type]
        t = time.monotonic()
        while database_counts(url, [])["outbox_pending"] and time.monotonic() - t < args.drain:
            time.sleep(1)
        drained_in = time.monotonic() - t
        final = database_counts(url, acked)  # type: ignore[arg-type]
        received = stats()
    finally:
        fleet.stop()
        receiver.terminate()
        dropdb(name)
    fivexx = sum(n for k, n in result["statuses"].items() if k.split()[1][0] == "5")  # type: ignore[union-attr]
    report = {
        "seconds": args.seconds,
        "rate": args.rate,
        "load_avg": os.getloadavg(),
        "faults": events,
        **result,
        "acked_orders": len(acked),  # type: ignore[arg-type]
        "5xx": fivexx,
        "at_stop": at_stop,
        "drained_in_s": round(drained_in, 1),
        "after_drain": final,
        "webhooks_received": received["received"],
        "webhooks_unique": received["unique"],
        "webhooks_received_twice": received["duplicated"],
        "sent_never_received": max(0, final["outbox_sent"] - received["unique"]),
        "logs": str(logs),
    }
    print(json.dumps(report, indent=2))
    sys.exit(0)


if __name__ == "__main__":
    main()
