"""The outbox's delivery loop, run by every ``fidele worker`` (and by the embedded worker of
``fidele serve``): it drains continuously while messages are due and waits only when idle.

Each process keeps up to ``outbox_concurrency`` deliveries in flight on a thread pool, claiming
more as slots free up; claims are disjoint across processes (``FOR UPDATE SKIP LOCKED``), so
throughput grows with the number of workers. The idle wait is randomised so workers started
together do not poll in lockstep."""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from sqlalchemy.orm import Session, sessionmaker

from fidele.kit.clock import Clock
from fidele.kit.plugins import load_everything
from fidele.outbox.models import OutboxMessage
from fidele.outbox.service import LEASE, Outcome, attempt, claim_due, record, renew_claims

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
        # Up to 4 x concurrency messages are claimed ahead (queued on the pool), claimed again
        # when half of them are done, and outcomes are written a batch at a time: a claim and a
        # record per batch, not per message, as each costs a round trip and a commit.
        ahead = self.concurrency * 4
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="fidele-deliver") as pool:
            inflight: dict[Future[str | None], OutboxMessage] = {}
            finished: list[Outcome] = []
            oldest = renewed = time.monotonic()
            while not self._stop.is_set():
                if len(inflight) <= ahead // 2:
                    inflight |= self._claim(pool, ahead - len(inflight))
                if not inflight and not finished:
                    self._stop.wait(self.idle_seconds * random.uniform(0.5, 1.5))
                    continue
                if inflight:
                    done, _ = wait(inflight, timeout=self.idle_seconds, return_when=FIRST_COMPLETED)
                    oldest = oldest if finished else time.monotonic()
                    finished += [(inflight.pop(f), f.result()) for f in done]
                if finished and (
                    len(finished) >= self.concurrency
                    or not inflight
                    or time.monotonic() - oldest >= RECORD_SECONDS
                ):
                    self._record(finished)
                    finished = []
                if time.monotonic() - renewed >= RENEW_SECONDS:
                    self._renew([m.id for m in inflight.values()] + [m.id for m, _ in finished])
                    renewed = time.monotonic()
            finished += [(inflight.pop(f), f.result()) for f in wait(inflight).done]
            self._record(finished)

    def _claim(
        self, pool: ThreadPoolExecutor, free: int
    ) -> dict[Future[str | None], OutboxMessage]:
        try:
            claimed = claim_due(self.factory, self.clock.now(), free)
        except Exception:  # the database is unreachable: log, wait, try again
            log.exception("outbox claim failed")
            self._stop.wait(self.idle_seconds)
            return {}
        return {pool.submit(attempt, self.factory, msg): msg for msg in claimed}

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
