"""Requests per minute per customer and per client address on the storefront endpoints.

Counted in this process's memory (fixed one-minute windows): the storefront is read by
browsers on every page, and a database counter would turn each of those reads into a write.
With several server processes each counts its own share, so the effective limit is the
limit times the number of processes."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from fidele.errors import RateLimited

PER_CUSTOMER = 120
PER_ADDRESS = 600
WINDOW = 60.0
MAX_KEYS = 100_000


class Limiter:
    def __init__(self, per_customer: int = PER_CUSTOMER, per_address: int = PER_ADDRESS) -> None:
        self.limits = {"customer": per_customer, "address": per_address}
        self._counts: dict[str, int] = {}
        self._window = -1
        self._lock = threading.Lock()

    def hit(self, keys: Sequence[tuple[str, str]], now: float) -> None:
        """Count one request for each ``(kind, key)``; 429 once any is over its limit."""
        window = int(now // WINDOW)
        with self._lock:
            if window != self._window or len(self._counts) > MAX_KEYS:
                self._counts, self._window = {}, window
            over = False
            for kind, key in keys:
                name = f"{kind}:{key}"
                self._counts[name] = self._counts.get(name, 0) + 1
                over = over or self._counts[name] > self.limits[kind]
        if over:
            retry = max(1, math.ceil((window + 1) * WINDOW - now))
            raise RateLimited(
                f"too many storefront requests; retry in {retry} s", retry_after=retry
            )
