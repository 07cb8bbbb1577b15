"""Rebuild a programme's loyalty state from the event log.

The loyalty tables and the points ledger of the programme are emptied, every event is routed
again with the time it was received, then every member is caught up to ``now``. Nothing is
re-announced (no webhooks, no events). Rule versions, rewards and webhook endpoints are
configuration and stay."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from fidele.db.session import transaction
from fidele.events.repository import EventRepository
from fidele.kit.cache import forget as memo_forget
from fidele.loyalty import bulk, members, notify
from fidele.loyalty.handlers import route
from fidele.loyalty.models import Member
from fidele.loyalty.repository import LoyaltyRepository


def replay(
    session: Session,
    programme_id: int,
    now: datetime,
    *,
    batch: int = 5000,
    progress: bulk.Progress | None = None,
) -> int:
    """Returns how many events were replayed; ``progress`` is called with each batch's
    count."""
    repo = LoyaltyRepository(session)
    repo.wipe(programme_id)
    session.info.pop("loyalty_accounts", None)
    memo_forget(session)  # members and the scale remembered by this transaction are gone
    scale = members.scale_at(session, programme_id)
    if bulk.eligible(session, programme_id, scale):
        try:
            return bulk.replay_orders(session, programme_id, scale, now, progress=progress)
        except bulk.Unbatchable:
            pass  # raised before any write: the per-event path below rebuilds it all
    session.info[notify.REPLAY] = True
    count = 0
    try:
        for rows in EventRepository(session).stream(programme_id=programme_id, batch=batch):
            for event in rows:
                route(session, event, event.received_at)
                count += 1
            session.flush()
            if progress:
                progress(len(rows))
        catch_up_all(session, now, programme_id=programme_id)
    finally:
        session.info.pop(notify.REPLAY, None)
    return count


def event_count(session: Session, programme_id: int) -> int:
    return EventRepository(session).count(programme_id)


def catch_up_all(
    session: Session, now: datetime, *, programme_id: int | None = None, everyone: bool = False
) -> int:
    """Catch members up to ``now``: those of a programme, everyone, or (default) only those
    with a lot to release or expire or a tier review due."""
    ids = _members(session, now, programme_id, everyone)
    catch_up_members(session, ids, now)
    return len(ids)


def catch_up_members(session: Session, member_ids: Sequence[int], now: datetime) -> None:
    repo = LoyaltyRepository(session)
    for member_id in member_ids:
        member = session.get(Member, member_id)
        customers = repo.customers_of(member_id)
        if member is not None and customers:
            members.catch_up(session, member, now, customers[0].merchant_id)


def _members(
    session: Session, now: datetime, programme_id: int | None, everyone: bool
) -> list[int]:
    repo = LoyaltyRepository(session)
    if programme_id is not None or everyone:
        return repo.member_ids(programme_id)
    return repo.members_due(now)


# A job's transaction lasts about this long: on SQLite every request that writes waits for it.
BATCH_SECONDS = 0.2
# Between two transactions of a job on SQLite: requests waiting for the write lock poll for it
# (SQLite's busy handler sleeps up to 100 ms between tries) and must find it free.
SQLITE_YIELD_SECONDS = 0.1


def catch_up_in_batches(
    factory: sessionmaker[Session], now: datetime, *, everyone: bool = False
) -> int:
    """:func:`catch_up_all` as a job: members are caught up in short transactions committed as
    they go, so no request waits long behind the job, and a job stopped midway resumes with
    the members left (catching a member up is idempotent: effects depend on dates only)."""
    with transaction(factory) as session:
        ids = _members(session, now, None, everyone)
        yield_seconds = SQLITE_YIELD_SECONDS if session.get_bind().dialect.name == "sqlite" else 0
    done = 0
    while done < len(ids):
        if done and yield_seconds:
            time.sleep(yield_seconds)
        with transaction(factory) as session:
            deadline = time.monotonic() + BATCH_SECONDS
            start = done
            while done < len(ids) and (done == start or time.monotonic() < deadline):
                catch_up_members(session, ids[done : done + 1], now)
                done += 1
    return len(ids)
