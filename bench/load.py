"""HTTP load generator for bench/ingest.py, run as its own process: POST /v1/orders with
unique bodies, either closed-loop (N concurrent clients) or open-loop (paced at a rate,
latency measured from each request's scheduled time, so queueing is not hidden).

The client is ``RawClient``: HTTP/1.1 keep-alive over asyncio streams, request bytes built
once, responses read by Content-Length. It costs a fraction of httpx's CPU per request, which
matters here: the load generator shares the machine's two cores with the server it measures
(httpx alone held the bare endpoint of bench/checkout.py to ~200 req/s)."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit


class RawClient:
    """Requests over a pool of keep-alive connections, with the request bytes built once per
    call and the response read by Content-Length: a fraction of httpx's CPU per request, so
    the load generator takes less of the cores it shares with the server it measures."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        base = {"Host": f"{host}:{port}", "Connection": "keep-alive", **headers}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in base.items()).encode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def encode(self, method: str, path: str, body: object | None = None) -> bytes:
        if body is None:
            return f"{method} {path} HTTP/1.1\r\n".encode() + self._head + b"\r\n"
        data = json.dumps(body, separators=(",", ":")).encode()
        return (
            f"{method} {path} HTTP/1.1\r\n".encode()
            + self._head
            + f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
            + data
        )

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """(status, body) of one request; a connection error raises OSError. A kept-alive
        connection the server closed meanwhile (its keep-alive timeout) is retried once on a
        new connection, as HTTP clients do; the request had not reached the application."""
        if self._idle:
            try:
                return await self._send(self._idle.pop(), request)
            except (_StaleConnection, ConnectionResetError, BrokenPipeError):
                pass
        return await self._send(await asyncio.open_connection(self.host, self.port), request)

    async def _send(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> tuple[int, bytes]:
        reader, writer = conn
        if reader.at_eof():
            writer.close()
            raise _StaleConnection
        try:
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as e:
                if not e.partial:  # closed before answering a byte: a stale connection
                    raise _StaleConnection from e
                raise
            status = int(head[9:12])
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
                elif name == b"transfer-encoding":
                    raise OSError("chunked responses are not supported by RawClient")
            body = await reader.readexactly(length) if length else b""
        except _StaleConnection:
            writer.close()
            raise
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            writer.close()
            raise OSError(f"bad or truncated response: {e}") from e
        except BaseException:
            writer.close()
            raise
        if close:
            writer.close()
        else:
            self._idle.append(conn)
        return status, body

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


class _StaleConnection(ConnectionError):
    """A kept-alive connection closed by the server before this request was answered."""


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


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


async def status(client: RawClient, request: bytes) -> int:
    """The status, or 0 for a transport error (refused, reset): counted, not fatal."""
    try:
        return (await client.send(request))[0]
    except OSError:
        return 0


async def post(client: RawClient, data: dict[str, object]) -> int:
    return await status(client, client.encode("POST", "/v1/orders", data))


async def closed(client: RawClient, clients: int, seconds: float, run: str) -> list:
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

    failures: dict[str, int] = {}
    for _, s in out:
        if s != LATE and not 200 <= s < 300:
            failures[str(s)] = failures.get(str(s), 0) + 1
    return {
        "requests": len(out),
        "ok": ok,
        "late": late,
        "failed": len(out) - ok - late,
        "failed_by_status": failures,  # 0: transport error (refused, reset)
        "seconds": round(elapsed, 2),
        "rps": round(ok / elapsed, 1),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
    }


async def main(args: argparse.Namespace) -> None:
    url = urlsplit(args.url)
    client = RawClient(url.hostname or "127.0.0.1", url.port or 80, auth(args.key))
    t0 = time.perf_counter()
    if args.rate:
        out = await paced(lambda i: post(client, body(0, i, args.run)), args.rate, args.seconds)
    else:
        out = await closed(client, args.clients, args.seconds, args.run)
    elapsed = time.perf_counter() - t0
    await client.aclose()
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
