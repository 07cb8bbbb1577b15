"""Messaging's jobs. ``messaging.deliver`` runs in the job round of ``fidele worker --once``
and ``fidele worker run-once``; running workers skip it (``runner.CONTINUOUS``), their
``MessagingLoop`` delivers continuously."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from fidele.messaging import broadcasts, delivery, recommendations
from fidele.worker.registry import job


@job("messaging.deliver", every=timedelta(seconds=10), standalone=True)
def deliver(factory: sessionmaker[Session], now: datetime) -> int:
    """Send every message due at ``now`` (the job's instant, so ``run-once --now`` delivers
    what is due then), batch after batch; returns how many were sent."""
    return delivery.deliver_due(factory, _Since(now))


@job("messaging.expire_claims", every=timedelta(minutes=1))
def expire_claims(session: Session, now: datetime) -> int:
    """Record as ``unknown`` the messages a dead worker left ``sending`` (never resent)."""
    return delivery.expire_claims(session, now)


@job("messaging.broadcasts", every=timedelta(minutes=1), standalone=True)
def run_broadcasts(factory: sessionmaker[Session], now: datetime) -> int:
    """Start due broadcasts (freeze their audience), pick automatic A/B winners and decide due
    recipients through messaging.send, batch after batch."""
    return broadcasts.run(factory, now)


@job("messaging.recommendations", every=timedelta(hours=6))
def refresh_recommendations(session: Session, now: datetime) -> int:
    """Recompute "bought together" for every merchant whose orders changed since last time."""
    return recommendations.refresh_due(session, now)


class _Since:
    """The job's instant, advancing with real time while the job runs (records get real
    durations; due-ness is judged as of the instant the round was run for)."""

    def __init__(self, start: datetime) -> None:
        self._start, self._t0 = start, time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._t0)
