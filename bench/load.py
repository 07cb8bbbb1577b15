"""HTTP load generator for bench/ingest.py, run as its own process: POST /v1/orders with
unique bodies, either closed-loop (N concurrent clients) or open-loop (paced at a rate,
latency measured from each request's scheduled time, so queueing is not hidden)."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable

import httpx


def body(worker: int, n: int, run: str) -> dict[str, object]:
    qty = 1 + n % 3
    return {
        "id": f"{run}-{worker}-{n}",
        "customer_id": f"c{(worker * 7919 + n) % 50000}",
        "placed_at": "2026-01-05T10:00:00+01:00",
        "currency": "EUR",
        "lines": [
            {
                "product_id": f"p{n % 50}",
                "name": "T-shirt",
                "category": "apparel",
                "quantity": qty,
                "unit_price": 1500,
            }
        ],
        "shipping": 490,
        "discounts": 0,
        "total": qty * 1500 + 490,
    }


async def post(client: httpx.AsyncClient, data: dict[str, object]) -> int:
    """The status, or 0 for a transport error (timeout, refused): counted, not fatal."""
    try:
        return (await client.post("/v1/orders", json=data)).status_code
    except httpx.HTTPError:
        return 0


async def closed(client: httpx.AsyncClient, clients: int, seconds: float, run: str) -> list:
    stop = time.perf_counter() + seconds
    out: list[tuple[float, int]] = []

    async def worker(w: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            status = await post(client, body(w, n, run))
            out.append((time.perf_counter() - t0, status))
            n += 1

    await asyncio.gather(*(worker(w) for w in range(clients)))
    return out


Send = Callable[[int], Awaitable[int]]
LATE = -1  # status of a request still unanswered (or never sent) when the run's time is up


async def paced(send: Send, rate: float, seconds: float, *, grace: float = 5.0) -> list:
    """Open loop: request i is due at start + i/rate whatever the answers; 64 senders take the
    due requests in order, and latency counts from the due time (queueing included).

    The run always ends by ``seconds + grace``: a request not answered by then (or never sent
    because the server fell behind) is counted with status ``LATE`` and an infinite latency,
    so an overloaded server shows as late requests and an unbounded p99, not as a hang."""
    out: list[tuple[float, int]] = []
    start = time.perf_counter()
    deadline = start + seconds + grace
    pending = iter(range(int(rate * seconds)))

    async def sender() -> None:
        for i in pending:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            left = deadline - time.perf_counter()
            try:
                status = await asyncio.wait_for(send(i), left) if left > 0 else LATE
            except TimeoutError:
                status = LATE
            late = status == LATE
            out.append((math.inf if late else time.perf_counter() - due, status))

    await asyncio.gather(*(sender() for _ in range(64)))
    return out


def summary(out: list[tuple[float, int]], elapsed: float) -> dict[str, object]:
    """Counts and latency quantiles in ms over every scheduled request (late ones count as
    infinite: a quantile that falls on them prints as null)."""
    lat = sorted(x for x, _ in out)
    ok = sum(1 for _, s in out if 200 <= s < 300)
    late = sum(1 for _, s in out if s == LATE)

    def pick(q: float) -> float | None:
        x = lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0
        return None if math.isinf(x) else round(x * 1000, 1)

    return {
        "requests": len(out),
        "ok": ok,
        "late": late,
        "failed": len(out) - ok - late,
        "seconds": round(elapsed, 2),
        "rps": round(ok / elapsed, 1),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
    }


async def main(args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=max(args.clients, 64))
    headers = {"Authorization": f"Bearer {args.key}"}
    async with httpx.AsyncClient(
        base_url=args.url, headers=headers, limits=limits, timeout=30
    ) as client:
        t0 = time.perf_counter()
        if args.rate:
            out = await paced(lambda i: post(client, body(0, i, args.run)), args.rate, args.seconds)
        else:
            out = await closed(client, args.clients, args.seconds, args.run)
        elapsed = time.perf_counter() - t0
    print(json.dumps(summary(out, elapsed)))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--run", default="r")
    asyncio.run(main(p.parse_args()))
