from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, or_, select, update

from fidele.kit.repository import RepositoryBase
from fidele.outbox.models import OutboxMessage


class OutboxRepository(RepositoryBase[OutboxMessage]):
    model = OutboxMessage

    def by_dedup_key(self, key: str) -> OutboxMessage | None:
        return self.one_or_none(select(OutboxMessage).where(OutboxMessage.dedup_key == key))

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[OutboxMessage]:
        """Take up to ``limit`` due messages no other process holds, oldest first, until
        ``now + lease``, in one statement (``UPDATE ... WHERE id IN (SELECT ... LIMIT)
        RETURNING``). On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets workers claim disjoint
        batches at the same moment without waiting on each other; SQLite has one writer at a
        time (``BEGIN IMMEDIATE``), so the statement is atomic there as it is."""
        due = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status == "pending",
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(due))
            .values(locked_until=now + lease)
            .returning(OutboxMessage)
            .execution_options(synchronize_session=False)
        )
        claimed = self.session.scalars(stmt).all()
        return sorted(claimed, key=lambda msg: (msg.next_attempt_at, msg.id))

    def renew(self, ids: list[int], until: datetime) -> None:
        if not ids:
            return
        self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "pending")
            .values(locked_until=until)
            .execution_options(synchronize_session=False)
        )

    def mark_sent(self, sent: list[tuple[int, dict[str, Any] | None]], now: datetime) -> None:
        """Mark ``(id, redacted payload)`` pairs sent: those whose payload needs no redaction
        (None) in one statement, the others in one statement executed for every pair, their
        payload replaced."""
        table = OutboxMessage.__table__
        done = {
            "status": "sent",
            "sent_at": now,
            "attempts": table.c.attempts + 1,
            "locked_until": None,
            "last_error": None,
        }
        kept = [i for i, payload in sent if payload is None]
        if kept:
            self.session.connection().execute(
                update(table).where(table.c.id.in_(kept), table.c.status == "pending").values(done)
            )
        redacted = [{"sent_id": i, "redacted": p} for i, p in sent if p is not None]
        if redacted:
            stmt = (
                update(table)
                .where(table.c.id == bindparam("sent_id"), table.c.status == "pending")
                .values({**done, "payload": bindparam("redacted")})
            )
            self.session.connection().execute(stmt, redacted)

    def mark_failed(
        self, message_id: int, *, attempts: int, error: str, dead: bool, retry_at: datetime
    ) -> None:
        self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == "pending")
            .values(
                status="dead" if dead else "pending",
                attempts=attempts,
                last_error=error,
                next_attempt_at=retry_at,
                locked_until=None,
            )
            .execution_options(synchronize_session=False)
        )

    def for_topic(self, topic: str) -> Sequence[OutboxMessage]:
        return self.all(
            select(OutboxMessage).where(OutboxMessage.topic == topic).order_by(OutboxMessage.id)
        )

    def of_programme(self, programme_id: int, merchant_id: int) -> Sequence[OutboxMessage]:
        """The messages of a merchant (GDPR erasure scans their payloads; retention keeps the
        table to a few weeks of messages)."""
        return self.all(
            select(OutboxMessage)
            .where(
                OutboxMessage.programme_id == programme_id,
                or_(OutboxMessage.merchant_id == merchant_id, OutboxMessage.merchant_id.is_(None)),
            )
            .order_by(OutboxMessage.id)
        )

    def delete_finished_before(self, cutoff: datetime) -> int:
        """Delete sent rows sent before ``cutoff`` and dead rows created before it."""
        result = self.session.execute(
            delete(OutboxMessage)
            .where(
                or_(
                    and_(OutboxMessage.status == "sent", OutboxMessage.sent_at < cutoff),
                    and_(OutboxMessage.status == "dead", OutboxMessage.created_at < cutoff),
                )
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
