from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from fidele.promotions import giftcards, ratelimit, rewards, service
from fidele.promotions.repository import RateRepository
from fidele.worker.registry import job


@job("promotions.expire_sessions", every=timedelta(minutes=1))
def expire_sessions(session: Session, now: datetime) -> int:
    """Release the holds of checkout sessions left unconfirmed past their time."""
    return service.expire_due(session, now)


@job("promotions.release_rewards", every=timedelta(minutes=10))
def release_rewards(session: Session, now: datetime) -> int:
    """Cashback and referral rewards whose return window has passed."""
    return rewards.run_due(session, now)


@job("promotions.purge_rate_counters", every=timedelta(hours=1))
def purge_rate_counters(session: Session, now: datetime) -> int:
    return RateRepository(session).purge(ratelimit.window_of(now) - timedelta(minutes=5))


@job("promotions.write_off_gift_cards", every=timedelta(hours=1))
def write_off_gift_cards(session: Session, now: datetime) -> int:
    """Expired gift cards' remaining balances to the merchant's breakage account."""
    return giftcards.write_off_expired(session, now)
