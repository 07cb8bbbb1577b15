"""Retry schedule of the outbox (pure)."""

from __future__ import annotations

from datetime import timedelta

MAX_ATTEMPTS = 12
BASE = timedelta(seconds=30)
CAP = timedelta(hours=6)


def backoff(attempts: int) -> timedelta:
    """Delay before attempt ``attempts + 1``: 30 s, 1 min, 2 min, ... capped at 6 h."""
    return min(BASE * (2 ** max(attempts - 1, 0)), CAP)
