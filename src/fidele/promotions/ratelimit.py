"""Code lookups (coupons, referral codes, reward vouchers, gift cards) are limited per API key
and per customer, in fixed one-minute windows.

Counted before the lookup, not after it: a request first adds the codes it is about to look up
to its keys' in-flight counters (one atomic upsert with RETURNING) and is refused with 429 when
those, with the failures already settled, could go over the limit; after the lookup the
failures are settled and the in-flight count taken back (:func:`lookups`). Parallel requests
thus cannot all read "under the limit" and all look up: at most ``limit`` failed lookups get
an answer per window, and a refused request looked nothing up.

The counts are written in their own short transaction, committed at once: a checkout that fails
later and rolls back keeps its count (otherwise failing on purpose would make guessing free).
On PostgreSQL that is a connection of a small pool of its own, held for one statement, so
waiting for it cannot deadlock with requests holding their pool's connections. SQLite has one
writer and the request already holds the write lock (BEGIN IMMEDIATE): the counts are written
in the request's transaction, serialised by that lock, and written again if that transaction
rolls back.

The counters live in the database (``promotion_rate_counters``) rather than in process memory,
so several `fidele serve` processes share one limit and a restart does not reset it. A fixed
window lets at most twice the limit through across a window boundary; that is accepted for a
limit meant to stop enumeration (55-bit codes), not to meter."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from fidele.db.engine import make_engine
from fidele.errors import RateLimited
from fidele.promotions.repository import RateRepository
from fidele.tenancy.service import Caller

log = logging.getLogger(__name__)
WINDOW = timedelta(minutes=1)
_PENDING = "rate_counts"  # session.info: counts to write again if the request rolls back
# Waits for lookups in flight to settle before answering 429 (seconds; about 0.3 in all).
_PAUSES = (0.01, 0.02, 0.04, 0.08, 0.16)
_side_engines: dict[str, Engine] = {}
_side_lock = threading.Lock()


def window_of(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def keys(caller: Caller, customer_ref: str | None = None) -> list[str]:
    """The counters a lookup counts against: the API key's, and the customer's when known."""
    out = [f"key:{caller.api_key_id or 0}"]
    if customer_ref:
        out.append(f"customer:{caller.merchant_id}:{customer_ref}")
    return out


def refuse_over(failures: int, limit: int, now: datetime) -> None:
    """Raise 429 with Retry-After when a key or a customer used up its failures this minute
    (``failures``: the most of any key)."""
    if failures >= limit:
        retry = max(1, int((window_of(now) + WINDOW - now).total_seconds() + 0.999))
        raise RateLimited(f"too many failed code lookups; retry in {retry} s", retry_after=retry)


@dataclass
class Tally:
    found: int = 0  # lookups that found their code (given back: only failures count)


@contextmanager
def lookups(
    session: Session, rate_keys: Sequence[str], now: datetime, n: int, limit: int
) -> Iterator[Tally]:
    """Around ``n`` code lookups: counted before any is made (429 with Retry-After when they
    could take a key over ``limit`` failures this minute), settled after as failures minus the
    ``found`` the caller reports. With ``n`` 0, only checks that the limit is not used up (a
    checkout without codes is refused too once it is).

    Each key has two counters: settled failures, and lookups in flight. A request may look up
    when settled + in flight (its own included) stays within the limit, so parallel requests
    can never answer more than ``limit`` failures; when only lookups in flight stand in the
    way (a busy shop with valid codes), it waits a moment for them to settle rather than
    answer a 429 that no failure caused."""
    window = window_of(now)
    if n <= 0:
        refuse_over(RateRepository(session).most(rate_keys, window), limit, now)
        yield Tally()
        return
    _reserve(session, rate_keys, now, n, limit)
    tally = Tally()
    try:
        yield tally
    except BaseException:
        _settle(session, rate_keys, window, n, tally.found, failing=True)
        raise
    _settle(session, rate_keys, window, n, tally.found, failing=False)


def _settle(
    session: Session,
    rate_keys: Sequence[str],
    window: datetime,
    n: int,
    found: int,
    *,
    failing: bool,
) -> None:
    misses = max(n - found, 0)
    settle = {k: misses for k in rate_keys} | {_in_flight(k): -n for k in rate_keys}
    if failing and not _apart(session):
        # The request's transaction may be broken and is about to roll back: written after.
        _again_after_rollback(session, settle, window)
    else:
        _bump(session, settle, window)


def _in_flight(key: str) -> str:
    return f"{key}#in-flight"


def _reserve(session: Session, rate_keys: Sequence[str], now: datetime, n: int, limit: int) -> None:
    window = window_of(now)
    reserve = {k: 0 for k in rate_keys} | {_in_flight(k): n for k in rate_keys}
    for pause in (*_PAUSES, None):
        counts = _bump(session, reserve, window)
        if all(counts[k] + counts[_in_flight(k)] <= limit for k in rate_keys):
            return
        _bump(session, {_in_flight(k): -n for k in rate_keys}, window)
        settled = max(counts[k] for k in rate_keys)
        # Only a separate connection waits: on SQLite the request holds the write lock.
        if settled + n > limit or pause is None or not _apart(session):
            refuse_over(limit, limit, now)
        time.sleep(pause)


def _apart(session: Session) -> bool:
    bind = session.get_bind()
    return isinstance(bind, Engine) and bind.dialect.name == "postgresql"


def _bump(session: Session, deltas: dict[str, int], window: datetime) -> dict[str, int]:
    bind = session.get_bind()
    if _apart(session):
        with Session(_side_engine(bind)) as side:  # type: ignore[arg-type]
            return RateRepository(side).bump(deltas, window)
    _again_after_rollback(session, deltas, window)
    return RateRepository(session).bump(deltas, window)


def _side_engine(engine: Engine) -> Engine:
    url = engine.url.render_as_string(hide_password=False)
    with _side_lock:
        if url not in _side_engines:
            side = make_engine(url, pool_size=2).execution_options(isolation_level="AUTOCOMMIT")
            _side_engines[url] = side
        return _side_engines[url]


def _again_after_rollback(session: Session, deltas: dict[str, int], window: datetime) -> None:
    session.info.setdefault(_PENDING, []).append((deltas, window))
    if not event.contains(session, "after_soft_rollback", _write_again):
        # After the rollback has returned the connection to the pool: writing again then
        # takes one connection, never a second one while holding the first.
        event.listen(session, "after_soft_rollback", _write_again)
        event.listen(session, "after_commit", _forget)


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _write_again(session: Session, ended: SessionTransaction) -> None:
    if ended.parent is not None or ended.nested:
        return  # a savepoint: the request's transaction goes on
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    try:
        with Session(session.get_bind()) as again, again.begin():
            for deltas, window in pending:
                RateRepository(again).bump(deltas, window)
    except SQLAlchemyError:
        # The request is failing already; its error is the one to report.
        log.warning("could not keep the lookup counts of a rolled-back request", exc_info=True)
