"""All the SQL of flows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, inspect, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from fidele.campaigns.models import Enrollment, EnrollmentStep, Flow, FlowVersion
from fidele.customers.models import Customer
from fidele.kit.repository import bulk_insert, in_, json_rows
from fidele.orders.models import Order

ACTIVE = "active"
# The columns advancing an enrollment changes (``write_enrollments``).
_ADVANCED = (
    "status",
    "step",
    "due_at",
    "waiting_for",
    "updated_at",
    "ended_at",
    "exit_reason",
    "attempts",
    "context",
)


class FlowRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # flows -------------------------------------------------------------------------------

    def by_name(self, merchant_id: int, name: str, *, lock: bool = False) -> Flow | None:
        stmt = select(Flow).where(Flow.merchant_id == merchant_id, Flow.name == name)
        if lock:
            stmt = stmt.with_for_update()
        return self.session.execute(stmt).scalar_one_or_none()

    def by_id(self, merchant_id: int, flow_id: int) -> Flow | None:
        return self.session.execute(
            select(Flow).where(Flow.merchant_id == merchant_id, Flow.id == flow_id)
        ).scalar_one_or_none()

    def listing(self, merchant_id: int) -> Sequence[Flow]:
        return (
            self.session.execute(
                select(Flow).where(Flow.merchant_id == merchant_id).order_by(Flow.id)
            )
            .scalars()
            .all()
        )

    def version(self, flow_id: int, version: int) -> FlowVersion | None:
        return self.session.execute(
            select(FlowVersion).where(
                FlowVersion.flow_id == flow_id, FlowVersion.version == version
            )
        ).scalar_one_or_none()

    def active_with_definitions(
        self, *, merchant_id: int | None = None, kind: str | None = None, event: str | None = None
    ) -> list[tuple[Flow, dict[str, Any]]]:
        """Active flows (of a merchant, a trigger kind, an event type) with the definition of
        their active version."""
        stmt = (
            select(Flow, FlowVersion.definition)
            .join(
                FlowVersion,
                and_(FlowVersion.flow_id == Flow.id, FlowVersion.version == Flow.active_version),
            )
            .where(Flow.status == ACTIVE)
            .order_by(Flow.id)
        )
        if merchant_id is not None:
            stmt = stmt.where(Flow.merchant_id == merchant_id)
        if kind is not None:
            stmt = stmt.where(Flow.trigger_kind == kind)
        if event is not None:
            stmt = stmt.where(Flow.trigger_event == event)
        return [(f, d) for f, d in self.session.execute(stmt).all()]

    def counts(self, flow_ids: list[int]) -> dict[int, dict[str, int]]:
        rows = self.session.execute(
            select(Enrollment.flow_id, Enrollment.status, func.count())
            .where(Enrollment.flow_id.in_(flow_ids))
            .group_by(Enrollment.flow_id, Enrollment.status)
        ).all()
        out: dict[int, dict[str, int]] = {}
        for flow_id, status, n in rows:
            out.setdefault(flow_id, {})[status] = n
        return out

    # enrollments -------------------------------------------------------------------------

    def last_entered(self, flow_id: int, customer_id: int) -> datetime | None:
        return self.session.execute(
            select(func.max(Enrollment.entered_at)).where(
                Enrollment.flow_id == flow_id, Enrollment.customer_id == customer_id
            )
        ).scalar_one_or_none()

    def has_active(self, flow_id: int, customer_id: int) -> bool:
        return (
            self.session.execute(
                select(Enrollment.id).where(
                    Enrollment.flow_id == flow_id,
                    Enrollment.customer_id == customer_id,
                    Enrollment.status == ACTIVE,
                )
            ).first()
            is not None
        )

    def active_of_customers(self, customer_ids: set[int]) -> Sequence[Enrollment]:
        """``active_of_customer`` for many customers in one query (locked in id order)."""
        if not customer_ids:
            return []
        return (
            self.session.execute(
                select(Enrollment)
                .where(
                    in_(self.session, Enrollment.customer_id, customer_ids),
                    Enrollment.status == ACTIVE,
                )
                .order_by(Enrollment.id)
                .with_for_update()
            )
            .scalars()
            .all()
        )

    def active_of_customer(self, customer_id: int) -> Sequence[Enrollment]:
        return (
            self.session.execute(
                select(Enrollment)
                .where(Enrollment.customer_id == customer_id, Enrollment.status == ACTIVE)
                .order_by(Enrollment.id)
                .with_for_update()
            )
            .scalars()
            .all()
        )

    def claim_due(self, now: datetime, limit: int) -> Sequence[Enrollment]:
        """Up to ``limit`` due active enrollments no other transaction holds. PostgreSQL:
        ``FOR UPDATE SKIP LOCKED`` gives concurrent workers disjoint batches, held until
        commit; SQLite has one writer at a time (``BEGIN IMMEDIATE``)."""
        # the ids are claimed (sorted and locked) first, then their rows read: sorting every
        # due row whole (~1 kB each, ``context`` included) before the LIMIT cost twice the
        # time at 20,000 due rows
        claimed = (
            select(Enrollment.id)
            .where(Enrollment.status == ACTIVE, Enrollment.due_at <= now)
            .order_by(Enrollment.due_at, Enrollment.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            select(Enrollment)
            .where(Enrollment.id.in_(claimed.scalar_subquery()))
            .order_by(Enrollment.due_at, Enrollment.id)
        )
        return self.session.execute(stmt).scalars().all()

    def enrollments_page(
        self, merchant_id: int, flow_id: int, *, after_id: int, limit: int, status: str | None
    ) -> Sequence[Enrollment]:
        stmt = (
            select(Enrollment)
            .where(
                Enrollment.merchant_id == merchant_id,
                Enrollment.flow_id == flow_id,
                Enrollment.id > after_id,
            )
            .order_by(Enrollment.id)
            .limit(limit)
        )
        if status is not None:
            stmt = stmt.where(Enrollment.status == status)
        return self.session.execute(stmt).scalars().all()

    def of_customer(self, merchant_id: int, customer_id: int) -> Sequence[Enrollment]:
        return (
            self.session.execute(
                select(Enrollment)
                .where(Enrollment.merchant_id == merchant_id, Enrollment.customer_id == customer_id)
                .order_by(Enrollment.id)
            )
            .scalars()
            .all()
        )

    def write_enrollments(self, enrollments: Sequence[Enrollment]) -> None:
        """Write the advanced state of these (loaded, changed) enrollments in one statement
        and mark it as their stored state, instead of the unit of work's one UPDATE per row.
        PostgreSQL: ``UPDATE ... FROM jsonb_to_recordset`` (one parameter); SQLite: one
        batched executemany."""
        if not enrollments:
            return
        # only the columns some enrollment of the batch changed (a send step that ends the
        # flow leaves ``step``, ``attempts`` and ``context`` alone: not re-encoded, not
        # re-parsed, not rewritten); an enrollment that left one of them alone writes back
        # its unchanged value
        touched: set[str] = set()
        for e in enrollments:
            touched.update(inspect(e).committed_state)
        columns = [c for c in _ADVANCED if c in touched]
        if not columns:
            return
        rows = [{"id": e.id, **{c: getattr(e, c) for c in columns}} for e in enrollments]
        with self.session.no_autoflush:  # not the unit of work's UPDATEs first
            self._write_enrollments(rows, columns)
        for e in enrollments:  # what was written is now the stored state: nothing to flush
            for c in columns:
                set_committed_value(e, c, getattr(e, c))

    def _write_enrollments(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
        table = Enrollment.__table__
        dialect = self.session.get_bind().dialect
        if dialect.name == "postgresql":
            quote = dialect.identifier_preparer.quote
            typed = ", ".join(
                f"{quote(n)} {table.c[n].type.compile(dialect=dialect)}" for n in ("id", *columns)
            )
            sets = ", ".join(f"{quote(n)} = r.{quote(n)}" for n in columns)
            self.session.execute(
                text(
                    f"UPDATE flow_enrollments SET {sets} "
                    f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({typed}) "
                    "WHERE flow_enrollments.id = r.id"
                ),
                {"rows": json_rows(rows)},
            )
        else:
            self.session.connection().execute(
                update(table)
                .where(table.c.id == bindparam("_id"))
                .values({c: bindparam(c) for c in columns}),
                [{"_id": r.pop("id"), **r} for r in rows],
            )

    def add_history(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write history rows (``EnrollmentStep`` columns) in one statement."""
        bulk_insert(self.session, EnrollmentStep.__table__, rows)

    def history(self, enrollment_ids: list[int]) -> Sequence[EnrollmentStep]:
        if not enrollment_ids:
            return []
        return (
            self.session.execute(
                select(EnrollmentStep)
                .where(EnrollmentStep.enrollment_id.in_(enrollment_ids))
                .order_by(EnrollmentStep.id)
            )
            .scalars()
            .all()
        )

    def flows_by_id(self, ids: set[int]) -> dict[int, Flow]:
        if not ids:
            return {}
        rows = self.session.execute(select(Flow).where(Flow.id.in_(ids))).scalars()
        return {f.id: f for f in rows}

    def set_due(self, enrollment_id: int, due_at: datetime) -> None:
        self.session.execute(
            update(Enrollment).where(Enrollment.id == enrollment_id).values(due_at=due_at)
        )

    # customers' facts --------------------------------------------------------------------

    def order_count(self, customer_id: int) -> int:
        return int(
            self.session.execute(
                select(func.count()).where(Order.customer_id == customer_id)
            ).scalar_one()
        )

    def last_order_at(self, customer_id: int) -> datetime | None:
        return self.session.execute(
            select(func.max(Order.placed_at)).where(
                Order.customer_id == customer_id, Order.status != "cancelled"
            )
        ).scalar_one_or_none()

    def merchant_orders(self, merchant_id: int, until: datetime) -> list[tuple[int, datetime]]:
        """(customer id, placed at) of the merchant's orders up to ``until`` (not
        cancelled), for the cadence of every customer."""
        rows = self.session.execute(
            select(Order.customer_id, Order.placed_at).where(
                Order.merchant_id == merchant_id,
                Order.status != "cancelled",
                Order.placed_at <= until,
            )
        ).all()
        return [(c, p) for c, p in rows]

    def birthdays(self, merchant_id: int) -> list[tuple[int, date, str | None]]:
        rows = self.session.execute(
            select(Customer.id, Customer.birthday, Customer.timezone).where(
                Customer.merchant_id == merchant_id,
                Customer.birthday.is_not(None),
                Customer.erased_at.is_(None),
            )
        ).all()
        return [(i, b, tz) for i, b, tz in rows]

    def first_orders(self, merchant_id: int) -> list[tuple[int, datetime, str | None]]:
        first = (
            select(Order.customer_id, func.min(Order.placed_at).label("first"))
            .where(Order.merchant_id == merchant_id, Order.status != "cancelled")
            .group_by(Order.customer_id)
            .subquery()
        )
        rows = self.session.execute(
            select(Customer.id, first.c.first, Customer.timezone)
            .join(first, first.c.customer_id == Customer.id)
            .where(Customer.erased_at.is_(None))
        ).all()
        return [(i, f, tz) for i, f, tz in rows]

    def everyone(self, merchant_id: int) -> list[tuple[int, None, str | None]]:
        rows = self.session.execute(
            select(Customer.id, Customer.timezone).where(
                Customer.merchant_id == merchant_id, Customer.erased_at.is_(None)
            )
        ).all()
        return [(i, None, tz) for i, tz in rows]

    def timezones(self, customer_ids: list[int]) -> dict[int, str | None]:
        rows = self.session.execute(
            select(Customer.id, Customer.timezone).where(Customer.id.in_(customer_ids))
        ).all()
        return {i: tz for i, tz in rows}

    def external_ids(self, customer_ids: list[int]) -> dict[int, str]:
        if not customer_ids:
            return {}
        rows = self.session.execute(
            select(Customer.id, Customer.external_id).where(Customer.id.in_(customer_ids))
        ).all()
        return {i: e for i, e in rows}

    def customer_of_member(self, member_id: int) -> int | None:
        """The customer a loyalty member's news goes to: a member may hold several customer
        records (one person, same address); the latest one, so the person hears once."""
        from fidele.loyalty.models import CustomerLink

        return self.session.execute(
            select(func.max(CustomerLink.customer_id)).where(CustomerLink.member_id == member_id)
        ).scalar_one_or_none()
