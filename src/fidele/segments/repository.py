"""All SQL of segments (the rule queries are built by ``segments.compiler``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    and_,
    case,
    cast,
    delete,
    func,
    or_,
    select,
    true,
    update,
)

from fidele.customers.models import Customer
from fidele.kit.repository import RepositoryBase, bulk_insert, dialect_insert
from fidele.orders.models import Order
from fidele.segments.models import (
    RECENT_K,
    CustomerOrderFacts,
    Segment,
    SegmentDirty,
    SegmentMember,
)
from fidele.tenancy.models import Merchant


class SegmentRepository(RepositoryBase[Segment]):
    model = Segment

    def find(self, merchant_id: int, segment_id: int) -> Segment | None:
        return self.one_or_none(
            select(Segment).where(Segment.merchant_id == merchant_id, Segment.id == segment_id)
        )

    def by_name(self, merchant_id: int, name: str) -> Segment | None:
        return self.one_or_none(
            select(Segment).where(Segment.merchant_id == merchant_id, Segment.name == name)
        )

    def listing(self, merchant_id: int, after_id: int, limit: int) -> Sequence[Segment]:
        return self.all(
            select(Segment)
            .where(Segment.merchant_id == merchant_id, Segment.id > after_id)
            .order_by(Segment.id)
            .limit(limit)
        )

    def of_merchant(self, merchant_id: int) -> Sequence[Segment]:
        return self.all(
            select(Segment).where(Segment.merchant_id == merchant_id).order_by(Segment.id)
        )

    def with_depends(self, like: str) -> Sequence[Segment]:
        return self.all(select(Segment).where(Segment.depends.contains(like)).order_by(Segment.id))

    def names(self, merchant_id: int) -> set[str]:
        stmt = select(Segment.name).where(Segment.merchant_id == merchant_id)
        return set(self.session.execute(stmt).scalars())

    def merchant_ids(self) -> list[int]:
        return list(self.session.execute(select(Merchant.id).order_by(Merchant.id)).scalars())

    def programme_of(self, merchant_id: int) -> int | None:
        stmt = select(Merchant.programme_id).where(Merchant.id == merchant_id)
        return self.session.execute(stmt).scalar_one_or_none()

    def flow_ids(self, merchant_id: int, keys: Sequence[str]) -> dict[str, list[int]]:
        """Each key's flows of the merchant: the flow with that id (digits), else the flow
        of that name, else those installed from the ready-made journey of that name."""
        if not keys:
            return {}
        from fidele.campaigns.models import Flow

        stmt = select(Flow.id, Flow.name, Flow.template).where(Flow.merchant_id == merchant_id)
        rows = self.session.execute(stmt.order_by(Flow.id)).all()
        out: dict[str, list[int]] = {}
        for key in keys:
            by_id = [int(i) for i, _, _ in rows if key.isdigit() and i == int(key)]
            by_name = [int(i) for i, name, _ in rows if name == key]
            by_template = [int(i) for i, _, template in rows if template == key]
            out[key] = by_id or by_name or by_template
        return out

    # -- rule queries ------------------------------------------------------------------------

    def ids(self, stmt: Select[Any]) -> list[int]:
        return [int(i) for i in self.session.execute(stmt).scalars()]

    def scalar(self, stmt: Select[Any]) -> Any:
        return self.session.execute(stmt).scalar_one()

    def customers(self, merchant_id: int, ids: Sequence[int]) -> Sequence[Customer]:
        if not ids:
            return []
        stmt = select(Customer).where(Customer.merchant_id == merchant_id, Customer.id.in_(ids))
        return self.session.execute(stmt.order_by(Customer.id)).scalars().all()

    def external_ids(self, ids: Sequence[int]) -> dict[int, str]:
        stmt = select(Customer.id, Customer.external_id).where(Customer.id.in_(list(ids)))
        return {int(i): e for i, e in self.session.execute(stmt).all()}

    # -- members -----------------------------------------------------------------------------

    def member_ids(self, segment_id: int, among: Sequence[int] | None = None) -> set[int]:
        stmt = select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment_id)
        if among is not None:
            stmt = stmt.where(SegmentMember.customer_id.in_(among))
        return set(self.session.execute(stmt).scalars())

    def members_page(self, segment_id: int, after_id: int, limit: int) -> Sequence[Customer]:
        stmt = (
            select(Customer)
            .join(SegmentMember, SegmentMember.customer_id == Customer.id)
            .where(SegmentMember.segment_id == segment_id, Customer.id > after_id)
            .order_by(Customer.id)
            .limit(limit)
        )
        return self.session.execute(stmt).scalars().all()

    def add_members(
        self, segment_id: int, merchant_id: int, ids: Sequence[int], now: datetime
    ) -> list[int]:
        """Insert memberships; return the ids actually added (a concurrent pass may have
        added some already: those are not entering twice)."""
        if not ids:
            return []
        # one JSON parameter on PostgreSQL (``bulk_insert``): a multi-VALUES statement of
        # 4 placeholders per member took psycopg tens of seconds to send for a built-in
        # segment recomputed on a 36,000-customer shop, while the dirty customers waited
        rows = [
            {
                "segment_id": segment_id,
                "customer_id": i,
                "merchant_id": merchant_id,
                "entered_at": now,
            }
            for i in ids
        ]
        written = bulk_insert(
            self.session,
            SegmentMember.__table__,  # type: ignore[arg-type]
            rows,
            conflict=["segment_id", "customer_id"],
            returning=["customer_id"],
        )
        return [int(r[0]) for r in written]

    def remove_members(self, segment_id: int, ids: Sequence[int]) -> list[int]:
        if not ids:
            return []
        stmt = (
            delete(SegmentMember)
            .where(SegmentMember.segment_id == segment_id, SegmentMember.customer_id.in_(ids))
            .returning(SegmentMember.customer_id)
        )
        return [int(i) for i in self.session.execute(stmt).scalars()]

    def clear_members(self, segment_id: int) -> None:
        self.session.execute(delete(SegmentMember).where(SegmentMember.segment_id == segment_id))

    def count_members(self, segment_id: int) -> int:
        stmt = select(func.count()).where(SegmentMember.segment_id == segment_id)
        return int(self.session.execute(stmt).scalar_one())

    def set_computed(self, segment_id: int, count: int, now: datetime) -> None:
        self.session.execute(
            update(Segment)
            .where(Segment.id == segment_id)
            .values(member_count=count, computed_at=now)
        )

    def bump_count(self, segment_id: int, delta: int) -> None:
        if delta:
            self.session.execute(
                update(Segment)
                .where(Segment.id == segment_id)
                .values(member_count=Segment.member_count + delta)
            )

    def memberships_of(self, customer_id: int) -> list[dict[str, Any]]:
        stmt = (
            select(Segment.id, Segment.name, SegmentMember.entered_at)
            .join(SegmentMember, SegmentMember.segment_id == Segment.id)
            .where(SegmentMember.customer_id == customer_id)
            .order_by(Segment.id)
        )
        return [
            {"segment_id": i, "name": n, "entered_at": t.isoformat()}
            for i, n, t in self.session.execute(stmt).all()
        ]

    def forget_customer(self, customer_id: int) -> list[int]:
        """Drop an erased customer's memberships; the segments they were in."""
        stmt = (
            delete(SegmentMember)
            .where(SegmentMember.customer_id == customer_id)
            .returning(SegmentMember.segment_id)
        )
        left = [int(i) for i in self.session.execute(stmt).scalars()]
        self.session.execute(delete(SegmentDirty).where(SegmentDirty.customer_id == customer_id))
        return left


class DirtyRepository(RepositoryBase[SegmentDirty]):
    model = SegmentDirty

    def mark(self, merchant_id: int, customer_id: int, kinds: int, now: datetime) -> None:
        ins = dialect_insert(self.session)(SegmentDirty).values(
            customer_id=customer_id, merchant_id=merchant_id, kinds=kinds, marked_at=now
        )
        self.session.execute(
            ins.on_conflict_do_update(
                index_elements=[SegmentDirty.customer_id],
                set_={"kinds": SegmentDirty.kinds.op("|")(ins.excluded.kinds)},
            )
        )

    def claim(self, limit: int) -> list[tuple[int, int, int, datetime]]:
        """Take up to ``limit`` dirty customers (oldest first) and delete their marks, in the
        caller's transaction: a mark written meanwhile by a new event waits for this
        transaction (PostgreSQL row lock) and is claimed again next round; rows another
        worker holds are skipped."""
        pick = select(SegmentDirty.customer_id).order_by(SegmentDirty.marked_at).limit(limit)
        if self.session.get_bind().dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            delete(SegmentDirty)
            .where(SegmentDirty.customer_id.in_(pick.scalar_subquery()))
            .returning(
                SegmentDirty.merchant_id,
                SegmentDirty.customer_id,
                SegmentDirty.kinds,
                SegmentDirty.marked_at,
            )
        )
        rows = self.session.execute(stmt).all()
        return [(int(m), int(c), int(k), t) for m, c, k, t in rows]

    def any_pending(self) -> bool:
        stmt = select(SegmentDirty.customer_id).limit(1)
        return self.session.execute(stmt).first() is not None

    def pending(self) -> int:
        return int(
            self.session.execute(select(func.count()).select_from(SegmentDirty)).scalar_one()
        )


FACTS_CHUNK = 500  # customers per statement (SQLite's bound-parameter limit)


class FactsRepository(RepositoryBase[CustomerOrderFacts]):
    """``customer_order_facts`` recomputed from the orders (never incremented: a retried or
    reordered write cannot drift it)."""

    model = CustomerOrderFacts

    def refresh(self, customer_ids: Sequence[int]) -> None:
        """Recompute the facts of these customers from their orders, in the caller's
        transaction. On PostgreSQL the customers' rows are locked first (``FOR NO KEY
        UPDATE``, in id order): the recomputation then reads every order a concurrent
        transaction committed for them, so two orders of one customer written at once cannot
        leave facts that miss one of them."""
        ids = sorted({int(i) for i in customer_ids})
        if not ids:
            return
        self.session.flush()
        postgres = self.session.get_bind().dialect.name == "postgresql"
        for start in range(0, len(ids), FACTS_CHUNK):
            chunk = ids[start : start + FACTS_CHUNK]
            if postgres:
                lock = (
                    select(Customer.id)
                    .where(Customer.id.in_(chunk))
                    .order_by(Customer.id)
                    .with_for_update(key_share=True)
                )
                self.session.execute(lock).all()
            facts = CustomerOrderFacts.__table__
            self.session.execute(delete(facts).where(facts.c.customer_id.in_(chunk)))
            self._insert(Order.__table__.c.customer_id.in_(chunk))

    def add_order(self, order: Order) -> None:
        """Count one new order (not cancelled) into its customer's facts: ONE upsert, the
        order's time slotted into the most recent ones. The row lock of ``ON CONFLICT DO
        UPDATE`` works on the latest committed facts, so concurrent orders of one customer
        all count; a recomputation (:meth:`refresh`) racing with it deletes the row after it
        or sees its order. Only for an order recorded once (``order.placed``)."""
        facts = CustomerOrderFacts.__table__
        f = facts.c
        t = order.placed_at
        ins = dialect_insert(self.session)(facts).values(
            customer_id=order.customer_id,
            merchant_id=order.merchant_id,
            orders_count=1,
            spent=order.total - order.refunded_total,
            first_at=t,
            last_at=t,
            recent_1=t,
        )
        new = ins.excluded.recent_1

        def ahead(k: int) -> Any:  # the k-th most recent stays before the new order
            return and_(f[f"recent_{k}"].is_not(None), f[f"recent_{k}"] >= new)

        recent = {
            f"recent_{k}": case(
                (ahead(k), f[f"recent_{k}"]),
                (ahead(k - 1) if k > 1 else true(), new),
                else_=f[f"recent_{k - 1}"] if k > 1 else new,
            )
            for k in range(1, RECENT_K + 1)
        }
        stmt = ins.on_conflict_do_update(
            index_elements=[f.customer_id],
            set_={
                "orders_count": f.orders_count + 1,
                "spent": f.spent + ins.excluded.spent,
                "first_at": case(
                    (or_(f.first_at.is_(None), new < f.first_at), new), else_=f.first_at
                ),
                "last_at": case((or_(f.last_at.is_(None), new > f.last_at), new), else_=f.last_at),
                **recent,
            },
        )
        self.session.execute(stmt)

    def rebuild(self, merchant_id: int) -> None:
        """Recompute the facts of every customer of a merchant (after rows were written
        outside the order paths: a bulk build, a restore)."""
        self.session.flush()
        facts = CustomerOrderFacts.__table__
        self.session.execute(delete(facts).where(facts.c.merchant_id == merchant_id))
        self._insert(Order.__table__.c.merchant_id == merchant_id)

    def _insert(self, where: Any) -> None:
        o = Order.__table__.c
        ranked = (
            select(
                o.customer_id,
                o.merchant_id,
                o.placed_at,
                (o.total - o.refunded_total).label("net"),
                func.row_number()
                .over(partition_by=o.customer_id, order_by=(o.placed_at.desc(), o.id.desc()))
                .label("rn"),
            )
            .where(where, o.status != "cancelled")
            .subquery("ranked")
        )
        r = ranked.c
        recent = [
            func.max(case((r.rn == k, r.placed_at), else_=None)).label(f"recent_{k}")
            for k in range(1, RECENT_K + 1)
        ]
        rows = select(
            r.customer_id,
            func.max(r.merchant_id).label("merchant_id"),
            func.count().label("orders_count"),
            cast(func.sum(r.net), BigInteger).label("spent"),
            func.min(r.placed_at).label("first_at"),
            func.max(r.placed_at).label("last_at"),
            *recent,
        ).group_by(r.customer_id)
        facts = CustomerOrderFacts.__table__
        columns = ["customer_id", "merchant_id", "orders_count", "spent", "first_at", "last_at"]
        columns += [f"recent_{k}" for k in range(1, RECENT_K + 1)]
        self.session.execute(facts.insert().from_select(columns, rows))

    def of(self, customer_id: int) -> CustomerOrderFacts | None:
        return self.session.get(CustomerOrderFacts, customer_id, populate_existing=True)
