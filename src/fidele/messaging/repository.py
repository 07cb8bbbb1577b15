"""All of messaging's SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String, column, func, or_, select, text, update
from sqlalchemy.orm import Session

from fidele.kit.repository import RepositoryBase, bulk_insert, dialect_insert, in_
from fidele.messaging.models import (
    Consent,
    MessageSend,
    MessageTemplate,
    MessagingPolicy,
    MessagingProfile,
    Suppression,
)

# Ledger statuses that take a slot of the frequency caps: decided to go, going or gone.
COUNTED = ("queued", "sending", "sent", "unknown")


class ConsentRepository(RepositoryBase[Consent]):
    model = Consent

    def find(self, customer_id: int, topic: str, channel: str) -> Consent | None:
        return self.one_or_none(
            select(Consent).where(
                Consent.customer_id == customer_id,
                Consent.topic == topic,
                Consent.channel == channel,
            )
        )

    def of_customer(self, merchant_id: int, customer_id: int) -> Sequence[Consent]:
        return self.all(
            select(Consent)
            .where(Consent.merchant_id == merchant_id, Consent.customer_id == customer_id)
            .order_by(Consent.topic, Consent.channel)
        )

    def upsert(self, row: dict[str, Any]) -> None:
        """Insert or update the (customer, topic, channel) row in one statement: two requests
        setting the same consent at once both succeed, the last one wins."""
        insert = dialect_insert(self.session)
        stmt = insert(Consent).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["customer_id", "topic", "channel"],
            set_={k: stmt.excluded[k] for k in ("granted", "at", "source")},
        )
        self.session.execute(stmt)


class SuppressionRepository(RepositoryBase[Suppression]):
    model = Suppression

    def find(self, merchant_id: int, channel: str, address: str) -> Suppression | None:
        return self.one_or_none(
            select(Suppression).where(
                Suppression.merchant_id == merchant_id,
                Suppression.channel == channel,
                Suppression.address == address,
            )
        )

    def suppressed(self, merchant_id: int, channel: str, address: str) -> str | None:
        """The reason the address is suppressed, or None."""
        return self.session.execute(
            select(Suppression.reason).where(
                Suppression.merchant_id == merchant_id,
                Suppression.channel == channel,
                Suppression.address == address,
                Suppression.suppressed_at.is_not(None),
            )
        ).scalar_one_or_none()

    def lock_or_create(
        self, merchant_id: int, channel: str, address: str, now: datetime
    ) -> Suppression:
        insert = dialect_insert(self.session)
        self.session.execute(
            insert(Suppression)
            .values(
                merchant_id=merchant_id,
                channel=channel,
                address=address,
                soft_bounces=0,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["merchant_id", "channel", "address"])
        )
        return self.session.execute(
            select(Suppression)
            .where(
                Suppression.merchant_id == merchant_id,
                Suppression.channel == channel,
                Suppression.address == address,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()

    def of_merchant(self, merchant_id: int, *, after_id: int, limit: int) -> Sequence[Suppression]:
        return self.all(
            select(Suppression)
            .where(Suppression.merchant_id == merchant_id, Suppression.id > after_id)
            .order_by(Suppression.id)
            .limit(limit)
        )


class TemplateRepository(RepositoryBase[MessageTemplate]):
    model = MessageTemplate

    def by_name(self, merchant_id: int, name: str) -> MessageTemplate | None:
        return self.one_or_none(
            select(MessageTemplate).where(
                MessageTemplate.merchant_id == merchant_id, MessageTemplate.name == name
            )
        )

    def by_id(self, merchant_id: int, template_id: int) -> MessageTemplate | None:
        return self.one_or_none(
            select(MessageTemplate).where(
                MessageTemplate.merchant_id == merchant_id, MessageTemplate.id == template_id
            )
        )

    def page(self, merchant_id: int, *, after_id: int, limit: int) -> Sequence[MessageTemplate]:
        return self.all(
            select(MessageTemplate)
            .where(MessageTemplate.merchant_id == merchant_id, MessageTemplate.id > after_id)
            .order_by(MessageTemplate.id)
            .limit(limit)
        )


class PolicyRepository(RepositoryBase[MessagingPolicy]):
    model = MessagingPolicy

    def lock_or_create(self, merchant_id: int, now: datetime) -> MessagingPolicy:
        insert = dialect_insert(self.session)
        self.session.execute(
            insert(MessagingPolicy)
            .values(merchant_id=merchant_id, document={}, updated_at=now)
            .on_conflict_do_nothing(index_elements=["merchant_id"])
        )
        row = self.session.execute(
            select(MessagingPolicy)
            .where(MessagingPolicy.merchant_id == merchant_id)
            .with_for_update()
        ).scalar_one()
        self.session.refresh(row)
        return row


class ProfileRepository(RepositoryBase[MessagingProfile]):
    model = MessagingProfile

    def lock(self, merchant_id: int, customer_id: int, now: datetime) -> MessagingProfile:
        """The customer's row, created if missing, locked until the transaction ends
        (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has one writer at a time). Every
        marketing ``send`` to the customer takes it before counting the caps, so two workers
        cannot both take the last slot."""
        insert = dialect_insert(self.session)
        self.session.execute(
            insert(MessagingProfile)
            .values(customer_id=customer_id, merchant_id=merchant_id, updated_at=now)
            .on_conflict_do_nothing(index_elements=["customer_id"])
        )
        return self.session.execute(
            select(MessagingProfile)
            .where(MessagingProfile.customer_id == customer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()

    def lock_many(self, customers: Sequence[tuple[int, int]], now: datetime) -> None:
        """``lock`` for many customers ((merchant id, customer id) pairs) in two statements:
        the missing rows created, then all locked in customer id order (two batches locking
        overlapping customers cannot deadlock each other)."""
        if not customers:
            return
        ordered = sorted(set(customers), key=lambda mc: mc[1])
        bulk_insert(
            self.session,
            MessagingProfile.__table__,
            [{"customer_id": c, "merchant_id": m, "updated_at": now} for m, c in ordered],
            conflict=["customer_id"],
        )
        self.session.execute(
            select(MessagingProfile.customer_id)
            .where(in_(self.session, MessagingProfile.customer_id, [c for _, c in ordered]))
            .order_by(MessagingProfile.customer_id)
            .with_for_update()
        ).all()

    def complaint_open(self, customer_id: int) -> bool:
        return bool(
            self.session.execute(
                select(MessagingProfile.complaint_open).where(
                    MessagingProfile.customer_id == customer_id
                )
            ).scalar_one_or_none()
        )


class SendRepository(RepositoryBase[MessageSend]):
    model = MessageSend

    def by_key(self, merchant_id: int, key: str) -> MessageSend | None:
        return self.one_or_none(
            select(MessageSend).where(
                MessageSend.merchant_id == merchant_id, MessageSend.key == key
            )
        )

    def insert(self, row: dict[str, Any]) -> int | None:
        """Insert a ledger row; None when the merchant already has one with this key."""
        insert = dialect_insert(self.session)
        result = self.session.execute(
            insert(MessageSend)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["merchant_id", "key"])
            .returning(MessageSend.id)
        )
        return result.scalar_one_or_none()

    def ids_by_key(self, pairs: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
        """(merchant id, key) -> ledger row id, for the pairs that have a row (one query).

        PostgreSQL: one unique-index probe per pair (a ``LATERAL ... LIMIT 1`` join the
        planner cannot turn into a scan). The plain ``merchant_id IN ... AND key = ANY(...)``
        form depends on the ledger's statistics: while they are stale (a ledger growing from
        empty, autovacuum behind or off) the planner guesses a merchant has a handful of rows,
        walks all of them and filters the keys, 50-150 ms per batch of 200 at 20,000 rows
        instead of ~0.5 ms."""
        if not pairs:
            return {}
        if self.session.get_bind().dialect.name == "postgresql":
            ordered = sorted(pairs)
            rows = self.session.execute(
                text(
                    "SELECT k.merchant_id, k.key, s.id "
                    "FROM unnest(CAST(:merchants AS bigint[]), CAST(:keys AS text[])) "
                    "AS k(merchant_id, key) "
                    "CROSS JOIN LATERAL (SELECT m.id FROM message_sends AS m "
                    "WHERE m.merchant_id = k.merchant_id AND m.key = k.key LIMIT 1) AS s"
                ),
                {"merchants": [m for m, _ in ordered], "keys": [k for _, k in ordered]},
            )
            return {(m, k): i for m, k, i in rows}
        rows = self.session.execute(
            select(MessageSend.merchant_id, MessageSend.key, MessageSend.id).where(
                MessageSend.merchant_id.in_({m for m, _ in pairs}),
                in_(self.session, MessageSend.key, {k for _, k in pairs}),
            )
        )
        return {(m, k): i for m, k, i in rows if (m, k) in pairs}

    def insert_many(self, rows: Sequence[dict[str, Any]]) -> dict[tuple[int, str], int]:
        """Insert ledger rows in one batched statement; (merchant id, key) -> id of the rows
        written (a row whose key a concurrent transaction committed first is left out)."""
        if not rows:
            return {}
        written = bulk_insert(
            self.session,
            MessageSend.__table__,
            rows,
            conflict=["merchant_id", "key"],
            returning=["merchant_id", "key", "id"],
        )
        return {(m, k): i for m, k, i in written}

    def counted_times_many(
        self, customer_ids: set[int], since: datetime
    ) -> dict[tuple[int, str], list[datetime]]:
        """``counted_times`` of many customers on every channel in one query:
        (customer id, channel) -> times."""
        found: dict[tuple[int, str], list[datetime]] = {}
        if not customer_ids:
            return found
        if self.session.get_bind().dialect.name == "postgresql":
            # one probe of the customer index per customer (``OFFSET 0`` keeps the planner
            # from flattening the LATERAL into a join): the ``= ANY`` form, while the ledger's
            # statistics are stale (a ledger growing from empty, autovacuum behind or off),
            # takes the (status, next_attempt_at) index and filters every counted row of the
            # whole ledger, ~30 ms per batch of 500 at 10,000 rows and growing with it,
            # against ~1-4 ms
            rows = self.session.execute(
                text(
                    "SELECT k.customer_id, s.channel, s.created_at "
                    "FROM unnest(CAST(:customers AS bigint[])) AS k(customer_id) "
                    "CROSS JOIN LATERAL (SELECT m.channel, m.created_at FROM message_sends AS m "
                    "WHERE m.customer_id = k.customer_id AND m.created_at > :since "
                    "AND m.topic <> 'transactional' AND m.status = ANY(CAST(:counted AS text[])) "
                    "OFFSET 0) AS s"
                ).columns(
                    column("customer_id", BigInteger),
                    column("channel", String),
                    column("created_at", MessageSend.created_at.type),
                ),
                {"customers": sorted(customer_ids), "since": since, "counted": list(COUNTED)},
            )
            for c, ch, at in rows:
                found.setdefault((c, ch), []).append(at)
            return found
        rows = self.session.execute(
            select(MessageSend.customer_id, MessageSend.channel, MessageSend.created_at).where(
                in_(self.session, MessageSend.customer_id, customer_ids),
                MessageSend.created_at > since,
                MessageSend.topic != "transactional",
                MessageSend.status.in_(COUNTED),
            )
        )
        for c, ch, at in rows:
            found.setdefault((c, ch), []).append(at)
        return found

    def counted_times(self, customer_id: int, channel: str, since: datetime) -> list[datetime]:
        """When the customer's non-transactional messages on ``channel`` that take a cap slot
        were decided, since ``since``."""
        return list(
            self.session.execute(
                select(MessageSend.created_at).where(
                    MessageSend.customer_id == customer_id,
                    MessageSend.channel == channel,
                    MessageSend.created_at > since,
                    MessageSend.topic != "transactional",
                    MessageSend.status.in_(COUNTED),
                )
            ).scalars()
        )

    def any_due(self, now: datetime) -> bool:
        found = self.session.execute(
            select(MessageSend.id)
            .where(
                MessageSend.status == "queued",
                MessageSend.next_attempt_at <= now,
                or_(MessageSend.claimed_until.is_(None), MessageSend.claimed_until < now),
            )
            .limit(1)
        )
        return found.first() is not None

    def due_ids(self, now: datetime, limit: int) -> list[tuple[int, int]]:
        """(id, merchant id) of queued rows due now that no live claim holds, locked with
        ``FOR UPDATE SKIP LOCKED`` (PostgreSQL): several workers claim disjoint batches at the
        same moment (SQLite has one writer at a time, so the claim is atomic there as it is)."""
        stmt = (
            select(MessageSend.id, MessageSend.merchant_id)
            .where(
                MessageSend.status == "queued",
                MessageSend.next_attempt_at <= now,
                or_(MessageSend.claimed_until.is_(None), MessageSend.claimed_until < now),
            )
            .order_by(MessageSend.next_attempt_at, MessageSend.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [(i, m) for i, m in self.session.execute(stmt).all()]

    def lease(self, ids: Sequence[int], until: datetime) -> None:
        """The claim's lease on rows locked by :meth:`due_ids`, in one statement."""
        if ids:
            self.session.execute(
                update(MessageSend)
                .where(MessageSend.id.in_(ids))
                .values(claimed_until=until)
                .execution_options(synchronize_session=False)
            )

    def set_status(self, ids: Sequence[int], from_status: str, **values: Any) -> int:
        if not ids:
            return 0
        result = self.session.execute(
            update(MessageSend)
            .where(MessageSend.id.in_(ids), MessageSend.status == from_status)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def expired_claims(self, now: datetime) -> list[int]:
        return list(
            self.session.execute(
                select(MessageSend.id).where(
                    MessageSend.status == "sending",
                    or_(MessageSend.claimed_until.is_(None), MessageSend.claimed_until < now),
                )
            ).scalars()
        )

    def by_message_id(self, merchant_id: int, message_id: str) -> MessageSend | None:
        return self.one_or_none(
            select(MessageSend).where(
                MessageSend.merchant_id == merchant_id, MessageSend.message_id == message_id
            )
        )

    def page(
        self,
        merchant_id: int,
        *,
        after_id: int,
        limit: int,
        customer_id: int | None = None,
        status: str | None = None,
    ) -> Sequence[MessageSend]:
        stmt = select(MessageSend).where(
            MessageSend.merchant_id == merchant_id, MessageSend.id > after_id
        )
        if customer_id is not None:
            stmt = stmt.where(MessageSend.customer_id == customer_id)
        if status is not None:
            stmt = stmt.where(MessageSend.status == status)
        return self.all(stmt.order_by(MessageSend.id).limit(limit))

    def counts(self, merchant_id: int) -> dict[str, int]:
        rows = self.session.execute(
            select(MessageSend.status, func.count())
            .where(MessageSend.merchant_id == merchant_id)
            .group_by(MessageSend.status)
        )
        return {status: int(n) for status, n in rows}

    def of_customer(self, customer_id: int) -> Sequence[MessageSend]:
        return self.all(
            select(MessageSend)
            .where(MessageSend.customer_id == customer_id)
            .order_by(MessageSend.id)
        )


class BatchRepository:
    """The facts the delivery loop checks for a batch of claimed messages, a query each
    (not a query per message)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def sends(self, ids: Sequence[int]) -> list[MessageSend]:
        return list(
            self.session.execute(
                select(MessageSend).where(in_(self.session, MessageSend.id, ids))
            ).scalars()
        )

    def customers(self, ids: set[int]) -> dict[int, Any]:
        from fidele.customers.models import Customer

        rows = self.session.execute(
            select(Customer).where(in_(self.session, Customer.id, ids))
        ).scalars()
        return {c.id: c for c in rows}

    def recipients(self, ids: set[int]) -> dict[int, Any]:
        """The customers' columns deciding a send (id, merchant, addresses, erasure, zone),
        as plain rows: ``send_many`` does not need the whole customer objects."""
        from fidele.customers.models import Customer

        rows = self.session.execute(
            select(
                Customer.id,
                Customer.merchant_id,
                Customer.email_normalized,
                Customer.external_id,
                Customer.erased_at,
                Customer.timezone,
            ).where(in_(self.session, Customer.id, ids))
        )
        return {c.id: c for c in rows}

    def templates(self, ids: set[int]) -> dict[int, MessageTemplate]:
        rows = self.session.execute(select(MessageTemplate).where(MessageTemplate.id.in_(ids)))
        return {t.id: t for t in rows.scalars()}

    def consents(self, customer_ids: set[int]) -> set[tuple[int, str, str]]:
        """(customer, topic, channel) of the granted consents."""
        rows = self.session.execute(
            select(Consent.customer_id, Consent.topic, Consent.channel).where(
                in_(self.session, Consent.customer_id, customer_ids),
                Consent.granted.is_(True),
            )
        )
        return {(c, t, ch) for c, t, ch in rows}

    def suppressions(
        self, merchant_ids: set[int], addresses: set[str]
    ) -> dict[tuple[int, str, str], str]:
        if not addresses:
            return {}
        rows = self.session.execute(
            select(
                Suppression.merchant_id,
                Suppression.channel,
                Suppression.address,
                Suppression.reason,
            ).where(
                Suppression.merchant_id.in_(merchant_ids),
                in_(self.session, Suppression.address, addresses),
                Suppression.suppressed_at.is_not(None),
            )
        )
        return {(m, ch, a): r for m, ch, a, r in rows}

    def complaints(self, customer_ids: set[int]) -> set[int]:
        rows = self.session.execute(
            select(MessagingProfile.customer_id).where(
                in_(self.session, MessagingProfile.customer_id, customer_ids),
                MessagingProfile.complaint_open.is_(True),
            )
        )
        return set(rows.scalars())

    def templates_by_name(
        self, merchant_ids: set[int], names: set[str]
    ) -> dict[tuple[int, str], MessageTemplate]:
        rows = self.session.execute(
            select(MessageTemplate).where(
                MessageTemplate.merchant_id.in_(merchant_ids), MessageTemplate.name.in_(names)
            )
        )
        return {(t.merchant_id, t.name): t for t in rows.scalars()}

    def policies(self, merchant_ids: set[int]) -> dict[int, MessagingPolicy]:
        rows = self.session.execute(
            select(MessagingPolicy).where(MessagingPolicy.merchant_id.in_(merchant_ids))
        )
        return {p.merchant_id: p for p in rows.scalars()}

    def merchant_names(self, merchant_ids: set[int]) -> dict[int, str]:
        from fidele.tenancy.models import Merchant

        rows = self.session.execute(
            select(Merchant.id, Merchant.name).where(Merchant.id.in_(merchant_ids))
        )
        return {i: n for i, n in rows}
