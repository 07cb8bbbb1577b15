"""A loopback webhook receiver for bench/outbox.py and bench/soak.py, run as its own process:
answers every POST with 204 (HTTP/1.1 keep-alive, asyncio, one thread: a thread per connection
collapsed under 16 concurrent senders on the GIL), counts deliveries by ``X-Fidele-Delivery``
and serves the counts as JSON on ``GET /stats`` (``POST /reset`` clears them).
``python bench/_receiver.py [PORT]``: 0 (the default) takes a free port; the port is printed."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

seen: Counter[str] = Counter()
times = {"first": 0.0, "last": 0.0}
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


def stats() -> bytes:
    data = json.dumps(
        {
            "received": sum(seen.values()),
            "unique": len(seen),
            "duplicated": sum(1 for n in seen.values() if n > 1),
            **times,
        }
    ).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    return head.encode() + b"\r\n" + data


def handle(method: str, path: str, headers: dict[str, str]) -> bytes:
    if method == "GET":
        return stats()
    if path == "/reset":
        seen.clear()
        times.update(first=0.0, last=0.0)
        return NO_CONTENT
    now = time.time()
    seen[headers.get("x-fidele-delivery", "")] += 1
    times["first"] = times["first"] or now
    times["last"] = now
    return NO_CONTENT


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            writer.write(handle(method, path, headers))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
