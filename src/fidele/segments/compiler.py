"""A parsed rule compiled to ONE SQL query (SQLAlchemy Core, the same code on SQLite and
PostgreSQL).

The query selects ``customers.id`` of one merchant. Order counts, amounts and first/last
order times, and "at least k orders in the last N days" for k <= ``RECENT_K``, read the
customer's order facts row (``customer_order_facts``, 1:1, kept by every order write). Other
per-customer aggregates (orders in a window,
events of a type in a window) are LEFT JOINed derived tables grouped by customer, one per
distinct (source, window), so a whole-base count is a few hash aggregates rather than a
subquery per customer; when the query is restricted to some customers (one customer's check,
a batch of dirty customers) the restriction is pushed into each derived table too. Set fields
(categories, products) and consent are EXISTS subqueries. Days-since fields compare the stored
instant with ``now - N days`` (index-friendly, no date arithmetic in SQL), and every condition
is a never-NULL boolean so that ``not`` is a plain negation (see ``segments.domain``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    case,
    cast,
    exists,
    extract,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement as Col

from fidele.analytics.models import CustomerInsight
from fidele.customers.models import Customer
from fidele.events.models import Event
from fidele.feedback.complaints_domain import OPEN_STATUSES
from fidele.feedback.complaints_models import Complaint
from fidele.feedback.models import Review, Survey, SurveyAnswer
from fidele.ledger.models import Account
from fidele.loyalty.models import CustomerLink, Lot, Member
from fidele.messaging.domain import TRANSACTIONAL
from fidele.messaging.measure_models import MessageInteraction
from fidele.messaging.models import Consent, MessageSend
from fidele.orders.models import Order, OrderLine
from fidele.segments.domain import All, AnyOf, Condition, Not, Rule, RuleError
from fidele.segments.models import RECENT_K, CustomerOrderFacts

C = Customer.__table__.c
ORDER_COUNTED_C = Order.__table__.c.status != "cancelled"  # cancelled orders count for nothing
DAYS_CLAMP = 100_000  # beyond ~270 years every stored instant is on the same side


class Compiler:
    """Compiles one rule for one merchant at one instant.

    ``tiers``: the programme's tier names in rank order (``loyalty.tier``); ``restrict``: a
    function of a customer-id column giving the restriction to push into derived tables."""

    def __init__(
        self,
        *,
        merchant_id: int,
        now: datetime,
        dialect: str,
        tiers: list[str] | None = None,
        flows: Mapping[str, list[int]] | None = None,
        restrict: Callable[[Any], ColumnElement[bool]] | None = None,
    ) -> None:
        self.merchant_id, self.now, self.dialect = merchant_id, now, dialect
        self.tiers = tiers or []
        self.flows = flows or {}
        self.restrict = restrict
        self._derived: dict[tuple[Any, ...], Any] = {}
        self._joins: list[tuple[Any, ColumnElement[bool]]] = []
        self._use_loyalty = False
        self._use_insights = False
        self._use_facts = False
        self._correlate = False

    # -- the query ---------------------------------------------------------------------------

    def query(self, rule: Rule, columns: Iterable[Any] | None = None) -> Select[Any]:
        if isinstance(rule, All) and any(_selective(c) for c in rule.children):
            # Per-customer aggregates directly under a top-level "all" that also filters on
            # the customer (country, RFM segment, consent...) are correlated subqueries: the
            # database evaluates them last, only for the customers the cheap filters kept,
            # through the (customer_id, placed_at) index, instead of aggregating every order
            # of the shop (bench/segments.py: 2.5x faster on 1M customers).
            where = and_(true(), *(self._top(c) for c in rule.children))
        else:
            where = self.expr(rule)
        frm: Any = Customer.__table__
        if self._use_insights:
            ci = CustomerInsight.__table__
            frm = frm.outerjoin(ci, ci.c.customer_id == C.id)
        if self._use_facts:
            f = CustomerOrderFacts.__table__
            frm = frm.outerjoin(f, f.c.customer_id == C.id)
        if self._use_loyalty:
            link, mem, acc = CustomerLink.__table__, Member.__table__, Account.__table__
            frm = frm.outerjoin(link, link.c.customer_id == C.id)
            frm = frm.outerjoin(mem, mem.c.id == link.c.member_id)
            frm = frm.outerjoin(acc, acc.c.id == mem.c.available_account_id)
        for sub, on in self._joins:
            frm = frm.outerjoin(sub, on)
        stmt = select(*(columns or [C.id])).select_from(frm)
        conds = [C.merchant_id == self.merchant_id, C.erased_at.is_(None), where]
        if self.restrict is not None:
            conds.append(self.restrict(C.id))
        return stmt.where(*conds)

    def _top(self, rule: Rule) -> ColumnElement[bool]:
        self._correlate = isinstance(rule, Condition)
        try:
            return self.expr(rule)
        finally:
            self._correlate = False

    def expr(self, rule: Rule) -> ColumnElement[bool]:
        if isinstance(rule, All):
            return and_(true(), *(self.expr(c) for c in rule.children))
        if isinstance(rule, AnyOf):
            return or_(false(), *(self.expr(c) for c in rule.children))
        if isinstance(rule, Not):
            return not_(self.expr(rule.child))
        return self.condition(rule)

    def condition(self, cond: Condition) -> ColumnElement[bool]:
        source = cond.field.source
        method = getattr(self, f"_{source}")
        return method(cond)

    # -- sources -----------------------------------------------------------------------------

    def _customer(self, cond: Condition) -> ColumnElement[bool]:
        attr = cond.field.attr
        if attr == "age_days":
            return days_since(C.created_at, cond.op, cond.value, self.now)
        if attr == "birthday_month":
            return compare(extract("month", C.birthday), cond.op, cond.value, self)
        return compare(C[attr], cond.op, cond.value, self)

    def _attr(self, cond: Condition) -> ColumnElement[bool]:
        return attribute(C.attributes, cond.field.attr, cond.op, cond.value, self.dialect)

    def _consent(self, cond: Condition) -> ColumnElement[bool]:
        """A recorded yes (messaging's ``consents`` row granted); the transactional topic needs
        none. Suppressed addresses are messaging's to skip at send time."""
        topic, channel = cond.field.attr, cond.field.channel
        if topic == TRANSACTIONAL:
            return bool_compare(true(), cond.op, cond.value)
        t = Consent.__table__
        granted = exists().where(
            t.c.customer_id == C.id,
            t.c.topic == topic,
            t.c.channel == channel,
            t.c.granted.is_(True),
        )
        return bool_compare(granted, cond.op, cond.value)

    def _orders(self, cond: Condition) -> ColumnElement[bool]:
        attr = cond.field.attr
        if attr in ("categories", "products"):
            return self._bought(cond)
        from_facts = self._from_facts(cond)
        if from_facts is not None:
            return from_facts
        agg = self._order_aggregate(cond.within_days)
        scalar = isinstance(agg, _Aggregates)
        if attr == "count":
            return counted(agg.c.n, cond.op, cond.value, self, never_null=scalar)
        if attr == "spent":
            return counted(agg.c.spent, cond.op, cond.value, self, never_null=scalar)
        if attr == "avg_value":
            avg = case((agg.c.n > 0, agg.c.spent / agg.c.n), else_=None)
            return compare(avg, cond.op, cond.value, self)
        column = agg.c.last_at if attr == "last_days" else agg.c.first_at
        return days_since(column, cond.op, cond.value, self.now)

    def _facts(self) -> Any:
        self._use_facts = True
        return CustomerOrderFacts.__table__.c

    def _from_facts(self, cond: Condition) -> ColumnElement[bool] | None:
        """The condition on the customer's order facts row (1:1, LEFT JOINed; no row: no
        order), or None when the facts cannot answer it exactly (a window on the amounts, a
        count in a window above ``RECENT_K``): the orders are aggregated then."""
        attr, op, value = cond.field.attr, cond.op, cond.value
        if cond.within_days is None:
            if attr == "count":
                return counted(self._facts().orders_count, op, value, self)
            if attr == "spent":
                return counted(self._facts().spent, op, value, self)
            if attr == "avg_value":
                f = self._facts()
                avg = case((f.orders_count > 0, f.spent / f.orders_count), else_=None)
                return compare(avg, op, value, self)
            if attr in ("last_days", "first_days"):
                f = self._facts()
                return days_since(
                    f.last_at if attr == "last_days" else f.first_at, op, value, self.now
                )
            return None
        if attr != "count":
            return None
        return self._recent_count(op, value, self.now - timedelta(days=cond.within_days))

    def _recent_count(self, op: str, value: Any, since: datetime) -> ColumnElement[bool] | None:
        """ "Orders since ``since``" compared with ``value`` through the k-th most recent order
        time: at least k orders in the window is ``recent_k >= since``."""
        if op == "exists":
            return true() if value else false()
        if op in ("ne", "not_in"):
            positive = self._recent_count("eq" if op == "ne" else "in", value, since)
            return None if positive is None else not_(positive)
        bounds = {
            "gte": lambda: [(value, None)],
            "gt": lambda: [(value + 1, None)],
            "lt": lambda: [(None, value)],
            "lte": lambda: [(None, value + 1)],
            "eq": lambda: [(value, value + 1)],
            "between": lambda: [(value[0], value[1] + 1)],
            "in": lambda: [(v, v + 1) for v in value],
        }[op]()  # (at least, fewer than) pairs, ORed
        needed = [k for pair in bounds for k in pair if k is not None and k > 0]
        if any(k > RECENT_K for k in needed):
            return None
        f = self._facts()

        def at_least(k: int | None) -> ColumnElement[bool]:
            if k is None or k <= 0:
                return true()
            recent = f[f"recent_{k}"]
            return and_(recent.is_not(None), recent >= since)  # never NULL (see ``not``)

        return or_(
            false(),
            *(
                and_(at_least(lo), not_(at_least(hi)) if hi is not None else true())
                for lo, hi in bounds
            ),
        )

    def _order_aggregate(self, within: int | None) -> Any:
        if self._correlate:
            return self._order_scalars(within)
        key = ("orders", within)
        if key not in self._derived:
            o = Order.__table__
            stmt = select(
                o.c.customer_id,
                func.count().label("n"),
                cast(func.sum(o.c.total - o.c.refunded_total), BigInteger).label("spent"),
                func.min(o.c.placed_at).label("first_at"),
                func.max(o.c.placed_at).label("last_at"),
            ).where(o.c.merchant_id == self.merchant_id, o.c.status != "cancelled")
            if within is not None:
                stmt = stmt.where(o.c.placed_at >= self.now - timedelta(days=within))
            if self.restrict is not None:
                stmt = stmt.where(self.restrict(o.c.customer_id))
            sub = stmt.group_by(o.c.customer_id).subquery(f"o{len(self._derived)}")
            self._derived[key] = sub
            self._joins.append((sub, sub.c.customer_id == C.id))
        return self._derived[key]

    def _order_scalars(self, within: int | None) -> Any:
        """The same aggregates as correlated scalar subqueries (see :meth:`query`)."""
        o = Order.__table__
        where = [o.c.customer_id == C.id, o.c.merchant_id == self.merchant_id, ORDER_COUNTED_C]
        if within is not None:
            where.append(o.c.placed_at >= self.now - timedelta(days=within))

        def scalar(expr: Any) -> Any:
            return select(expr).where(*where).scalar_subquery()

        return _Aggregates(
            correlated=True,
            n=scalar(func.count()),
            spent=scalar(
                func.coalesce(cast(func.sum(o.c.total - o.c.refunded_total), BigInteger), 0)
            ),
            first_at=scalar(func.min(o.c.placed_at)),
            last_at=scalar(func.max(o.c.placed_at)),
        )

    def _bought(self, cond: Condition) -> ColumnElement[bool]:
        o, ol = Order.__table__, OrderLine.__table__
        column = ol.c.category if cond.field.attr == "categories" else ol.c.product_id
        base = [
            o.c.customer_id == C.id,
            o.c.merchant_id == self.merchant_id,
            o.c.status != "cancelled",
            column.is_not(None),
        ]
        if cond.within_days is not None:
            base.append(o.c.placed_at >= self.now - timedelta(days=cond.within_days))
        lines = select(literal(1)).select_from(ol.join(o, o.c.id == ol.c.order_id))
        if cond.op == "exists":
            found = exists(lines.where(*base))
            return found if cond.value else not_(found)
        values = [cond.value] if cond.op == "contains" else cond.value
        found = exists(lines.where(*base, column.in_(values)))
        return not_(found) if cond.op == "not_in" else found

    def _loyalty(self, cond: Condition) -> ColumnElement[bool]:
        self._use_loyalty = True
        mem, acc = Member.__table__, Account.__table__
        attr = cond.field.attr
        if attr == "member":
            return bool_compare(mem.c.id.is_not(None), cond.op, cond.value)
        if attr == "available":
            return compare(func.coalesce(acc.c.balance, 0), cond.op, cond.value, self)
        if attr == "expiring_30d":
            lots = Lot.__table__
            soon = (
                select(func.coalesce(cast(func.sum(lots.c.remaining), BigInteger), 0))
                .where(
                    lots.c.member_id == mem.c.id,
                    lots.c.status == "available",
                    lots.c.expires_at > self.now,
                    lots.c.expires_at <= self.now + timedelta(days=30),
                )
                .scalar_subquery()
            )
            return compare(func.coalesce(soon, 0), cond.op, cond.value, self)
        return self._tier(cond, mem.c.tier_rank, mem.c.id.is_not(None))

    def _tier(self, cond: Condition, rank: Any, is_member: Any) -> ColumnElement[bool]:
        names = self.tiers
        if cond.op == "exists":
            has = and_(is_member, literal(bool(names)))
            return has if cond.value else not_(has)
        values = cond.value if isinstance(cond.value, list) else [cond.value]
        if cond.op == "contains":
            wanted = [i for i, n in enumerate(names) if cond.value in n]
        else:
            for i, v in enumerate(values):
                if v not in names:
                    where = f"{cond.path}.value" + (f".{i}" if isinstance(cond.value, list) else "")
                    known = ", ".join(names) or "none"
                    raise RuleError(where, f"unknown tier {v!r} (tiers: {known})")
            wanted = [names.index(v) for v in values]
        last = len(names) - 1
        hits = [rank >= last if i == last else rank == i for i in sorted(set(wanted))]
        found = and_(is_member, or_(false(), *hits))
        return not_(found) if cond.op in ("ne", "not_in") else found

    def _insights(self, cond: Condition) -> ColumnElement[bool]:
        self._use_insights = True
        ci = CustomerInsight.__table__.c
        column = {
            "segment": ci.segment,
            "r": ci.r_score,
            "f": ci.f_score,
            "m": ci.m_score,
            "p_alive": ci.p_alive,
            "clv": ci.clv,
            "overdue_ratio": ci.overdue_ratio,
            "expected_gap_days": ci.expected_gap_days,
            "engagement_status": ci.engagement_status,
            "engagement_score": ci.engagement_score,
        }[cond.field.attr]
        return compare(column, cond.op, cond.value, self)

    def _events(self, cond: Condition) -> ColumnElement[bool]:
        if self._correlate:
            e = Event.__table__
            where = [
                e.c.customer_id == C.id,
                e.c.merchant_id == self.merchant_id,
                e.c.type == cond.field.attr,
            ]
            if cond.within_days is not None:
                where.append(e.c.occurred_at >= self.now - timedelta(days=cond.within_days))
            n = select(func.count()).where(*where).scalar_subquery()
            return counted(n, cond.op, cond.value, self, never_null=True)
        key = ("events", cond.field.attr, cond.within_days)
        if key not in self._derived:
            e = Event.__table__
            stmt = select(e.c.customer_id, func.count().label("n")).where(
                e.c.merchant_id == self.merchant_id, e.c.type == cond.field.attr
            )
            if cond.within_days is not None:
                stmt = stmt.where(e.c.occurred_at >= self.now - timedelta(days=cond.within_days))
            if self.restrict is not None:
                stmt = stmt.where(self.restrict(e.c.customer_id))
            sub = stmt.group_by(e.c.customer_id).subquery(f"e{len(self._derived)}")
            self._derived[key] = sub
            self._joins.append((sub, sub.c.customer_id == C.id))
        sub = self._derived[key]
        return counted(sub.c.n, cond.op, cond.value, self)

    def _messages(self, cond: Condition) -> ColumnElement[bool]:
        """Messages of a journey: received (the ledger's ``sent``, not bounced), counted, or
        opened/clicked (messaging's interactions of those sends), each a correlated
        subquery through the customer's index."""
        flow_ids = self.flows.get(cond.field.flow or "")
        if not flow_ids:
            raise RuleError(f"{cond.path}.field", f"unknown flow {cond.field.flow!r}")
        since = None if cond.within_days is None else self.now - timedelta(days=cond.within_days)
        s = MessageSend.__table__
        sent = [
            s.c.customer_id == C.id,
            s.c.merchant_id == self.merchant_id,
            s.c.flow_id.in_(flow_ids),
        ]
        attr = cond.field.attr
        if attr in ("opened", "clicked"):
            i = MessageInteraction.__table__
            kinds = ["open", "click"] if attr == "opened" else ["click"]
            where = [i.c.customer_id == C.id, i.c.kind.in_(kinds), *sent[1:]]
            if since is not None:
                where.append(i.c.last_at >= since)
            touched = exists(
                select(literal(1)).select_from(i.join(s, s.c.id == i.c.send_id)).where(*where)
            )
            return bool_compare(touched, cond.op, cond.value)
        sent += [s.c.status == "sent", s.c.bounced_at.is_(None)]
        if since is not None:
            sent.append(s.c.sent_at >= since)
        if attr == "received":
            return bool_compare(exists().where(*sent), cond.op, cond.value)
        n = select(func.count()).where(*sent).scalar_subquery()
        return counted(n, cond.op, cond.value, self, never_null=True)

    def _feedback(self, cond: Condition) -> ColumnElement[bool]:
        """The customer's feedback, each a correlated subquery through the customer's index:
        the score of the latest NPS/CSAT answer that has one (the answer given last, by its
        ``updated_at``, then its id), or a count of answers, reviews or complaints (in the
        window: answered, posted, opened in the last N days)."""
        attr = cond.field.attr
        since = None if cond.within_days is None else self.now - timedelta(days=cond.within_days)
        if attr in ("nps_last", "nps_group", "csat_last"):
            a, s = SurveyAnswer.__table__, Survey.__table__
            value: Any = a.c.score
            if attr == "nps_group":  # feedback.domain.nps_group, inside: one subquery
                value = case(
                    (a.c.score >= 9, "promoter"), (a.c.score >= 7, "passive"), else_="detractor"
                )
            latest = (
                select(value)
                .select_from(a.join(s, s.c.id == a.c.survey_id))
                .where(
                    a.c.customer_id == C.id,
                    a.c.merchant_id == self.merchant_id,
                    s.c.kind == ("csat" if attr == "csat_last" else "nps"),
                    a.c.score.is_not(None),
                )
                .order_by(a.c.updated_at.desc(), a.c.id.desc())
                .limit(1)
                .scalar_subquery()
            )
            return compare(latest, cond.op, cond.value, self)  # NULL: no such answer
        if attr == "surveys_answered":
            a = SurveyAnswer.__table__
            where = [a.c.customer_id == C.id, a.c.merchant_id == self.merchant_id]
            if since is not None:
                where.append(a.c.answered_at >= since)
        elif attr == "reviews":
            r = Review.__table__
            where = [r.c.customer_id == C.id, r.c.merchant_id == self.merchant_id]
            if since is not None:
                where.append(r.c.posted_at >= since)
        else:  # complaints, complaints_open
            c = Complaint.__table__
            where = [c.c.customer_id == C.id, c.c.merchant_id == self.merchant_id]
            if attr == "complaints_open":
                where.append(c.c.status.in_(sorted(OPEN_STATUSES)))
            if since is not None:
                where.append(c.c.opened_at >= since)
        n = select(func.count()).where(*where).scalar_subquery()
        return counted(n, cond.op, cond.value, self, never_null=True)


class _Aggregates:
    def __init__(
        self, *, correlated: bool, n: Any, spent: Any, first_at: Any, last_at: Any
    ) -> None:
        self.c, self.correlated = self, correlated
        self.n, self.spent, self.first_at, self.last_at = n, spent, first_at, last_at


SELECTIVE_OPS = frozenset({"eq", "in", "between", "lt", "lte", "gt", "gte", "contains"})


def _selective(rule: Rule) -> bool:
    """A condition on the customer's own row or 1:1 data (not an aggregate) that is likely to
    keep few customers."""
    aggregates = ("orders", "events", "messages", "feedback")
    if not isinstance(rule, Condition) or rule.field.source in aggregates:
        return False
    if rule.field.source == "consent":
        return rule.op == "eq" and rule.value is True
    return rule.op in SELECTIVE_OPS


# -- comparisons -----------------------------------------------------------------------------


def compare(
    column: Any, op: str, value: Any, comp: Compiler, *, nullable: bool = True
) -> ColumnElement[bool]:
    """``column OP value``, false when the column is NULL (``ne``/``not_in`` are negations).
    ``nullable`` False: the column is never NULL, no guard (a correlated subquery is then
    evaluated once, not twice)."""
    if op == "exists":
        present = column.is_not(None)
        return present if value else not_(present)
    if op in ("ne", "not_in"):
        positive = "eq" if op == "ne" else "in"
        return not_(compare(column, positive, value, comp, nullable=nullable))
    test: ColumnElement[bool]
    if op == "eq":
        test = column == value
    elif op == "lt":
        test = column < value
    elif op == "lte":
        test = column <= value
    elif op == "gt":
        test = column > value
    elif op == "gte":
        test = column >= value
    elif op == "in":
        test = column.in_(value)
    elif op == "between":
        test = and_(column >= value[0], column <= value[1])
    elif op == "contains":
        test = substring(column, value, comp.dialect)
    else:  # pragma: no cover - parse_rule refuses other ops
        raise ValueError(op)
    return and_(column.is_not(None), test) if nullable else test


def holds(v: Any, op: str, value: Any) -> bool:
    """``v OP value`` for a present number (the reference of :func:`compare`)."""
    if op in ("ne", "not_in"):
        return not holds(v, "eq" if op == "ne" else "in", value)
    return {
        "eq": lambda: v == value,
        "lt": lambda: v < value,
        "lte": lambda: v <= value,
        "gt": lambda: v > value,
        "gte": lambda: v >= value,
        "in": lambda: v in value,
        "between": lambda: value[0] <= v <= value[1],
        "exists": lambda: bool(value),
    }[op]()


def counted(
    column: Any, op: str, value: Any, comp: Compiler, *, never_null: bool = False
) -> ColumnElement[bool]:
    """A count or sum from a LEFT JOINed aggregate (NULL: no row, i.e. 0). When 0 does not
    satisfy the test (``>= 2``) the NULL-rejecting form lets PostgreSQL turn the LEFT JOIN
    into an inner join (start from the few customers with orders); otherwise coalesce.
    ``never_null``: a correlated count or coalesced sum, compared as is."""
    if op == "exists":
        return true() if value else false()
    if never_null:
        return compare(column, op, value, comp, nullable=False)
    if holds(0, op, value):
        return compare(func.coalesce(column, 0), op, value, comp)
    return and_(column.is_not(None), compare(column, op, value, comp))


def substring(column: Any, value: str, dialect: str) -> ColumnElement[bool]:
    """Case-sensitive substring test on both databases (SQLite's LIKE ignores ASCII case)."""
    fn = func.strpos if dialect == "postgresql" else func.instr
    return fn(column, value) > 0


def bool_compare(expr: ColumnElement[bool], op: str, value: bool) -> ColumnElement[bool]:
    if op == "exists":
        return true() if value else false()
    return expr if (op == "eq") == bool(value) else not_(expr)


def days_since(ts: Any, op: str, value: Any, now: datetime) -> ColumnElement[bool]:
    """Whole days elapsed since ``ts`` (NULL: missing) compared with ``value``, as instant
    comparisons: ``days >= k`` is ``ts <= now - k days``."""
    if op == "exists":
        present = ts.is_not(None)
        return present if value else not_(present)
    if op in ("ne", "not_in"):
        return not_(days_since(ts, "eq" if op == "ne" else "in", value, now))

    def at(k: int) -> datetime:
        return now - timedelta(days=max(-DAYS_CLAMP, min(DAYS_CLAMP, k)))

    def ge(k: int) -> ColumnElement[bool]:
        return ts <= at(k)

    def lt(k: int) -> ColumnElement[bool]:
        return ts > at(k)

    def eq(k: int) -> ColumnElement[bool]:
        return and_(ge(k), lt(k + 1))

    test: ColumnElement[bool] = {
        "eq": lambda: eq(value),
        "lt": lambda: lt(value),
        "lte": lambda: lt(value + 1),
        "gt": lambda: ge(value + 1),
        "gte": lambda: ge(value),
        "between": lambda: and_(ge(value[0]), lt(value[1] + 1)),
        "in": lambda: or_(false(), *(eq(v) for v in value)),
    }[op]()
    return and_(ts.is_not(None), test)


def _json_parts(column: Any, key: str, dialect: str) -> Mapping[str, Any]:
    """A JSON attribute's type tests and typed values, per database."""
    if dialect == "postgresql":
        # coalesced: a missing key gives a false test, never NULL (``not`` must negate it)
        kind = func.coalesce(func.jsonb_typeof(column.op("->")(key)), "missing")
        text = column.op("->>")(key)
        return {
            "present": kind.not_in(("missing", "null")),
            "str": kind == "string",
            "num": kind == "number",
            "bool": kind == "boolean",
            "str_value": text,
            "num_value": case((kind == "number", cast(text, _float())), else_=None),
            "bool_value": text == "true",
        }
    path = f'$."{key}"'
    kind = func.coalesce(func.json_type(column, path), "missing")
    raw = func.json_extract(column, path)
    return {
        "present": kind.not_in(("missing", "null")),
        "str": kind == "text",
        "num": kind.in_(("integer", "real")),
        "bool": kind.in_(("true", "false")),
        "str_value": raw,
        "num_value": case((kind.in_(("integer", "real")), raw), else_=None),
        "bool_value": kind == "true",
    }


def _float() -> Any:
    from sqlalchemy import Float

    return Float()


def attribute(column: Any, key: str, op: str, value: Any, dialect: str) -> ColumnElement[bool]:
    """A customer attribute compared with ``value``; the value's JSON type decides (a string
    never equals a number); an attribute of another type is "missing" for the comparison."""
    from fidele.segments.domain import attr_kind

    parts = _json_parts(column, key, dialect)
    if op == "exists":
        return parts["present"] if value else not_(parts["present"])
    if op in ("ne", "not_in"):
        return not_(attribute(column, key, "eq" if op == "ne" else "in", value, dialect))
    kind = attr_kind(value)
    if kind == "bool":
        values = value if isinstance(value, list) else [value]
        hits = [parts["bool_value"] if v else not_(parts["bool_value"]) for v in set(values)]
        return and_(parts["bool"], or_(false(), *hits))
    typed: Col[Any] = parts["str_value"] if kind == "str" else parts["num_value"]
    if op == "contains":
        return and_(parts["str"], substring(typed, value, dialect))
    fake = Compiler(merchant_id=0, now=datetime.now(), dialect=dialect)
    return and_(parts[kind], compare(typed, op, value, fake))
