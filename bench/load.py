"""HTTP load generator for bench/ingest.py, run as its own process: POST /v1/orders with
unique bodies, either closed-loop (N concurrent clients) or open-loop (paced at a rate,
latency measured from each request's scheduled time, so queueing is not hidden)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

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


async def paced(client: httpx.AsyncClient, rate: float, seconds: float, run: str) -> list:
    """Open loop: request i is due at start + i/rate whatever the answers; 64 senders take the
    due requests in order, and latency counts from the due time (queueing included)."""
    out: list[tuple[float, int]] = []
    start = time.perf_counter()
    total = int(rate * seconds)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def sender() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status = await post(client, body(0, i, run))
            out.append((time.perf_counter() - due, status))

    await asyncio.gather(*(sender() for _ in range(64)))
    return out


async def main(args: argparse.Namespace) -> None:
    limits = httpx.Limits(max_connections=max(args.clients, 64))
    headers = {"Authorization": f"Bearer {args.key}"}
    async with httpx.AsyncClient(
        base_url=args.url, headers=headers, limits=limits, timeout=30
    ) as client:
        t0 = time.perf_counter()
        if args.rate:
            out = await paced(client, args.rate, args.seconds, args.run)
        else:
            out = await closed(client, args.clients, args.seconds, args.run)
        elapsed = time.perf_counter() - t0
    lat = sorted(x for x, _ in out)
    ok = sum(1 for _, s in out if s in (200, 201))
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0  # noqa: E731
    print(
        json.dumps(
            {
                "requests": len(out),
                "ok": ok,
                "seconds": elapsed,
                "rps": ok / elapsed,
                "p50_ms": pick(0.50),
                "p99_ms": pick(0.99),
            }
        )
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--run", default="r")
    asyncio.run(main(p.parse_args()))
