"""Broadcasts (newsletters): a one-off message to a segment.

Life of a broadcast: ``scheduled`` (cancellable) -> ``sending`` (started: the segment's members
are frozen into ``broadcast_recipients``; from then on joining or leaving the segment changes
nothing) -> ``sent`` (every recipient decided); or ``cancelled``.

Each recipient is decided through ``messaging.service.send`` with the key
``broadcast:{id}:{customer_id}``, so consent, suppression, the complaint pause, quiet hours and
frequency caps apply exactly as for journeys, and a worker retrying a batch never sends twice.

- **Holdout**: ``holdout_share`` basis points of the members, by a hash of the broadcast and the
  customer, are decided with ``hold_out=True``: a ``held_out`` ledger row after the same
  eligibility checks, nothing sent (see ``stats`` for the comparison).
- **A/B variants**: a second hash splits the (not held out) members by the variants' weights.
  With ``test_share``, only that share gets the split first; the others wait and get the
  winner, chosen by the merchant (``POST /v1/broadcasts/{id}/winner``) or, with
  ``winner: "auto"``, as soon as a variant's conversion difference against every other has a
  95% interval above zero.
- **Local time**: ``send_at``'s wall-clock time in the merchant's zone is used in each
  customer's own zone; the broadcast starts (and freezes its audience) when the earliest zone
  (UTC+14) reaches it; customers whose moment has already passed are sent at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fidele.db.session import transaction
from fidele.errors import InvalidInput, NotFound, StateConflict
from fidele.messaging import domain, measure, stats
from fidele.messaging import service as messaging
from fidele.messaging.measure_models import Broadcast
from fidele.messaging.measure_repository import BroadcastRepository
from fidele.messaging.measure_schemas import BroadcastIn
from fidele.segments import service as segments

BATCH = 200
PAGE = 1000
EARLIEST = timezone(timedelta(hours=14))  # the first zone to reach a wall-clock time


def key(broadcast_id: int, customer_id: int) -> str:
    return f"broadcast:{broadcast_id}:{customer_id}"


# --- the merchant's side --------------------------------------------------------------------


def create(
    session: Session,
    merchant_id: int,
    data: BroadcastIn,
    now: datetime,
    *,
    idempotency_key: str | None = None,
) -> tuple[Broadcast, bool]:
    """Schedule a broadcast; with an ``idempotency_key`` already used, the first one (False)."""
    repo = BroadcastRepository(session)
    if idempotency_key is not None:
        first = repo.by_idempotency_key(merchant_id, idempotency_key)
        if first is not None:
            return first, False
    _check_refs(session, merchant_id, data)
    template = messaging.get_template(session, merchant_id, data.template_id)
    variants = [v.model_dump() for v in data.variants]
    row = Broadcast(
        merchant_id=merchant_id,
        name=data.name,
        segment_id=data.segment_id,
        template_id=data.template_id,
        topic=data.topic,
        channel=template.channel,
        send_at=data.send_at,
        local_time=data.local_time,
        holdout_bp=data.holdout_share,
        variants=variants,
        test_bp=data.test_share if variants else 0,
        winner_mode=data.winner,
        status="scheduled",
        idempotency_key=idempotency_key,
        created_at=now,
        updated_at=now,
    )
    repo.add(row)
    return row, True


def _check_refs(session: Session, merchant_id: int, data: BroadcastIn) -> None:
    try:
        segments.get(session, merchant_id, data.segment_id)
    except NotFound as exc:
        raise InvalidInput(f"segment {data.segment_id} not found", field="segment_id") from exc
    refs = [("template_id", data.template_id)]
    refs += [(f"variants.{i}.template_id", v.template_id) for i, v in enumerate(data.variants)]
    for field, template_id in refs:
        try:
            messaging.get_template(session, merchant_id, template_id)
        except NotFound as exc:
            raise InvalidInput(f"template {template_id} not found", field=field) from exc


def get(session: Session, merchant_id: int, broadcast_id: int, *, lock: bool = False) -> Broadcast:
    row = BroadcastRepository(session).find(merchant_id, broadcast_id, lock=lock)
    if row is None:
        raise NotFound(f"broadcast {broadcast_id} not found")
    return row


def cancel(session: Session, merchant_id: int, broadcast_id: int, now: datetime) -> Broadcast:
    """Cancel a broadcast that has not started (409 once it has: messages may be out)."""
    row = get(session, merchant_id, broadcast_id, lock=True)
    if row.status == "cancelled":
        return row
    if row.status != "scheduled":
        raise StateConflict(f"broadcast {broadcast_id} is {row.status}: too late to cancel")
    row.status, row.cancelled_at, row.updated_at = "cancelled", now, now
    session.flush()
    return row


def choose_winner(
    session: Session, merchant_id: int, broadcast_id: int, variant: str, now: datetime
) -> Broadcast:
    """The merchant's pick: the recipients waiting for the winner get ``variant``."""
    row = get(session, merchant_id, broadcast_id, lock=True)
    names = [v["name"] for v in row.variants]
    if not names:
        raise StateConflict(f"broadcast {broadcast_id} has no variants")
    if variant not in names:
        raise InvalidInput(
            f"no variant {variant!r} (variants: {', '.join(names)})", field="variant"
        )
    if row.winner is not None and row.winner != variant:
        raise StateConflict(f"the winner of broadcast {broadcast_id} is already {row.winner!r}")
    if row.status == "cancelled":
        raise StateConflict(f"broadcast {broadcast_id} is cancelled")
    _set_winner(session, row, variant, now)
    return row


def _set_winner(session: Session, row: Broadcast, variant: str, now: datetime) -> None:
    row.winner, row.updated_at = variant, now
    BroadcastRepository(session).release_waiting(row.id, variant, now)
    session.flush()


def view(session: Session, row: Broadcast) -> dict[str, Any]:
    counts = BroadcastRepository(session).progress(row.id)
    pending = counts.pop("pending", 0)
    waiting = counts.pop("waiting", 0)
    return {
        **{c.key: getattr(row, c.key) for c in Broadcast.__table__.columns},
        "holdout_share": row.holdout_bp,
        "test_share": row.test_bp,
        "progress": {
            "recipients": row.recipients,
            "processed": row.processed,
            "pending": pending,
            "waiting": waiting,
            "outcomes": counts,
        },
    }


def listing(
    session: Session, merchant_id: int, *, after_id: int, limit: int
) -> Sequence[Broadcast]:
    return BroadcastRepository(session).page(merchant_id, after_id, limit)


def broadcast_stats(session: Session, merchant_id: int, broadcast_id: int) -> dict[str, Any]:
    row = get(session, merchant_id, broadcast_id)
    out = stats.broadcast_stats(session, merchant_id, broadcast_id, winner=row.winner)
    return {"status": row.status, "progress": view(session, row)["progress"], **out}


# --- the worker's side ----------------------------------------------------------------------


def starts_at(row: Broadcast, merchant_zone: str) -> datetime:
    """When the broadcast starts: ``send_at``, or for local time the moment the earliest zone
    reaches its wall-clock time."""
    if not row.local_time:
        return row.send_at
    wall = row.send_at.astimezone(domain.zone(merchant_zone)).replace(tzinfo=None)
    return wall.replace(tzinfo=EARLIEST).astimezone(UTC)


def start_due(session: Session, now: datetime) -> int:
    """Freeze the audience of every broadcast whose time has come; how many started."""
    repo = BroadcastRepository(session)
    started = 0
    # a local-time broadcast may start up to 26 hours before send_at (UTC+14 vs UTC-12)
    for row in repo.scheduled_before(now + timedelta(hours=27)):
        policy = messaging.get_policy(session, row.merchant_id)
        if starts_at(row, policy.timezone) > now:
            continue
        if repo.lock_scheduled(row.id) is None:  # cancelled or started meanwhile
            continue
        freeze(session, row, policy.timezone, now)
        started += 1
    return started


def freeze(session: Session, row: Broadcast, merchant_zone: str, now: datetime) -> int:
    """Write the broadcast's recipients: the segment's members now, with their holdout,
    variant and due time. Returns how many."""
    repo = BroadcastRepository(session)
    segment = segments.get(session, row.merchant_id, row.segment_id)
    after, total = 0, 0
    while True:
        ids = segments.customer_ids(
            session,
            merchant_id=row.merchant_id,
            rule=segment.rule,
            now=now,
            after_id=after,
            limit=PAGE,
        )
        if not ids:
            break
        zones = repo.timezones(ids) if row.local_time else {}
        repo.add_recipients(
            [_recipient(row, cid, zones.get(cid), merchant_zone, now) for cid in ids]
        )
        total += len(ids)
        after = ids[-1]
    row.status, row.started_at, row.updated_at = "sending", now, now
    row.recipients = total
    if total == 0:
        row.status, row.finished_at = "sent", now
    session.flush()
    return total


def _recipient(
    row: Broadcast, customer_id: int, tz: str | None, merchant_zone: str, now: datetime
) -> dict[str, Any]:
    scope = f"broadcast:{row.id}"
    held = row.holdout_bp > 0 and measure.is_held_out(
        measure.holdout_salt(row.merchant_id, scope), customer_id, row.holdout_bp
    )
    variant, state = None, "pending"
    if row.variants and not held:
        salt = measure.variant_salt(row.merchant_id, scope)
        in_test = row.test_bp == 0 or measure.bucket(salt + ":test", customer_id) < row.test_bp
        if in_test:
            weights = [(v["name"], int(v.get("weight", 1))) for v in row.variants]
            variant = measure.pick_variant(salt, customer_id, weights)
        elif row.winner is not None:
            variant = row.winner
        else:
            state = "waiting"
    due = row.send_at
    if row.local_time:
        wall = row.send_at.astimezone(domain.zone(merchant_zone)).replace(tzinfo=None)
        due = wall.replace(tzinfo=domain.zone(tz, merchant_zone)).astimezone(UTC)
    return {
        "broadcast_id": row.id,
        "customer_id": customer_id,
        "variant": variant,
        "held_out": held,
        "due_at": max(due, now),
        "state": state,
    }


def process_due(session: Session, now: datetime, limit: int = BATCH) -> int:
    """Decide up to ``limit`` due recipients through ``messaging.send``; how many were taken."""
    repo = BroadcastRepository(session)
    batch = repo.due(now, limit)
    templates: dict[tuple[int, int], str] = {}
    touched: dict[int, Broadcast] = {}
    for rec, row in batch:
        template_id = _template_of(row, rec.variant)
        name = templates.get((row.merchant_id, template_id))
        if name is None:
            name = messaging.get_template(session, row.merchant_id, template_id).name
            templates[(row.merchant_id, template_id)] = name
        source: dict[str, Any] = {"broadcast_id": row.id}
        if rec.variant is not None:
            source["variant"] = rec.variant
        outcome = messaging.send(
            session,
            merchant_id=row.merchant_id,
            customer_id=rec.customer_id,
            template=name,
            topic=row.topic,
            key=key(row.id, rec.customer_id),
            now=now,
            channel=row.channel,
            source=source,
            hold_out=rec.held_out,
        )
        if outcome.status == "deferred":
            rec.due_at = max(outcome.retry_at or now, now + timedelta(seconds=1))
            rec.reason = outcome.reason
            continue
        rec.state, rec.outcome, rec.reason = "done", outcome.status, outcome.reason
        rec.send_id, rec.done_at = outcome.send_id, now
        row.processed += 1
        touched[row.id] = row
    session.flush()
    for row in touched.values():
        if row.status == "sending" and not repo.has_open(row.id):
            row.status, row.finished_at = "sent", now
        row.updated_at = now
    session.flush()
    return len(batch)


def _template_of(row: Broadcast, variant: str | None) -> int:
    for v in row.variants:
        if v["name"] == variant:
            return int(v["template_id"])
    return row.template_id


def auto_winners(session: Session, now: datetime) -> int:
    """Pick the winner of automatic A/B broadcasts once one is significant."""
    chosen = 0
    for row in BroadcastRepository(session).awaiting_auto_winner():
        found = stats.broadcast_stats(session, row.merchant_id, row.id)
        best = (found.get("ab") or {}).get("significant_winner")
        if best is not None:
            _set_winner(session, row, best, now)
            chosen += 1
    return chosen


def run(factory: sessionmaker[Session], now: datetime) -> int:
    """The job: start due broadcasts, pick automatic winners, then decide due recipients in
    batches, each batch its own transaction (so delivery starts while the rest is decided)."""
    with transaction(factory) as session:
        done = start_due(session, now)
    with transaction(factory) as session:
        done += auto_winners(session, now)
    while True:
        with transaction(factory) as session:
            n = process_due(session, now)
        done += n
        if n < BATCH:
            return done
