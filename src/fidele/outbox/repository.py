from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update

from fidele.kit.repository import RepositoryBase
from fidele.outbox.models import OutboxMessage


class OutboxRepository(RepositoryBase[OutboxMessage]):
    model = OutboxMessage

    def by_dedup_key(self, key: str) -> OutboxMessage | None:
        return self.one_or_none(select(OutboxMessage).where(OutboxMessage.dedup_key == key))

    def due_ids(self, now: datetime, limit: int) -> list[int]:
        stmt = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status == "pending",
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        return list(self.session.execute(stmt).scalars())

    def claim(self, message_id: int, now: datetime, lease: timedelta) -> bool:
        """Take a message for delivery unless another process holds it (conditional UPDATE)."""
        result = self.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.status == "pending",
                or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
            )
            .values(locked_until=now + lease)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

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
