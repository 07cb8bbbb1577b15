"""SQL of the measurement side of messaging (recommendations, tracking, conversions,
broadcasts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.kit.repository import dialect_insert
from fidele.messaging.measure_models import (
    Broadcast,
    BroadcastRecipient,
    MessageConversion,
    MessageInteraction,
    ProductRecommendation,
)
from fidele.messaging.models import Consent, MessageSend
from fidele.orders.models import Order, OrderLine
from fidele.tenancy.models import Merchant


class RecommendationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _bought(self):  # type: ignore[no-untyped-def]
        """Product lines of orders that stand: not cancelled, not fully refunded."""
        return (
            select(Order.customer_id, OrderLine.product_id)
            .join(Order, Order.id == OrderLine.order_id)
            .where(
                OrderLine.kind == "product",
                Order.cancelled_at.is_(None),
                Order.status != "cancelled",
                OrderLine.refunded_quantity < OrderLine.quantity,
            )
        )

    def baskets(self, merchant_id: int) -> list[tuple[int, str]]:
        """Distinct (customer id, product id) pairs of the merchant's standing orders."""
        stmt = self._bought().where(Order.merchant_id == merchant_id).distinct()
        return [(c, p) for c, p in self.session.execute(stmt).all()]

    def product_names(self, merchant_id: int) -> dict[str, tuple[str | None, str | None]]:
        """Each product's name and category as its latest line gave them."""
        latest = (
            select(func.max(OrderLine.id))
            .join(Order, Order.id == OrderLine.order_id)
            .where(Order.merchant_id == merchant_id, OrderLine.kind == "product")
            .group_by(OrderLine.product_id)
        )
        stmt = select(OrderLine.product_id, OrderLine.name, OrderLine.category).where(
            OrderLine.id.in_(latest)
        )
        return {p: (n, c) for p, n, c in self.session.execute(stmt).all()}

    def bought_by(self, merchant_id: int, customer_id: int) -> set[str]:
        stmt = self._bought().where(
            Order.merchant_id == merchant_id, Order.customer_id == customer_id
        )
        return {p for _, p in self.session.execute(stmt).all()}

    def replace(self, merchant_id: int, rows: Sequence[dict[str, Any]]) -> None:
        self.session.execute(
            delete(ProductRecommendation).where(ProductRecommendation.merchant_id == merchant_id)
        )
        if rows:
            self.session.execute(insert(ProductRecommendation), list(rows))

    def for_products(
        self, merchant_id: int, products: Sequence[str]
    ) -> Sequence[ProductRecommendation]:
        stmt = (
            select(ProductRecommendation)
            .where(
                ProductRecommendation.merchant_id == merchant_id,
                ProductRecommendation.product_id.in_(list(products)),
            )
            .order_by(ProductRecommendation.product_id, ProductRecommendation.rank)
        )
        return self.session.execute(stmt).scalars().all()

    def computed_at(self, merchant_id: int) -> datetime | None:
        stmt = select(func.max(ProductRecommendation.computed_at)).where(
            ProductRecommendation.merchant_id == merchant_id
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def orders_changed_since(self, merchant_id: int, since: datetime) -> bool:
        stmt = (
            select(Order.id)
            .where(Order.merchant_id == merchant_id, Order.updated_at > since)
            .limit(1)
        )
        return self.session.execute(stmt).first() is not None

    def merchant_ids(self) -> list[int]:
        return list(self.session.execute(select(Merchant.id).order_by(Merchant.id)).scalars())

    def has_orders(self, merchant_id: int) -> bool:
        stmt = select(Order.id).where(Order.merchant_id == merchant_id).limit(1)
        return self.session.execute(stmt).first() is not None


class TrackingRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def touch(self, *, now: datetime, **values: Any) -> None:
        table = MessageInteraction.__table__
        stmt = dialect_insert(self.session)(table).values(
            **values, count=1, first_at=now, last_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["send_id", "kind", "url_hash"],
            set_={"count": table.c.count + 1, "last_at": stmt.excluded.last_at},
        )
        self.session.execute(stmt)

    def touches_of(
        self, customer_ids: set[int], *, since: datetime, until: datetime
    ) -> list[MessageInteraction]:
        """The customers' opens and clicks that began by ``until`` and whose last repeat is
        ``since`` or later: every touch an order placed in that span may be credited to (the
        rule, ``conversions.last_touch``, picks one)."""
        if not customer_ids:
            return []
        stmt = select(MessageInteraction).where(
            MessageInteraction.customer_id.in_(sorted(customer_ids)),
            MessageInteraction.first_at <= until,
            MessageInteraction.last_at >= since,
        )
        return list(self.session.execute(stmt).scalars())

    def add_conversions(self, rows: list[dict[str, Any]]) -> int:
        """Insert the conversions of orders not attributed yet (``ON CONFLICT (order_id) DO
        NOTHING``: a replay adds nothing); how many were inserted."""
        if not rows:
            return 0
        table = MessageConversion.__table__
        stmt = (
            dialect_insert(self.session)(table)
            .on_conflict_do_nothing(index_elements=["order_id"])
            .returning(table.c.id)  # type: ignore[attr-defined]
        )
        return len(self.session.execute(stmt, rows).all())


def _source(merchant_id: int, where: dict[str, int]) -> list[Any]:
    """Conditions on the ledger selecting one source (``flow_id=`` or ``broadcast_id=``)."""
    conds: list[Any] = [MessageSend.merchant_id == merchant_id]
    for name, value in where.items():
        conds.append(getattr(MessageSend, name) == value)
    return conds


def _net_total() -> Any:
    return Order.total - Order.refunded_total


def _standing() -> Any:
    return (Order.status != "cancelled") & Order.cancelled_at.is_(None)


class StatsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def rows(self, merchant_id: int, **where: int) -> list[tuple[Any, ...]]:
        s = MessageSend
        stmt = (
            select(
                s.id,
                s.customer_id,
                s.status,
                s.reason,
                s.step,
                s.variant,
                s.topic,
                s.channel,
                s.created_at,
                s.sent_at,
                s.delivered_at,
                s.bounced_at,
                s.complained_at,
            )
            .where(*_source(merchant_id, where))
            .order_by(s.id)
        )
        return [tuple(r) for r in self.session.execute(stmt).all()]

    def _ids(self, merchant_id: int, where: dict[str, int]) -> Any:
        return select(MessageSend.id).where(*_source(merchant_id, where))

    def _customers(self, merchant_id: int, where: dict[str, int]) -> Any:
        return select(MessageSend.customer_id).where(*_source(merchant_id, where)).distinct()

    def interactions(self, merchant_id: int, **where: int) -> list[tuple[int, str]]:
        stmt = (
            select(MessageInteraction.send_id, MessageInteraction.kind)
            .where(
                MessageInteraction.merchant_id == merchant_id,
                MessageInteraction.send_id.in_(self._ids(merchant_id, where)),
            )
            .distinct()
        )
        return [(i, k) for i, k in self.session.execute(stmt).all()]

    def attributed(self, merchant_id: int, **where: int) -> list[tuple[int, int]]:
        stmt = (
            select(MessageConversion.send_id, _net_total())
            .join(Order, Order.id == MessageConversion.order_id)
            .where(
                MessageConversion.merchant_id == merchant_id,
                MessageConversion.send_id.in_(self._ids(merchant_id, where)),
                _standing(),
            )
        )
        return [(i, int(t)) for i, t in self.session.execute(stmt).all()]

    def orders_after(
        self, merchant_id: int, since: datetime, **where: int
    ) -> list[tuple[int, datetime, int]]:
        stmt = select(Order.customer_id, Order.placed_at, _net_total()).where(
            Order.merchant_id == merchant_id,
            Order.placed_at >= since,
            Order.customer_id.in_(self._customers(merchant_id, where)),
            _standing(),
        )
        return [(c, at, int(t)) for c, at, t in self.session.execute(stmt).all()]

    def withdrawals(
        self, merchant_id: int, sources: Sequence[str], **where: int
    ) -> list[tuple[int, str, str, datetime]]:
        stmt = select(Consent.customer_id, Consent.topic, Consent.channel, Consent.at).where(
            Consent.merchant_id == merchant_id,
            Consent.granted.is_(False),
            Consent.source.in_(list(sources)),
            Consent.customer_id.in_(self._customers(merchant_id, where)),
        )
        return [tuple(r) for r in self.session.execute(stmt).all()]  # type: ignore[misc]

    def last_sent_before(
        self, merchant_id: int, withdrawn: Sequence[tuple[int, str, str, datetime]]
    ) -> set[int]:
        """For each withdrawal (customer, topic, channel, at), the id of the last message of
        that topic and channel sent to the customer before it (any source)."""
        customers = {c for c, _, _, _ in withdrawn}
        stmt = select(
            MessageSend.id,
            MessageSend.customer_id,
            MessageSend.topic,
            MessageSend.channel,
            MessageSend.sent_at,
        ).where(
            MessageSend.merchant_id == merchant_id,
            MessageSend.customer_id.in_(customers),
            MessageSend.sent_at.is_not(None),
        )
        sent: dict[tuple[int, str, str], list[tuple[datetime, int]]] = {}
        for i, c, topic, channel, at in self.session.execute(stmt).all():
            sent.setdefault((c, topic, channel), []).append((at, i))
        out = set()
        for c, topic, channel, at in withdrawn:
            before = [x for x in sent.get((c, topic, channel), ()) if x[0] <= at]
            if before:
                out.add(max(before)[1])
        return out


class ProgrammeRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def customers_at(self, merchant_id: int, at: datetime) -> list[int]:
        stmt = select(Customer.id).where(
            Customer.merchant_id == merchant_id, Customer.created_at <= at
        )
        return list(self.session.execute(stmt).scalars())

    def revenue_by_customer(
        self, merchant_id: int, since: datetime, until: datetime
    ) -> dict[int, int]:
        stmt = (
            select(Order.customer_id, func.sum(_net_total()))
            .where(
                Order.merchant_id == merchant_id,
                Order.placed_at >= since,
                Order.placed_at < until,
                _standing(),
            )
            .group_by(Order.customer_id)
        )
        return {c: int(t) for c, t in self.session.execute(stmt).all()}


class BroadcastRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Broadcast) -> Broadcast:
        self.session.add(row)
        self.session.flush()
        return row

    def find(self, merchant_id: int, broadcast_id: int, *, lock: bool = False) -> Broadcast | None:
        stmt = select(Broadcast).where(
            Broadcast.merchant_id == merchant_id, Broadcast.id == broadcast_id
        )
        if lock:
            stmt = stmt.with_for_update()
        return self.session.execute(stmt).scalars().first()

    def by_idempotency_key(self, merchant_id: int, key: str) -> Broadcast | None:
        stmt = select(Broadcast).where(
            Broadcast.merchant_id == merchant_id, Broadcast.idempotency_key == key
        )
        return self.session.execute(stmt).scalars().first()

    def page(self, merchant_id: int, after_id: int, limit: int) -> Sequence[Broadcast]:
        stmt = (
            select(Broadcast)
            .where(Broadcast.merchant_id == merchant_id, Broadcast.id > after_id)
            .order_by(Broadcast.id)
            .limit(limit)
        )
        return self.session.execute(stmt).scalars().all()

    def scheduled_before(self, until: datetime) -> Sequence[Broadcast]:
        stmt = (
            select(Broadcast)
            .where(Broadcast.status == "scheduled", Broadcast.send_at <= until)
            .order_by(Broadcast.send_at, Broadcast.id)
        )
        return self.session.execute(stmt).scalars().all()

    def lock_scheduled(self, broadcast_id: int) -> int | None:
        """Take the start of a scheduled broadcast (one worker only: the status moves from
        ``scheduled`` under this row's lock); None when it is no longer scheduled."""
        stmt = (
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.status == "scheduled")
            .values(status="starting")
            .returning(Broadcast.id)
        )
        return self.session.execute(stmt).scalar_one_or_none()

    def timezones(self, customer_ids: Sequence[int]) -> dict[int, str | None]:
        stmt = select(Customer.id, Customer.timezone).where(Customer.id.in_(list(customer_ids)))
        return {i: tz for i, tz in self.session.execute(stmt).all()}

    def add_recipients(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.session.execute(insert(BroadcastRecipient), list(rows))

    def due(self, now: datetime, limit: int) -> list[tuple[BroadcastRecipient, Broadcast]]:
        stmt = (
            select(BroadcastRecipient, Broadcast)
            .join(Broadcast, Broadcast.id == BroadcastRecipient.broadcast_id)
            .where(
                BroadcastRecipient.state == "pending",
                BroadcastRecipient.due_at <= now,
                Broadcast.status == "sending",
            )
            .order_by(BroadcastRecipient.due_at, BroadcastRecipient.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=BroadcastRecipient)
        )
        return [(r, b) for r, b in self.session.execute(stmt).all()]

    def has_open(self, broadcast_id: int) -> bool:
        stmt = (
            select(BroadcastRecipient.id)
            .where(
                BroadcastRecipient.broadcast_id == broadcast_id,
                BroadcastRecipient.state != "done",
            )
            .limit(1)
        )
        return self.session.execute(stmt).first() is not None

    def release_waiting(self, broadcast_id: int, variant: str, now: datetime) -> int:
        stmt = (
            update(BroadcastRecipient)
            .where(
                BroadcastRecipient.broadcast_id == broadcast_id,
                BroadcastRecipient.state == "waiting",
            )
            .values(state="pending", variant=variant, due_at=now)
        )
        return self.session.execute(stmt).rowcount  # type: ignore[attr-defined,no-any-return]

    def progress(self, broadcast_id: int) -> dict[str, int]:
        """Recipients per state (pending, waiting) and, once decided, per outcome."""
        stmt = (
            select(BroadcastRecipient.state, BroadcastRecipient.outcome, func.count())
            .where(BroadcastRecipient.broadcast_id == broadcast_id)
            .group_by(BroadcastRecipient.state, BroadcastRecipient.outcome)
        )
        out: dict[str, int] = {}
        for state, outcome, n in self.session.execute(stmt).all():
            name = outcome if state == "done" else state
            out[name] = out.get(name, 0) + int(n)
        return out

    def awaiting_auto_winner(self) -> Sequence[Broadcast]:
        stmt = select(Broadcast).where(
            Broadcast.status == "sending",
            Broadcast.winner_mode == "auto",
            Broadcast.winner.is_(None),
        )
        return [b for b in self.session.execute(stmt).scalars().all() if b.variants]
