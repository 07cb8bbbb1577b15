"""The outbox's delivery loop, run by every ``fidele worker`` (and by the embedded worker of
``fidele serve``): it drains continuously while messages are due and waits only when idle.

Each process keeps up to ``outbox_concurrency`` deliveries in flight on as many threads,
claiming more as they free up; claims are disjoint across processes (``FOR UPDATE SKIP
LOCKED``), so throughput grows with the number of workers. The idle wait is randomised so
workers started together do not poll in lockstep."""

from __future__ import annotations

import logging
import random
import threading
import time
from queue import Empty, SimpleQueue

from sqlalchemy.orm import Session, sessionmaker

from fidele.db.session import read_only
from fidele.kit.clock import Clock
from fidele.kit.plugins import load_everything
from fidele.outbox.models import OutboxMessage
from fidele.outbox.service import (
    LEASE,
    Outcome,
    attempt,
    claim_due,
    prepare,
    record,
    renew_claims,
)

log = logging.getLogger("fidele.outbox")
RENEW_SECONDS = LEASE.total_seconds() / 3
RECORD_SECONDS = 0.25  # the longest a finished attempt waits to be written with others


class DeliveryLoop:
    """A daemon thread delivering due outbox messages until :meth:`stop`."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        clock: Clock,
        *,
        concurrency: int,
        idle_seconds: float,
    ) -> None:
        self.factory = factory
        self.reader = read_only(factory)  # one for the loop: caches are kept per bind
        self.clock = clock
        self.concurrency = max(1, concurrency)
        self.idle_seconds = idle_seconds
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="fidele-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def run(self) -> None:
        load_everything()  # every channel's sender, whatever this process imported before
        # Up to 8 x concurrency messages are claimed ahead (queued for the delivery threads),
        # claimed again when half of them are done, and outcomes are written a batch at a time
        # (a quarter of that, or what finished within RECORD_SECONDS):
        # a claim and a record per batch, not per message, as each costs a round trip and a
        # commit. The threads take messages from one queue and put outcomes on another (no
        # future per message: waiting on many futures costs a lock per future per wait).
        ahead = self.concurrency * 8
        todo: SimpleQueue[OutboxMessage | None] = SimpleQueue()
        done: SimpleQueue[Outcome] = SimpleQueue()
        threads = [
            threading.Thread(
                target=self._deliver, args=(todo, done), name=f"fidele-deliver-{i}", daemon=True
            )
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        inflight: dict[int, OutboxMessage] = {}  # claimed, attempt not finished
        finished: list[Outcome] = []
        oldest = renewed = time.monotonic()
        try:
            while not self._stop.is_set():
                if len(inflight) <= ahead // 2:
                    for msg in self._claim(ahead - len(inflight)):
                        inflight[msg.id] = msg
                        todo.put(msg)
                if not inflight and not finished:
                    self._stop.wait(self.idle_seconds * random.uniform(0.5, 1.5))
                    continue
                if inflight:
                    timeout = RECORD_SECONDS if finished else self.idle_seconds
                    outcomes = _take(done, timeout)
                    if outcomes and not finished:
                        oldest = time.monotonic()
                    for msg, error in outcomes:
                        finished.append((inflight.pop(msg.id), error))
                if finished and (
                    len(finished) >= ahead // 4
                    or not inflight
                    or time.monotonic() - oldest >= RECORD_SECONDS
                ):
                    self._record(finished)
                    finished = []
                if time.monotonic() - renewed >= RENEW_SECONDS:
                    self._renew(list(inflight) + [m.id for m, _ in finished])
                    renewed = time.monotonic()
            while inflight:  # stopping: what was claimed is attempted and recorded
                msg, error = done.get()
                finished.append((inflight.pop(msg.id), error))
            self._record(finished)
        finally:
            for _ in threads:
                todo.put(None)
            for thread in threads:
                thread.join(timeout=30)

    def _deliver(self, todo: SimpleQueue[OutboxMessage | None], done: SimpleQueue[Outcome]) -> None:
        """A delivery thread: attempts queued messages until given None."""
        while (msg := todo.get()) is not None:
            try:
                error = attempt(self.reader, msg)
            except BaseException as exc:  # attempt() catches what senders raise; not this
                error = f"{type(exc).__name__}: {exc}"[:2000]
            done.put((msg, error))

    def _claim(self, free: int) -> list[OutboxMessage]:
        try:
            claimed = claim_due(self.factory, self.clock.now(), free)
        except Exception:  # the database is unreachable: log, wait, try again
            log.exception("outbox claim failed")
            self._stop.wait(self.idle_seconds)
            return []
        prepare(self.reader, claimed)  # e.g. the batch's webhook endpoints, in one query
        return claimed

    def _renew(self, ids: list[int]) -> None:
        try:
            renew_claims(self.factory, ids, self.clock.now())
        except Exception:  # the next renewal tries again; the claim outlives two misses
            log.exception("outbox claim renewal failed")

    def _record(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        try:
            self.sent += record(self.factory, outcomes, self.clock.now())
        except Exception:  # not recorded: the claims lapse and the messages are tried again
            log.exception("outbox outcome of %s messages not recorded", len(outcomes))


def _take(done: SimpleQueue[Outcome], timeout: float) -> list[Outcome]:
    """The outcomes ready, waiting up to ``timeout`` for the first."""
    try:
        outcomes = [done.get(timeout=timeout)]
    except Empty:
        return []
    while True:
        try:
            outcomes.append(done.get_nowait())
        except Empty:
            return outcomes
