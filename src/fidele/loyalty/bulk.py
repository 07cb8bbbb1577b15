"""Batch replay of order-only logs: the same rules as the per-event path (:mod:`members`,
:mod:`earning`, :mod:`points`), simulated in memory per member and written with bulk inserts
(COPY on PostgreSQL). Used by :func:`replay.replay` when the log holds only ``order.placed``
and ``customer.upserted`` events and one scale without budgets, bonuses on dates, inactivity
or plans; anything else takes the per-event path. ``tests/loyalty/test_bulk.py`` checks both
paths give the same balances, lots and tiers. Run it with writes to the programme stopped:
ids are assigned here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.events.models import Event
from fidele.ledger.models import Account, Entry, Posting
from fidele.ledger.service import POINTS, account_key
from fidele.loyalty import domain
from fidele.loyalty.config import Scale
from fidele.loyalty.earning import facts_of
from fidele.loyalty.models import Consumption, CustomerLink, Lot, Member, RuleVersion, TierChange
from fidele.loyalty.points import shard_ref

# Inputs the batch path handles, and loyalty's own outputs (which replays ignore).
TYPES = ("order.placed", "customer.upserted", "loyalty.tier_changed", "loyalty.points_expiring")


def eligible(session: Session, programme_id: int, scale: Scale) -> bool:
    versions = session.execute(
        select(func.count()).where(RuleVersion.programme_id == programme_id)
    ).scalar_one()
    others = session.execute(
        select(Event.id)
        .where(Event.programme_id == programme_id, Event.type.not_in(TYPES))
        .limit(1)
    ).first()
    simple = all(
        r.budget is None and r.type not in ("birthday", "anniversary") for r in scale.rules
    )
    return (
        versions <= 1
        and others is None
        and simple
        and not scale.plans
        and scale.settings.inactivity_months is None
    )


@dataclass
class SimLot:
    id: int
    merchant_id: int
    source_key: str
    points: int
    remaining: int
    status: str
    earned_at: datetime
    available_at: datetime
    expires_at: datetime | None
    order_id: int
    order_amount: int
    detail: list[dict[str, Any]]


@dataclass
class SimMember:
    id: int
    merchant_id: int
    created_at: datetime
    lots: list[SimLot] = field(default_factory=list)
    tier_rank: int = 0
    tier_since: datetime | None = None
    tier_review_at: datetime | None = None
    tier_grace: bool = False
    first_order_at: datetime | None = None
    last_activity_at: datetime | None = None
    lifetime_earned: int = 0


class Sim:
    """The programme replayed in memory; rows to write accumulate in ``out``."""

    def __init__(self, session: Session, programme_id: int, scale: Scale) -> None:
        self.session, self.programme_id, self.scale = session, programme_id, scale
        self.members: dict[int, SimMember] = {}  # by customer id
        self.ids = {
            m: _max_id(session, m)
            for m in (Member, Lot, Posting, Entry, Account, Consumption, TierChange)
        }
        self.out: dict[Any, list[dict[str, Any]]] = {}
        self.merchant_accounts: dict[tuple[int, str, str | None], int] = {}
        self.balances: dict[int, int] = {}
        self.member_accounts: dict[int, dict[str, int]] = {}

    def next_id(self, model: Any) -> int:
        self.ids[model] += 1
        return self.ids[model]

    def row(self, model: Any, **values: Any) -> None:
        self.out.setdefault(model, []).append(values)

    # -- accounts and postings
    def account(
        self,
        kind: str,
        now: datetime,
        merchant_id: int | None = None,
        member_id: int | None = None,
        allow_negative: bool = False,
        ref: str | None = None,
    ) -> int:
        acc_id = self.next_id(Account)
        ref = f"member:{member_id}" if member_id else ref
        self.row(
            Account,
            id=acc_id,
            key=account_key(self.programme_id, kind, POINTS, merchant_id, None, ref),
            programme_id=self.programme_id,
            merchant_id=merchant_id,
            customer_id=None,
            kind=kind,
            unit=POINTS,
            ref=ref,
            balance=0,
            allow_negative=allow_negative,
            created_at=now,
        )
        self.balances[acc_id] = 0
        return acc_id

    def merchant(
        self, merchant_id: int, kind: str, now: datetime, member_id: int | None = None
    ) -> int:
        ref = shard_ref(kind, member_id)
        key = (merchant_id, kind, ref)
        if key not in self.merchant_accounts:
            self.merchant_accounts[key] = self.account(
                kind, now, merchant_id=merchant_id, allow_negative=kind == "issued", ref=ref
            )
        return self.merchant_accounts[key]

    def move(
        self, source: str, reason: str, debit: int, credit: int, pts: int, now: datetime
    ) -> None:
        if pts == 0:
            return
        pid = self.next_id(Posting)
        self.row(
            Posting,
            id=pid,
            programme_id=self.programme_id,
            source_key=source,
            reason=reason,
            unit=POINTS,
            created_at=now,
            meta={},
        )
        for acc, amount in ((debit, -pts), (credit, pts)):
            self.row(Entry, id=self.next_id(Entry), posting_id=pid, account_id=acc, amount=amount)
            self.balances[acc] += amount

    # -- members
    def member(self, customer: Customer, now: datetime) -> SimMember:
        found = self.members.get(customer.id)
        if found is not None:
            return found
        m = SimMember(self.next_id(Member), customer.merchant_id, now)
        self.members[customer.id] = m
        self.member_accounts[m.id] = {
            k: self.account(k, now, member_id=m.id, allow_negative=k == "debt")
            for k in ("available", "pending", "debt")
        }
        self.row(CustomerLink, customer_id=customer.id, member_id=m.id)
        return m

    def catch_up(self, m: SimMember, now: datetime) -> None:
        while True:
            items = self._due(m, now)
            if not items:
                return
            at, order, lot = min(items, key=lambda i: (i[0], i[1]))
            if order == 0:
                self._release(m, lot, now)
            elif order == 1:
                self._expire(m, lot, at, now)
            else:
                self._review(m, at)

    def _due(self, m: SimMember, now: datetime) -> list[tuple[datetime, int, Any]]:
        items: list[tuple[datetime, int, Any]] = []
        for lot in m.lots:
            if lot.status == "pending" and lot.available_at <= now:
                items.append((lot.available_at, 0, lot))
            elif (
                lot.status == "available"
                and lot.remaining > 0
                and lot.expires_at
                and lot.expires_at <= now
            ):
                items.append((lot.expires_at, 1, lot))
        if m.tier_review_at is not None and m.tier_review_at <= now and self.scale.tiers.levels:
            items.append((m.tier_review_at, 3, None))
        return items

    def _release(self, m: SimMember, lot: SimLot, now: datetime) -> None:
        accs = self.member_accounts[m.id]
        self.move(
            f"{lot.source_key}:release",
            "release",
            accs["pending"],
            accs["available"],
            lot.remaining,
            now,
        )
        lot.status = "available"

    def _expire(self, m: SimMember, lot: SimLot, at: datetime, now: datetime) -> None:
        key = f"lot:{lot.id}:expire:{at.isoformat()}:{lot.remaining}"
        self.move(
            key,
            "expire",
            self.member_accounts[m.id]["available"],
            self.merchant(lot.merchant_id, "expired", now),
            lot.remaining,
            now,
        )
        self.row(
            Consumption,
            id=self.next_id(Consumption),
            programme_id=self.programme_id,
            lot_id=lot.id,
            merchant_id=lot.merchant_id,
            source_key=key,
            kind="expire",
            points=lot.remaining,
            restored=False,
            created_at=now,
        )
        lot.remaining = 0

    def _rank(self, m: SimMember, at: datetime) -> int:
        start = domain.tier_window_start(self.scale.tiers.window, at)
        metrics = {"points": 0, "spent": 0, "orders": 0}
        for lot in m.lots:
            if start < lot.earned_at <= at:
                metrics["points"] += lot.points
                metrics["spent"] += lot.order_amount
                metrics["orders"] += 1
        years = domain.full_years(m.first_order_at, at)
        return domain.tier_rank(
            self.scale.tiers.levels, metrics, years, self.scale.tiers.seniority_bp_per_year
        )

    def _review(self, m: SimMember, at: datetime) -> None:
        tiers = self.scale.tiers
        rank = self._rank(m, at)
        if rank >= m.tier_rank:
            m.tier_grace, m.tier_review_at = False, domain.add_months(at, tiers.review_months)
        elif not m.tier_grace and tiers.grace_days:
            m.tier_grace, m.tier_review_at = True, at + timedelta(days=tiers.grace_days)
        else:
            self._change(m, rank, "review: threshold not met", at)

    def _change(self, m: SimMember, rank: int, reason: str, at: datetime) -> None:
        self.row(
            TierChange,
            id=self.next_id(TierChange),
            member_id=m.id,
            from_rank=m.tier_rank,
            to_rank=rank,
            reason=reason,
            created_at=at,
        )
        m.tier_rank, m.tier_since, m.tier_grace = rank, at, False
        m.tier_review_at = domain.add_months(at, self.scale.tiers.review_months)

    # -- orders
    def order(self, event: Any, customer: Customer, now: datetime) -> None:
        m = self.member(customer, now)
        self.catch_up(m, now)
        s = self.scale.settings
        facts = facts_of(event.payload)
        levels = self.scale.tiers.levels
        ctx = domain.Context(
            first_order=not m.lots,
            tier=levels[min(m.tier_rank, len(levels) - 1)] if levels else None,
        )
        awards = domain.order_points(self.scale, facts, ctx).awards
        pts = max(sum(p for _, p in awards), 0)
        available_at = facts.placed_at + timedelta(days=s.pending_days)
        lot = SimLot(
            self.next_id(Lot),
            event.merchant_id,
            f"order:{event.order_id}",
            pts,
            pts,
            "pending" if available_at > now else "available",
            facts.placed_at,
            available_at,
            domain.add_months(facts.placed_at, s.expiry_months) if s.expiry_months else None,
            event.order_id or 0,
            facts.total,
            [{"rule": r, "points": p} for r, p in awards],
        )
        self.move(
            lot.source_key,
            "order",
            self.merchant(event.merchant_id, "issued", now, m.id),
            self.member_accounts[m.id][lot.status],
            pts,
            now,
        )
        m.lots.append(lot)
        m.lifetime_earned += pts
        if m.first_order_at is None or facts.placed_at < m.first_order_at:
            m.first_order_at = facts.placed_at
        m.last_activity_at = now
        if levels:
            rank = self._rank(m, now)
            if rank >= m.tier_rank:
                m.tier_grace = False
            if rank > m.tier_rank:
                self._change(m, rank, "qualified", now)


def _max_id(session: Session, model: Any) -> int:
    return int(session.execute(select(func.coalesce(func.max(model.id), 0))).scalar_one())


_EVENT_COLUMNS = (
    Event.id,
    Event.type,
    Event.merchant_id,
    Event.customer_id,
    Event.order_id,
    Event.received_at,
    Event.payload,
)


def replay_orders(
    session: Session, programme_id: int, scale: Scale, now: datetime, *, batch: int = 20_000
) -> int:
    """Replay an order-only log in memory, then write every row in bulk."""
    sim = Sim(session, programme_id, scale)
    customers: dict[int, Customer] = {
        c.id: c
        for c in session.execute(
            select(Customer).where(Customer.programme_id == programme_id)
        ).scalars()
    }
    count, last = 0, 0
    while True:
        rows = session.execute(  # plain rows, not ORM objects: a million of them
            select(*_EVENT_COLUMNS)
            .where(Event.programme_id == programme_id, Event.id > last)
            .order_by(Event.id)
            .limit(batch)
        ).all()
        if not rows:
            break
        for event in rows:
            customer = customers.get(event.customer_id or 0)
            if customer is not None and event.type == "order.placed" and event.order_id:
                sim.order(event, customer, event.received_at)
            elif (
                customer is not None
                and event.type == "customer.upserted"
                and customer.erased_at is None
            ):
                sim.member(customer, event.received_at)
            count += 1
        last = rows[-1].id
    for m in sim.members.values():
        sim.catch_up(m, now)
    _write(sim)
    return count


def _write(sim: Sim) -> None:
    for m in sim.members.values():
        accs = sim.member_accounts[m.id]
        sim.row(
            Member,
            id=m.id,
            programme_id=sim.programme_id,
            email_normalized=None,
            available_account_id=accs["available"],
            pending_account_id=accs["pending"],
            debt_account_id=accs["debt"],
            tier_rank=m.tier_rank,
            tier_since=m.tier_since,
            tier_review_at=m.tier_review_at,
            tier_grace=m.tier_grace,
            first_order_at=m.first_order_at,
            last_activity_at=m.last_activity_at,
            lifetime_earned=m.lifetime_earned,
            lifetime_spent=0,
            created_at=m.created_at,
        )
        for lot in m.lots:
            sim.row(
                Lot,
                id=lot.id,
                programme_id=sim.programme_id,
                merchant_id=lot.merchant_id,
                member_id=m.id,
                source_key=lot.source_key,
                reason="order",
                points=lot.points,
                remaining=lot.remaining,
                clawed=0,
                status=lot.status,
                earned_at=lot.earned_at,
                available_at=lot.available_at,
                expires_at=lot.expires_at,
                order_id=lot.order_id,
                order_amount=lot.order_amount,
                refunded_amount=0,
                detail=lot.detail,
            )
    for row in sim.out.get(Account, []):
        row["balance"] = sim.balances[row["id"]]
    order = (Account, Member, CustomerLink, Lot, Posting, Entry, Consumption, TierChange)
    for model in order:
        _insert(sim.session, model, sim.out.get(model, []))
    for model in order:
        if model is not CustomerLink:
            _resync(sim.session, model.__table__.name)


def _insert(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(model), rows)
        return
    cols = list(rows[0])
    json_cols = {c for c in cols if isinstance(rows[0][c], dict | list)}
    raw = session.connection().connection.driver_connection
    sql = f"COPY {model.__table__.name} ({', '.join(cols)}) FROM STDIN"
    with raw.cursor() as cur, cur.copy(sql) as copy:
        for row in rows:
            copy.write_row([json.dumps(row[c]) if c in json_cols else row[c] for c in cols])


def _resync(session: Session, table: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(max(id), 0) + 1 FROM {table}), false)"
            )
        )
