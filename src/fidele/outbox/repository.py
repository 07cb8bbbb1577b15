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
        ``now + lease``. On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets workers claim disjoint
        batches at the same moment without waiting on each other; SQLite has one writer at a
        time (``BEGIN IMMEDIATE``), so the select and the update are atomic there as they are."""
        stmt = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == "pending",
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed = list(self.session.execute(stmt).scalars())
        self.renew([msg.id for msg in claimed], now + lease)
        return claimed

    def renew(self, ids: list[int], until: datetime) -> None:
        if not ids:
            return
        self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "pending")
            .values(locked_until=until)
            .execution_options(synchronize_session=False)
        )

    def mark_sent(self, sent: list[tuple[int, dict[str, Any]]], now: datetime) -> None:
        """Mark ``(id, redacted payload)`` pairs sent, the payload replaced, in one statement
        executed for every pair."""
        if not sent:
            return
        table = OutboxMessage.__table__
        stmt = (
            update(table)
            .where(table.c.id == bindparam("sent_id"), table.c.status == "pending")
            .values(
                status="sent",
                sent_at=now,
                attempts=table.c.attempts + 1,
                locked_until=None,
                last_error=None,
                payload=bindparam("redacted"),
            )
        )
        self.session.connection().execute(
            stmt, [{"sent_id": i, "redacted": payload} for i, payload in sent]
        )

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
