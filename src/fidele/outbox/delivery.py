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
from fidele.outbox.service import LEASE, claim_due, deliver_one, renew_claims

log = logging.getLogger("fidele.outbox")
RENEW_SECONDS = LEASE.total_seconds() / 3


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
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="fidele-deliver") as pool:
            inflight: dict[Future[int], int] = {}
            renewed = time.monotonic()
            while not self._stop.is_set():
                inflight |= self._claim_more(pool, self.concurrency - len(inflight))
                if not inflight:
                    self._stop.wait(self.idle_seconds * random.uniform(0.5, 1.5))
                    continue
                done, _ = wait(inflight, timeout=self.idle_seconds, return_when=FIRST_COMPLETED)
                self._collect(done, inflight)
                if inflight and time.monotonic() - renewed >= RENEW_SECONDS:
                    self._renew(list(inflight.values()))
                    renewed = time.monotonic()
            self._collect(wait(inflight).done, inflight)

    def _claim_more(self, pool: ThreadPoolExecutor, free: int) -> dict[Future[int], int]:
        if free <= 0:
            return {}
        now = self.clock.now()
        try:
            ids = claim_due(self.factory, now, free)
        except Exception:  # the database is unreachable: log, wait, try again
            log.exception("outbox claim failed")
            self._stop.wait(self.idle_seconds)
            return {}
        return {pool.submit(deliver_one, self.factory, i, now): i for i in ids}

    def _renew(self, ids: list[int]) -> None:
        try:
            renew_claims(self.factory, ids, self.clock.now())
        except Exception:  # the next renewal tries again; the claim outlives two misses
            log.exception("outbox claim renewal failed")

    def _collect(self, done: set[Future[int]], inflight: dict[Future[int], int]) -> None:
        for future in done:
            inflight.pop(future, None)
            try:
                self.sent += future.result()
            except Exception:  # recording the outcome failed: the claim lapses and it is retried
                log.exception("outbox delivery failed")
