"""Failed code lookups are limited per API key and per customer, in fixed one-minute windows.

The counters live in the database (``promotion_rate_counters``, one atomic upsert per failure
batch) rather than in process memory, so several `fidele serve` processes share one limit and a
restart does not reset it. A fixed window lets at most twice the limit through across a window
boundary; that is accepted for a limit meant to stop enumeration (55-bit codes), not to meter."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from fidele.errors import RateLimited
from fidele.promotions.repository import RateRepository
from fidele.tenancy.service import Caller

WINDOW = timedelta(minutes=1)


def window_of(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def keys(caller: Caller, customer_ref: str) -> list[str]:
    return [f"key:{caller.api_key_id or 0}", f"customer:{caller.merchant_id}:{customer_ref}"][:2]


def refuse_over(failures: int, limit: int, now: datetime) -> None:
    """Raise 429 with Retry-After when a key or a customer used up its failures this minute
    (``failures``: the most of any key, read with the coupon lookup)."""
    if failures >= limit:
        retry = max(1, int((window_of(now) + WINDOW - now).total_seconds() + 0.999))
        raise RateLimited(f"too many failed code lookups; retry in {retry} s", retry_after=retry)


def record_failures(
    session: Session, caller: Caller, customer_ref: str, now: datetime, n: int
) -> None:
    if n <= 0:
        return
    repo = RateRepository(session)
    for key in keys(caller, customer_ref):
        repo.bump(key, window_of(now), n)
