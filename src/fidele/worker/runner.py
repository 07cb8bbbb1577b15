"""Runs due jobs, in-process (inside ``fidele serve``) or in ``fidele worker`` processes."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fidele.db.session import make_sessionmaker, transaction
from fidele.kit.clock import Clock
from fidele.settings import Settings
from fidele.worker.models import JobLease
from fidele.worker.registry import Job, load_jobs

log = logging.getLogger("fidele.worker")
LEASE = timedelta(minutes=10)
OWNER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class JobRun:
    name: str
    ran: bool
    result: int | None = None
    error: str | None = None


def _ensure_lease_rows(factory: sessionmaker[Session], names: list[str]) -> None:
    with transaction(factory) as session:
        known = set(session.execute(select(JobLease.name)).scalars())
    for name in names:
        if name in known:
            continue
        try:
            with transaction(factory) as session:
                session.execute(insert(JobLease).values(name=name))
        except IntegrityError:
            pass  # another process created it


def _acquire(factory: sessionmaker[Session], job: Job, now: datetime, force: bool) -> bool:
    with transaction(factory) as session:
        stmt = update(JobLease).where(
            JobLease.name == job.name,
            or_(JobLease.locked_until.is_(None), JobLease.locked_until < now),
        )
        if not force:
            stmt = stmt.where(
                or_(JobLease.last_run_at.is_(None), JobLease.last_run_at <= now - job.every)
            )
        result = session.execute(stmt.values(owner=OWNER, locked_until=now + LEASE))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _release(factory: sessionmaker[Session], job: Job, now: datetime, outcome: str) -> None:
    with transaction(factory) as session:
        session.execute(
            update(JobLease)
            .where(JobLease.name == job.name)
            .values(owner=None, locked_until=None, last_run_at=now, last_result=outcome[:500])
        )


def run_due(
    factory: sessionmaker[Session],
    clock: Clock,
    *,
    force: bool = False,
    only: set[str] | None = None,
) -> list[JobRun]:
    """Run each due job once, each in its own transaction; skip jobs another process holds."""
    registry = load_jobs()
    selected = [j for j in registry.values() if only is None or j.name in only]
    _ensure_lease_rows(factory, [j.name for j in selected])
    runs = []
    for job in selected:
        now = clock.now()
        if not _acquire(factory, job, now, force):
            runs.append(JobRun(job.name, ran=False))
            continue
        try:
            if job.standalone:
                result = job.fn(factory, now)
            else:
                with transaction(factory) as session:
                    result = job.fn(session, now)
        except Exception as exc:  # a failed job is logged and retried next round
            log.exception("job %s failed", job.name)
            _release(factory, job, now, f"error: {exc}")
            runs.append(JobRun(job.name, ran=True, error=str(exc)))
            continue
        _release(factory, job, now, f"ok: {result}")
        runs.append(JobRun(job.name, ran=True, result=result))
    return runs


class BackgroundRunner:
    """The embedded worker of ``fidele serve``: a daemon thread running due jobs."""

    def __init__(self, engine: Engine, clock: Clock, settings: Settings) -> None:
        self.factory = make_sessionmaker(engine)
        self.clock = clock
        self.interval = settings.worker_interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fidele-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run_due(self.factory, self.clock)
            except Exception:
                log.exception("worker round failed")
            self._stop.wait(self.interval)
