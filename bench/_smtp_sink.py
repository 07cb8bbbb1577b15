"""A loopback SMTP sink for bench/messaging.py, its own process: aiosmtpd accepting every
message, counting them by ``Message-ID``; ``GET /stats`` on a second port answers the counts as
JSON, ``POST /reset`` clears them. ``python bench/_smtp_sink.py``: prints the SMTP port and the
stats port on one line."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

seen: Counter[bytes] = Counter()
times = {"first": 0.0, "last": 0.0}
lock = threading.Lock()
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.M | re.I)


class Sink:
    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        found = MESSAGE_ID.search(envelope.content)
        now = time.time()
        with lock:
            seen[found.group(1) if found else b""] += 1
            times["first"] = times["first"] or now
            times["last"] = now
        return "250 OK"


class Stats(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        with lock:
            data = {
                "received": sum(seen.values()),
                "unique": len(seen),
                "duplicated": sum(1 for n in seen.values() if n > 1),
                **times,
            }
        self._answer(json.dumps(data).encode())

    def do_POST(self) -> None:  # noqa: N802
        with lock:
            seen.clear()
            times.update(first=0.0, last=0.0)
        self._answer(b"{}")

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    with socket.socket() as probe:  # aiosmtpd's Controller cannot take port 0
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), Stats)
    print(smtp_port, http.server_address[1], flush=True)
    try:
        http.serve_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
