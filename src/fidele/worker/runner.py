"""Runs due jobs, in-process (inside ``fidele serve``) or in ``fidele worker`` processes."""

from __future__ import annotations

import logging
import os
import random
import socket
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from fidele.db.session import make_sessionmaker, transaction
from fidele.kit.clock import Clock
from fidele.kit.plugins import load_everything
from fidele.settings import Settings
from fidele.worker.models import JobLease
from fidele.worker.registry import Job, LoopFn, load_jobs, load_loops

log = logging.getLogger("fidele.worker")
# A job's lease is short and renewed by a heartbeat while the job runs: a worker killed while
# holding it (kill -9, a lost machine) blocks the job for at most LEASE, then another worker
# takes it over. (It was 10 minutes without renewal.)
LEASE = timedelta(seconds=15)
HEARTBEAT_SECONDS = LEASE.total_seconds() / 3
OWNER = f"{socket.gethostname()}:{os.getpid()}"
# Jobs the continuous loops run on their own (DeliveryLoop), not on a schedule.
CONTINUOUS = frozenset({"outbox.deliver", "segments.update_members", "messaging.deliver"})


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


def _renew(factory: sessionmaker[Session], job: Job, now: datetime) -> None:
    with transaction(factory) as session:
        session.execute(
            update(JobLease)
            .where(JobLease.name == job.name, JobLease.owner == OWNER)
            .values(locked_until=now + LEASE)
        )


class _Heartbeat:
    """Renews a held lease every HEARTBEAT_SECONDS until the job returns."""

    def __init__(self, factory: sessionmaker[Session], clock: Clock, job: Job) -> None:
        self.factory, self.clock, self.job = factory, clock, job
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job.name}", daemon=True)

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                _renew(self.factory, self.job, self.clock.now())
            except Exception:  # the next beat tries again; the lease outlives two misses
                log.exception("lease renewal of %s failed", self.job.name)


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
    skip: frozenset[str] = frozenset(),
) -> list[JobRun]:
    """Run each due job once, each in its own transaction; skip jobs another process holds
    (and those named in ``skip``)."""
    registry = load_jobs()
    selected = [
        j for j in registry.values() if (only is None or j.name in only) and j.name not in skip
    ]
    _ensure_lease_rows(factory, [j.name for j in selected])
    runs = []
    for job in selected:
        now = clock.now()
        if not _acquire(factory, job, now, force):
            runs.append(JobRun(job.name, ran=False))
            continue
        try:
            with _Heartbeat(factory, clock, job):
                result = _call(factory, job, now)
        except Exception as exc:  # a failed job is logged and retried next round
            log.exception("job %s failed", job.name)
            _release(factory, job, now, f"error: {exc}")
            runs.append(JobRun(job.name, ran=True, error=str(exc)))
            continue
        _release(factory, job, now, f"ok: {result}")
        runs.append(JobRun(job.name, ran=True, result=result))
    return runs


def _call(factory: sessionmaker[Session], job: Job, now: datetime) -> int | None:
    if job.standalone:
        return job.fn(factory, now)
    with transaction(factory) as session:
        return job.fn(session, now)


def drain_loops(factory: sessionmaker[Session], clock: Clock) -> list[JobRun]:
    """Run every continuous loop's work due by now once, until it is idle (``fidele worker
    --once`` and ``run-once``); several processes may do this at once."""
    runs = []
    for name, fn in load_loops().items():
        try:
            runs.append(JobRun(name, ran=True, result=fn(factory, clock.now())))
        except Exception as exc:
            log.exception("loop %s failed", name)
            runs.append(JobRun(name, ran=True, error=str(exc)))
    return runs


class _Loop:
    """A daemon thread running a registered continuous loop: again at once while it finds
    work, after ``idle`` seconds (randomised) when it finds none."""

    def __init__(
        self, name: str, fn: LoopFn, factory: sessionmaker[Session], clock: Clock, idle: float
    ) -> None:
        self.name, self.fn, self.factory, self.clock, self.idle = name, fn, factory, clock, idle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=f"fidele-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.fn(self.factory, self.clock.now())
            except Exception:
                log.exception("loop %s failed", self.name)
                done = 0
            if not done:
                self._stop.wait(self.idle * random.uniform(0.5, 1.5))


# What a worker process can run, each in its own thread (``fidele worker --only``,
# ``FIDELE_WORKER_PARTS``): the scheduled jobs' rounds, the outbox's webhook delivery, segment
# membership, the messages' delivery and the journeys' advancement. A registered continuous
# loop of another module (``FIDELE_EXTRA_MODULES``) goes by its registered name.
PARTS = ("jobs", "webhooks", "segments", "messages", "journeys")
_LOOP_PARTS = {"campaigns.advance": "journeys"}


def parse_parts(text: str | None) -> frozenset[str] | None:
    """``"journeys,messages"`` -> those parts; empty or None -> None (every part). An unknown
    name is a ``ValueError`` naming it and the known ones."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if not names:
        return None
    known = [*PARTS, *(n for n in load_loops() if n not in _LOOP_PARTS)]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown worker part {', '.join(unknown)}: known are {', '.join(known)}")
    return frozenset(names)


class BackgroundRunner:
    """A worker's loops, as daemon threads: the outbox's continuous delivery, segment
    membership, the messages' delivery, the registered continuous loops (the journeys'
    advancement) and a round of due jobs every ``worker_interval_seconds``; ``parts`` (default:
    ``FIDELE_WORKER_PARTS``, empty = all) keeps only some of them, so that an operator can give
    journeys and deliveries processes of their own. ``fidele worker`` runs one; ``fidele serve``
    runs one inside the API process when ``FIDELE_EMBEDDED_WORKER`` is on (the default)."""

    def __init__(
        self,
        engine: Engine | None,
        clock: Clock,
        settings: Settings,
        *,
        factory: sessionmaker[Session] | None = None,
        interval: float | None = None,
        parts: frozenset[str] | None = None,
    ) -> None:
        from fidele.messaging.delivery import MessagingLoop
        from fidele.outbox.delivery import DeliveryLoop

        assert engine is not None or factory is not None
        self.factory = factory or make_sessionmaker(engine)  # type: ignore[arg-type]
        self.clock = clock
        self.interval = settings.worker_interval_seconds if interval is None else interval
        self.switch_interval = settings.worker_switch_interval_ms / 1000
        self.delivery = DeliveryLoop(
            self.factory,
            clock,
            concurrency=settings.outbox_concurrency,
            idle_seconds=settings.outbox_idle_seconds,
        )
        self.parts = parts if parts is not None else parse_parts(settings.worker_parts)
        self.loops = [
            _Loop(name, fn, self.factory, clock, settings.outbox_idle_seconds)
            for name, fn in load_loops().items()
            if self._runs(_LOOP_PARTS.get(name, name))
        ]
        from fidele.segments.membership import MembershipLoop

        self.segments = MembershipLoop(self.factory, clock)
        self.messaging = MessagingLoop(
            self.factory,
            clock,
            concurrency=settings.messaging_concurrency,
            idle_seconds=settings.outbox_idle_seconds,
            settings=settings,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fidele-worker", daemon=True)

    def start(self) -> None:
        load_everything()
        # the loops waiting on the database (advancing journeys, claiming) get the interpreter
        # back sooner from the busy mail threads
        sys.setswitchinterval(self.switch_interval)
        for part, loop in self._singles():
            if self._runs(part):
                loop.start()
        for loop in self.loops:
            loop.start()
        if self._runs("jobs"):
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for part, loop in self._singles():
            if self._runs(part):
                loop.stop()
        for loop in self.loops:
            loop.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _runs(self, part: str) -> bool:
        return self.parts is None or part in self.parts

    def _singles(self) -> list[tuple[str, Any]]:
        return [
            ("webhooks", self.delivery),
            ("segments", self.segments),
            ("messages", self.messaging),
        ]

    def running(self) -> list[str]:
        """The parts this runner runs, by name."""
        loops = [_LOOP_PARTS.get(loop.name, loop.name) for loop in self.loops]
        singles = [part for part, _ in self._singles() if self._runs(part)]
        return [*(["jobs"] if self._runs("jobs") else []), *singles, *loops]

    def wait(self) -> None:
        """Block until stopped (the foreground of ``fidele worker``); a short wait at a time,
        so that Ctrl-C is seen at once."""
        while not self._stop.is_set():
            self._stop.wait(1)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run_due(self.factory, self.clock, skip=CONTINUOUS)
            except Exception:
                log.exception("worker round failed")
            # +-10%: workers started together drift apart instead of polling in lockstep
            self._stop.wait(self.interval * random.uniform(0.9, 1.1))
