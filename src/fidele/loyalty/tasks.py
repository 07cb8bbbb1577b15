"""Scheduled loyalty jobs. Each is idempotent and safe in several processes at once: the
runner holds a per-job lease, and every change goes through :func:`members.catch_up` under the
member's account locks, whose effects depend only on dates, not on when the job runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from fidele.loyalty import members, membership, notify
from fidele.loyalty.models import Member
from fidele.loyalty.replay import catch_up_in_batches
from fidele.loyalty.repository import LoyaltyRepository
from fidele.worker.registry import job


@job("loyalty.catch_up", every=timedelta(minutes=5), standalone=True)
def catch_up(factory: sessionmaker[Session], now: datetime) -> int:
    """Release pending points past their return window, expire lots, review tiers (in short
    transactions: see :func:`catch_up_in_batches`)."""
    return catch_up_in_batches(factory, now)


@job("loyalty.daily", every=timedelta(days=1), standalone=True)
def daily(factory: sessionmaker[Session], now: datetime) -> int:
    """Everyone: inactivity expiry, birthday and anniversary bonuses."""
    return catch_up_in_batches(factory, now, everyone=True)


@job("loyalty.expiring_soon", every=timedelta(hours=6))
def expiring_soon(session: Session, now: datetime) -> int:
    """Announce lots expiring within the programme's notice (once per lot and date)."""
    repo = LoyaltyRepository(session)
    count = 0
    for lot in repo.expiring_lots(now, now + timedelta(days=366)):
        scale = members.scale_at(session, lot.programme_id, now)
        assert lot.expires_at is not None
        if lot.expires_at > now + timedelta(days=scale.settings.expiring_notice_days):
            continue
        member = session.get(Member, lot.member_id)
        assert member is not None
        notify.emit(
            session,
            member,
            merchant_id=lot.merchant_id,
            topic="loyalty.points_expiring",
            dedup=f"{lot.id}:{lot.expires_at.isoformat()}",
            now=now,
            payload={"points": lot.remaining, "expires_at": lot.expires_at.isoformat()},
        )
        count += 1
    return count


@job("loyalty.memberships", every=timedelta(hours=1))
def memberships(session: Session, now: datetime) -> int:
    return membership.expire_lapsed(session, now)
