"""Rebuild a programme's loyalty state from the event log.

The loyalty tables and the points ledger of the programme are emptied, every event is routed
again with the time it was received, then every member is caught up to ``now``. Nothing is
re-announced (no webhooks, no events). Rule versions, rewards and webhook endpoints are
configuration and stay."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

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
    repo = LoyaltyRepository(session)
    if programme_id is not None or everyone:
        ids = repo.member_ids(programme_id)
    else:
        ids = repo.members_due(now)
    for member_id in ids:
        member = session.get(Member, member_id)
        customers = repo.customers_of(member_id)
        if member is not None and customers:
            members.catch_up(session, member, now, customers[0].merchant_id)
    return len(ids)
