from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import func, select

from fidele.events.models import ConnectorSecret, Event, SyncCursor
from fidele.kit.repository import RepositoryBase


class EventRepository(RepositoryBase[Event]):
    model = Event

    def by_idempotency_key(self, merchant_id: int, key: str) -> Event | None:
        return self.one_or_none(
            select(Event).where(Event.merchant_id == merchant_id, Event.idempotency_key == key)
        )

    def for_customer(self, customer_id: int) -> Sequence[Event]:
        return self.all(select(Event).where(Event.customer_id == customer_id).order_by(Event.id))

    def count(self, programme_id: int) -> int:
        stmt = select(func.count()).where(Event.programme_id == programme_id)
        return int(self.session.execute(stmt).scalar_one())

    def stream(
        self, *, programme_id: int | None = None, batch: int = 5000
    ) -> Iterator[Sequence[Event]]:
        """The log in id order, in batches (for replays)."""
        last = 0
        while True:
            stmt = select(Event).where(Event.id > last).order_by(Event.id).limit(batch)
            if programme_id is not None:
                stmt = stmt.where(Event.programme_id == programme_id)
            rows = self.all(stmt)
            if not rows:
                return
            yield rows
            last = rows[-1].id


class SyncCursorRepository(RepositoryBase[SyncCursor]):
    model = SyncCursor

    def position(self, merchant_id: int, source: str) -> str | None:
        row = self.session.get(SyncCursor, (merchant_id, source))
        return row.position if row else None

    def save(self, merchant_id: int, source: str, position: str, now: datetime) -> None:
        row = self.session.get(SyncCursor, (merchant_id, source))
        if row is None:
            self.add(
                SyncCursor(
                    merchant_id=merchant_id, source=source, position=position, updated_at=now
                )
            )
        else:
            row.position, row.updated_at = position, now


class ConnectorSecretRepository(RepositoryBase[ConnectorSecret]):
    model = ConnectorSecret

    def find(self, merchant_id: int, platform: str) -> ConnectorSecret | None:
        return self.session.get(ConnectorSecret, (merchant_id, platform))
