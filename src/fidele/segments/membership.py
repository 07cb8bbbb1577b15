"""Keeping segment membership: who entered, who left, as events.

- A customer's own events (order, refund, profile change, loyalty change, any event counted by
  ``events.<type>.count``) mark them dirty in ``segment_dirty`` in the event's transaction
  (``segments.handlers``). The membership loop (``MembershipLoop`` in every worker, and the
  ``segments.update_members`` job for ``fidele worker --once``) claims dirty customers in
  batches and re-evaluates them against the merchant's segments that can depend on what
  changed: one query per segment per batch.
- The scheduled pass (``segments.refresh``) recomputes segments whose conditions move with the
  clock alone (``orders.last_days > 90``, windows) and segments on insights once the analytics
  refresh wrote newer insights.
- Each entry or exit appends ``segment.entered`` / ``segment.left`` (payload ``{"segment_id",
  "segment_name"}``) through the events service, so flows' handlers and webhooks see them."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from fidele.db.session import read_only, transaction
from fidele.events import domain as ev
from fidele.kit.clock import Clock
from fidele.segments import domain, service
from fidele.segments.models import Segment
from fidele.segments.repository import DirtyRepository, SegmentRepository

log = logging.getLogger("fidele.segments")
SEGMENT_ENTERED = ev.SEGMENT_ENTERED
SEGMENT_LEFT = ev.SEGMENT_LEFT
KIND_BITS = {
    "customer": 1,
    "order": 2,
    "loyalty": 4,
    "insights": 8,
    "event": 16,
    "consent": 32,
    "feedback": 64,
}
ALL_KINDS = sum(KIND_BITS.values())
BATCH = 500
FULL_EVERY = timedelta(days=1)
INSIGHTS_CHECK_SECONDS = 5.0


def kinds_mask(kinds: set[str] | frozenset[str]) -> int:
    return sum(bit for k, bit in KIND_BITS.items() if k in kinds)


def depends_mask(segment: Segment) -> int:
    return kinds_mask(set(segment.depends.split(",")))


def _emit(
    session: Session, segment: Segment, customer_ids: Sequence[int], kind: str, now: datetime
) -> None:
    """Append ``kind`` for each customer to the event log (dispatched to subscribers: flows)
    and queue the merchant's webhooks (``data``: the payload plus the customer's own id)."""
    from fidele.events import service as events
    from fidele.tenancy.service import Caller
    from fidele.webhooks import service as webhooks

    if not customer_ids:
        return
    repo = SegmentRepository(session)
    programme_id = repo.programme_of(segment.merchant_id)
    assert programme_id is not None
    caller = Caller(segment.merchant_id, programme_id, None, frozenset())
    payload = {"segment_id": segment.id, "segment_name": segment.name}
    external = repo.external_ids(customer_ids)
    appended = events.record_many(
        session,
        caller,
        type=kind,
        now=now,
        source="segments",
        items=[(customer_id, dict(payload)) for customer_id in customer_ids],
    )
    for event in appended:
        webhooks.publish(
            session,
            programme_id=programme_id,
            merchant_id=segment.merchant_id,
            topic=kind,
            payload={**payload, "customer_id": external.get(event.customer_id or 0)},
            dedup_key=f"{kind}:{event.id}",
            now=now,
        )


def mark_changed(
    session: Session, *, merchant_id: int, customer_id: int, kinds: set[str], now: datetime
) -> None:
    """Have the customer's segments re-evaluated within seconds after a change that is not an
    event of the log (a consent given or withdrawn): ``kinds`` among ``KIND_BITS``."""
    DirtyRepository(session).mark(merchant_id, customer_id, kinds_mask(kinds), now)


def apply(
    session: Session,
    segment: Segment,
    *,
    matching: set[int],
    current: set[int],
    now: datetime,
) -> tuple[int, int]:
    """Write the difference between ``current`` members and ``matching`` customers (of the
    same evaluated population) and append the events; (entered, left)."""
    repo = SegmentRepository(session)
    entered = repo.add_members(segment.id, segment.merchant_id, sorted(matching - current), now)
    left = repo.remove_members(segment.id, sorted(current - matching))
    repo.bump_count(segment.id, len(entered) - len(left))
    _emit(session, segment, sorted(entered), SEGMENT_ENTERED, now)
    _emit(session, segment, sorted(left), SEGMENT_LEFT, now)
    return len(entered), len(left)


def recompute(session: Session, segment: Segment, now: datetime) -> tuple[int, int]:
    """Evaluate the whole merchant against ``segment`` (one query) and apply the difference."""
    parsed = domain.parse_rule(segment.rule)
    comp = service.compiler(session, segment.merchant_id, parsed, now)
    repo = SegmentRepository(session)
    matching = set(repo.ids(comp.query(parsed)))
    current = repo.member_ids(segment.id)
    result = apply(session, segment, matching=matching, current=current, now=now)
    repo.set_computed(segment.id, len(matching), now)
    session.refresh(segment)
    return result


def reevaluate(
    session: Session, merchant_id: int, customers: dict[int, int], now: datetime
) -> tuple[int, int]:
    """Re-evaluate ``customers`` ({customer id: change-kind bits}) of one merchant against the
    segments that can depend on what changed; (entered, left)."""
    entered = left = 0
    for segment in SegmentRepository(session).of_merchant(merchant_id):
        mask = depends_mask(segment)
        ids = sorted(c for c, kinds in customers.items() if kinds & mask)
        if not ids:
            continue
        parsed = domain.parse_rule(segment.rule)
        matching = service.matching_among(
            session, merchant_id=merchant_id, rule=parsed, now=now, ids=ids
        )
        current = SegmentRepository(session).member_ids(segment.id, ids)
        e, lft = apply(session, segment, matching=matching, current=current, now=now)
        entered, left = entered + e, left + lft
    return entered, left


def process_dirty(session: Session, now: datetime, *, limit: int = BATCH) -> int:
    """Claim up to ``limit`` dirty customers and re-evaluate them; how many were claimed."""
    claimed = DirtyRepository(session).claim(limit)
    per_merchant: dict[int, dict[int, int]] = defaultdict(dict)
    for merchant_id, customer_id, kinds, _ in claimed:
        per_merchant[merchant_id][customer_id] = kinds
    for merchant_id, customers in per_merchant.items():
        reevaluate(session, merchant_id, customers, now)
    return len(claimed)


def drain(factory: sessionmaker[Session], clock: Clock, *, limit: int = BATCH) -> int:
    """Process dirty customers batch after batch, each batch in its own transaction, until none
    is left; how many were processed."""
    total = 0
    with transaction(read_only(factory)) as session:  # idle: no write lock taken (SQLite)
        if not DirtyRepository(session).any_pending():
            return 0
    while True:
        with transaction(factory) as session:
            n = process_dirty(session, clock.now(), limit=limit)
        total += n
        if n < limit:
            return total


def refresh(session: Session, now: datetime) -> int:
    """The scheduled pass: recompute segments that move with the clock, and those on insights
    newer than their last computation; how many segments were recomputed."""
    done = 0
    repo = SegmentRepository(session)
    latest = _insights_latest(session)
    for segment in repo.with_depends(""):
        kinds = set(segment.depends.split(","))
        stale_insights = "insights" in kinds and (
            segment.computed_at is None
            or (latest.get(segment.merchant_id) or segment.computed_at) > segment.computed_at
        )
        stale = segment.computed_at is None or segment.computed_at <= now - FULL_EVERY
        # consents change without an event of the log (messaging's set_consent): recomputed
        # here unless the caller marks the customer (``mark_changed``)
        if kinds & {"clock", "consent"} or stale_insights or stale:
            recompute(session, segment, now)
            done += 1
    return done


def _insights_latest(session: Session) -> dict[int, datetime]:
    """When each merchant's insights were last written: the analytics refresh replaces the
    insights and its reports in one transaction, and the reports table is small."""
    from sqlalchemy import func, select

    from fidele.analytics.models import AnalyticsReport

    stmt = select(AnalyticsReport.merchant_id, func.max(AnalyticsReport.computed_at)).group_by(
        AnalyticsReport.merchant_id
    )
    return {int(m): t for m, t in session.execute(stmt).all() if t is not None}


def stale_on_insights(session: Session) -> list[Segment]:
    """The segments on insights whose merchant has newer insights than their last
    computation (the analytics refresh just ran)."""
    latest = _insights_latest(session)
    return [
        segment
        for segment in SegmentRepository(session).with_depends("insights")
        if (at := latest.get(segment.merchant_id)) is not None
        and (segment.computed_at is None or at > segment.computed_at)
    ]


def refresh_insights(session: Session, now: datetime) -> int:
    """Recompute the segments on insights whose merchant has newer insights than their last
    computation (the analytics refresh just ran); how many."""
    stale = stale_on_insights(session)
    for segment in stale:
        recompute(session, segment, now)
    return len(stale)


def refresh_insights_between(factory: sessionmaker[Session], clock: Clock) -> int:
    """``refresh_insights`` one segment per transaction, the dirty customers drained after
    each: after an analytics refresh, a customer's order is not held behind the recomputation
    of every built-in segment of the base (tens of seconds on a large shop). How many
    segments were recomputed."""
    with transaction(read_only(factory)) as session:
        ids = [segment.id for segment in stale_on_insights(session)]
    done = 0
    for segment_id in ids:
        with transaction(factory) as session:
            segment = session.get(Segment, segment_id)
            # still stale (another worker's loop may have done it meanwhile)
            if segment is not None and segment in stale_on_insights(session):
                recompute(session, segment, clock.now())
                done += 1
        drain(factory, clock)
    return done


class MembershipLoop:
    """Re-evaluates dirty customers continuously (a daemon thread in every worker and in
    ``fidele serve``'s embedded worker): a customer's order moves their segments within about
    ``idle_seconds`` plus one evaluation, not at the next scheduled round."""

    def __init__(
        self, factory: sessionmaker[Session], clock: Clock, *, idle_seconds: float = 0.5
    ) -> None:
        self.factory, self.clock, self.idle_seconds = factory, clock, idle_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fidele-segments", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        checked = 0.0
        while not self._stop.is_set():
            try:
                n = drain(self.factory, self.clock)
                if time.monotonic() - checked >= INSIGHTS_CHECK_SECONDS:
                    checked = time.monotonic()
                    refresh_insights_between(self.factory, self.clock)
            except Exception:  # logged; the marks stay and are retried
                log.exception("segment membership round failed")
                n = 0
            if n == 0:
                self._stop.wait(self.idle_seconds)
