"""Batch replay of order logs: the same rules as the per-event path (:mod:`members`,
:mod:`earning`, :mod:`points`), simulated in memory per member and written table by table
(:mod:`bulk_store`: COPY on PostgreSQL). Used by :func:`replay.replay` when the log holds
orders (placed, delivered, cancelled, refunded), customers, actions and types no handler
claims, under one scale without budgets, bonuses on dates, inactivity or plans; anything else
takes the per-event path, and so does a log where a cancellation or refund takes back points
already released (:class:`Unbatchable`, raised before anything is written).
``tests/loyalty/test_bulk.py`` checks both paths give the same balances, lots, tiers, counters
and refusals. Run it with writes to the programme stopped: ids are assigned here.

The simulation works on plain columns (times in UTC microseconds, rows as list appends): only
what depends on a member's history (catch-up, tiers, which tier multiplies an order) runs per
order in Python; ledger entries and balances are derived from the postings with numpy."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidele.events.models import Event
from fidele.ledger.models import Account, Entry, Posting
from fidele.ledger.service import POINTS, account_key
from fidele.loyalty import domain
from fidele.loyalty.bulk_earning import Earnings, add_months, earnings, earnings_by_domain
from fidele.loyalty.bulk_store import EPOCH, US, Writer, customers, events, max_id
from fidele.loyalty.config import Action, Scale
from fidele.loyalty.models import (
    Consumption,
    Counter,
    CustomerLink,
    Lot,
    Member,
    Refusal,
    RuleVersion,
    TierChange,
)
from fidele.loyalty.points import shard_ref

# Inputs the batch path handles, and loyalty's own outputs (which replays ignore).
TYPES = ("order.placed", "customer.upserted", "loyalty.tier_changed", "loyalty.points_expiring")
# Also handled: deliveries, and cancellations and refunds of orders whose points are still
# pending (anything else: :class:`Unbatchable`), and actions (types no handler claims).
CLAWBACKS = ("order.cancelled", "order.refunded")
ORDER_EVENTS = ("order.delivered", *CLAWBACKS)
TABLES = (
    Account, Member, CustomerLink, Lot, Posting, Entry, Consumption, TierChange, Counter, Refusal,
)  # fmt: skip


class Unbatchable(Exception):
    """The log holds what the batch path does not simulate; raised before anything is
    written, so the per-event path can take over."""


DAY = 86_400 * US
NEVER = 2**63 - 1


def log_types(session: Session, programme_id: int) -> set[str]:
    stmt = select(Event.type).where(Event.programme_id == programme_id).distinct()
    return set(session.execute(stmt).scalars())


def is_action(type_: str) -> bool:
    """A type ``handlers.route`` gives to ``earning.on_action``."""
    from fidele.loyalty.handlers import IGNORED_PREFIXES, ROUTES

    return type_ not in ROUTES and not type_.startswith(IGNORED_PREFIXES)


def handled(type_: str) -> bool:
    """A type the batch path simulates, or one the per-event path ignores or treats as an
    action (no handler of its own)."""
    from fidele.loyalty.handlers import ROUTES

    return type_ in TYPES or type_ in ORDER_EVENTS or type_ not in ROUTES


def eligible(session: Session, programme_id: int, scale: Scale) -> bool:
    versions = session.execute(
        select(func.count()).where(RuleVersion.programme_id == programme_id)
    ).scalar_one()
    others = not all(handled(t) for t in log_types(session, programme_id))
    # Orders placed unpaid earn on their payment and tax-inclusive prices lose their tax: the
    # per-event path is the one proven on them (the keys are only in payloads that use them).
    unproven = session.execute(
        select(Event.id)
        .where(
            Event.programme_id == programme_id,
            Event.type == "order.placed",
            Event.payload["payment_status"].as_string().is_not(None)
            | Event.payload["prices_include_tax"].as_string().is_not(None),
        )
        .limit(1)
    ).first()
    simple = all(
        r.budget is None and r.type not in ("birthday", "anniversary") for r in scale.rules
    )
    return (
        versions <= 1
        and not others
        and unproven is None
        and simple
        and not scale.plans
        and scale.settings.inactivity_months is None
    )


def dt(us: int) -> Any:
    return EPOCH + timedelta(microseconds=us)


@dataclass(slots=True)
class SimMember:
    id: int
    created_us: int
    email: str | None
    accounts: tuple[int, int, int]  # available, pending, debt
    lots: list[int] = field(default_factory=list)  # lot indexes, in creation order
    pending: list[int] = field(default_factory=list)
    live: list[int] = field(default_factory=list)  # available, points left, an expiry date
    tier_rank: int = 0
    tier_since: int | None = None
    tier_review: int | None = None
    tier_grace: bool = False
    first_order: int | None = None
    last_activity: int | None = None
    lifetime_earned: int = 0
    orders: int = 0  # order lots
    due: int = 0  # nothing to release, expire or review before (a lower bound)


class Columns:
    """Rows of one table, appended as tuples; ``cols`` turns them into one list per column."""

    def __init__(self, *names: str) -> None:
        self.names = names
        self.rows: list[tuple[Any, ...]] = []
        self.add = self.rows.append

    @property
    def cols(self) -> dict[str, Any]:
        return _columns(self.names, self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def _columns(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    columns = list(zip(*rows, strict=True)) or [()] * len(names)
    return dict(zip(names, map(list, columns), strict=True))


class Lots:
    """The lots, one list per column (the catch-up reads them by index); ``remaining`` and
    ``available`` change as lots are released and expire."""

    __slots__ = (
        "merchant_id", "member_id", "order_id", "points", "earned", "available_at", "expires",
        "amount", "detail", "remaining", "available", "source", "reason", "clawed", "refunded",
    )  # fmt: skip

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, [])

    def __len__(self) -> int:
        return len(self.remaining)


class Sim:
    """The programme replayed in memory; each table's rows accumulate in columns."""

    def __init__(self, programme_id: int, scale: Scale, ids: dict[Any, int]) -> None:
        self.programme_id, self.scale, self.ids = programme_id, scale, ids
        self.members: dict[int, SimMember] = {}  # by customer id
        self.people: list[SimMember] = []  # in creation (id) order
        self.by_email: dict[str, SimMember] = {}
        self.links: list[tuple[int, int]] = []
        self.merchant_accounts: dict[tuple[int, str, str | None], int] = {}
        self.accounts = Columns("key", "merchant_id", "kind", "ref", "allow_negative", "created")
        self.lots = Lots()
        self.postings = Columns("source_key", "reason", "created", "debit", "credit", "amount")
        self.expiries = Columns("lot", "merchant_id", "source_key", "points", "created")
        self.tier_changes = Columns("member_id", "from_rank", "to_rank", "reason", "created")
        self.refusals = Columns("member_id", "rule_id", "source_key", "points", "reason", "created")
        self.counters: dict[str, int] = {}
        self.order_lots: dict[int, int] = {}  # order id -> its lot
        self.actions: dict[str, list[Action]] = {}
        for rule in scale.rules:
            if isinstance(rule, Action) and is_action(rule.event_type):
                self.actions.setdefault(rule.event_type, []).append(rule)
        s, tiers = scale.settings, scale.tiers
        self.levels = tiers.levels
        self.pending_us = s.pending_days * DAY
        self.rules_json: dict[str, str] = {}

    # -- accounts and postings
    def account(
        self, kind: str, now: int, merchant: int | None, ref: str | None, allow_negative: bool
    ) -> int:
        self.accounts.add(
            (
                account_key(self.programme_id, kind, POINTS, merchant, None, ref),
                merchant,
                kind,
                ref,
                allow_negative,
                now,
            )
        )
        return self.ids[Account] + len(self.accounts)

    def merchant(self, merchant_id: int, kind: str, now: int, member_id: int | None = None) -> int:
        ref = shard_ref(kind, member_id)
        key = (merchant_id, kind, ref)
        found = self.merchant_accounts.get(key)
        if found is None:
            found = self.merchant_accounts[key] = self.account(
                kind, now, merchant_id, ref, kind == "issued"
            )
        return found

    def move(self, source: str, reason: str, debit: int, credit: int, pts: int, now: int) -> None:
        if pts:
            self.postings.add((source, reason, now, debit, credit, pts))

    # -- members
    def member(self, customer_id: int, info: tuple[int, str | None, bool], now: int) -> SimMember:
        found = self.members.get(customer_id)
        if found is not None:
            return found
        _, email, _ = info
        m = self.by_email.get(email) if email else None
        if m is None:
            mid = self.ids[Member] + len(self.people) + 1
            accs = tuple(
                self.account(k, now, None, f"member:{mid}", k == "debt")
                for k in ("available", "pending", "debt")
            )
            m = SimMember(mid, now, email, accs)  # type: ignore[arg-type]
            self.people.append(m)
            if email:
                self.by_email[email] = m
        self.members[customer_id] = m
        self.links.append((customer_id, m.id))
        return m

    def catch_up(self, m: SimMember, now: int) -> None:
        """Releases, expiries and tier reviews due by ``now``, in the order of their dates
        (ties: release, expiry, review; then lot creation order), as ``members.catch_up``."""
        if m.due > now:
            return
        avail, expires = self.lots.available_at, self.lots.expires
        while True:
            best: tuple[int, int, int] | None = None
            for i in m.pending:
                if avail[i] <= now and (best is None or (avail[i], 0, i) < best):
                    best = (avail[i], 0, i)
            for i in m.live:
                if expires[i] <= now and (best is None or (expires[i], 1, i) < best):
                    best = (expires[i], 1, i)
            review = m.tier_review
            if review is not None and review <= now and self.levels:
                if best is None or (review, 3, 0) < best:
                    best = (review, 3, 0)
            if best is None:
                m.due = self._next_due(m)
                return
            at, kind, i = best
            if kind == 0:
                self._release(m, i, now)
            elif kind == 1:
                self._expire(m, i, at, now)
            else:
                self._review(m, at)

    def _next_due(self, m: SimMember) -> int:
        avail, expires = self.lots.available_at, self.lots.expires
        dates = [avail[i] for i in m.pending] + [expires[i] for i in m.live]
        if m.tier_review is not None and self.levels:
            dates.append(m.tier_review)
        return min(dates, default=NEVER)

    def _release(self, m: SimMember, i: int, now: int) -> None:
        accs, lots = m.accounts, self.lots
        key = f"{lots.source[i]}:release"
        self.move(key, "release", accs[1], accs[0], lots.remaining[i], now)
        lots.available[i] = True
        m.pending.remove(i)
        if lots.remaining[i] > 0 and lots.expires[i] is not None:
            m.live.append(i)

    def _expire(self, m: SimMember, i: int, at: int, now: int) -> None:
        pts, merchant = self.lots.remaining[i], self.lots.merchant_id[i]
        key = f"lot:{self.ids[Lot] + i + 1}:expire:{dt(at).isoformat()}:{pts}"
        self.move(key, "expire", m.accounts[0], self.merchant(merchant, "expired", now), pts, now)
        self.expiries.add((i, merchant, key, pts, now))
        self.lots.remaining[i] = 0
        m.live.remove(i)

    def _rank(self, m: SimMember, at: int) -> int:
        tiers = self.scale.tiers
        if tiers.window == "calendar_year":
            start = _us(domain.tier_window_start(tiers.window, dt(at)))
        else:
            start = at - 365 * DAY
        lots = self.lots
        earned, pts, amount = lots.earned, lots.points, lots.amount
        clawed, refunded, orders = lots.clawed, lots.refunded, lots.order_id
        inside = [i for i in m.lots if start < earned[i] <= at]
        metrics = {
            "points": sum([pts[i] - clawed[i] for i in inside]),
            "spent": sum([amount[i] - refunded[i] for i in inside]),
            "orders": sum([orders[i] is not None for i in inside]),
        }
        bp = tiers.seniority_bp_per_year
        years = 0
        if bp and m.first_order is not None:
            years = domain.full_years(dt(m.first_order), dt(at))
        return domain.tier_rank(self.levels, metrics, years, bp)

    def _review(self, m: SimMember, at: int) -> None:
        tiers = self.scale.tiers
        rank = self._rank(m, at)
        if rank >= m.tier_rank:
            m.tier_grace, m.tier_review = False, _add_months(at, tiers.review_months)
        elif not m.tier_grace and tiers.grace_days:
            m.tier_grace, m.tier_review = True, at + tiers.grace_days * DAY
        else:
            self._change(m, rank, "review: threshold not met", at)

    def _change(self, m: SimMember, rank: int, reason: str, at: int) -> None:
        self.tier_changes.add((m.id, m.tier_rank, rank, reason, at))
        m.tier_rank, m.tier_since, m.tier_grace = rank, at, False
        m.tier_review = _add_months(at, self.scale.tiers.review_months)
        m.due = min(m.due, m.tier_review)

    # -- orders
    def order(self, m: SimMember, ev: tuple[Any, ...], earned: Earnings, k: int) -> None:
        """An ``order.placed`` event: ``ev`` is (merchant, order, received, placed, total,
        expiry), ``k`` the order's row in ``earned``."""
        merchant, order_id, now, placed, _, expires = ev
        self.catch_up(m, now)
        levels = self.levels
        t = min(m.tier_rank, len(levels) - 1) if levels else 0
        pts, detail = earned.points[t][k], earned.detail[t][k]
        if not m.orders:
            pts, detail = pts + earned.bonus_points[k], detail + earned.bonus_detail[k]
        pts = max(pts, 0)
        i = self._lot(ev, m.id, pts, detail + "]")
        m.orders += 1
        self.order_lots[order_id] = i
        status = self.lots.available[i]
        issued = self.merchant(merchant, "issued", now, m.id)
        self.move(f"order:{order_id}", "order", issued, m.accounts[0 if status else 1], pts, now)
        m.lots.append(i)
        if not status:
            m.pending.append(i)
            m.due = min(m.due, self.lots.available_at[i])
        elif pts > 0 and expires is not None:
            m.live.append(i)
            m.due = min(m.due, expires)
        m.lifetime_earned += pts
        if m.first_order is None or placed < m.first_order:
            m.first_order = placed
        m.last_activity = now
        if levels:
            rank = self._rank(m, now)
            if rank >= m.tier_rank:
                m.tier_grace = False
            if rank > m.tier_rank:
                self._change(m, rank, "qualified", now)

    def _lot(self, ev: tuple[Any, ...], member_id: int, pts: int, detail: str) -> int:
        merchant, order_id, now, placed, total, expires = ev
        lots, available_at = self.lots, placed + self.pending_us
        lots.merchant_id.append(merchant)
        lots.member_id.append(member_id)
        lots.order_id.append(order_id)
        lots.points.append(pts)
        lots.earned.append(placed)
        lots.available_at.append(available_at)
        lots.expires.append(expires)
        lots.amount.append(total)
        lots.detail.append(detail)
        lots.remaining.append(pts)
        lots.available.append(available_at <= now)
        lots.source.append(f"order:{order_id}")
        lots.reason.append("order")
        lots.clawed.append(0)
        lots.refunded.append(0)
        return len(lots) - 1

    # -- what follows an order (``earning.on_order_*``)
    def order_lot(self, order_id: int | None, now: int) -> tuple[SimMember, int] | None:
        """The order's lot and its member, caught up to ``now`` (``earning._order_lot``)."""
        i = self.order_lots.get(order_id) if order_id is not None else None
        if i is None:
            return None
        m = self.people[self.lots.member_id[i] - self.ids[Member] - 1]
        self.catch_up(m, now)
        return m, i

    def delivered(self, order_id: int | None, occurred: int, now: int) -> None:
        found = self.order_lot(order_id, now)
        if found is None or self.lots.available[found[1]]:
            return
        m, i = found
        self.lots.available_at[i] = occurred + self.pending_us
        m.due = min(m.due, self.lots.available_at[i])

    def cancelled(self, order_id: int | None, event_id: int, now: int) -> None:
        found = self.order_lot(order_id, now)
        if found is not None:
            m, i = found
            lots = self.lots
            lots.refunded[i] = lots.amount[i]
            self.clawback(m, i, lots.points[i] - lots.clawed[i], f"cancel:{event_id}", now)

    def refunded(self, order_id: int | None, total: int, event_id: int, now: int) -> None:
        found = self.order_lot(order_id, now)
        if found is not None:
            m, i = found
            lots = self.lots
            target = domain.refund_clawback(lots.points[i], lots.amount[i], total)
            lots.refunded[i] = total
            self.clawback(m, i, target - lots.clawed[i], f"refund:{event_id}", now)

    def clawback(self, m: SimMember, i: int, pts: int, source: str, now: int) -> None:
        """``points.clawback`` of a lot still pending and holding ``pts``: back to the
        issuing merchant from the pending account."""
        if pts <= 0:
            return
        lots = self.lots
        if lots.available[i] or pts > lots.remaining[i]:
            raise Unbatchable(f"clawback of {lots.source[i]} once available")
        issued = self.merchant(lots.merchant_id[i], "issued", now, m.id)
        self.move(f"{source}:lot", "clawback", m.accounts[1], issued, pts, now)
        lots.remaining[i] -= pts
        lots.clawed[i] += pts
        m.lifetime_earned -= pts

    # -- actions (``earning.on_action``)
    def action(self, m: SimMember, rules: list[Action], ev: tuple[Any, ...]) -> None:
        merchant, event_id, now = ev
        self.catch_up(m, now)
        for rule in rules:
            self._action(m, rule, merchant, event_id, now)
        m.last_activity = now

    def _action(self, m: SimMember, rule: Action, merchant: int, event_id: int, now: int) -> None:
        source, at = f"event:{event_id}:{rule.id}", dt(now)
        caps = [
            (f"cap:{rule.id}:{domain.period_key('day', at)}:m{m.id}", rule.per_day),
            (f"cap:{rule.id}:{domain.period_key('month', at)}:m{m.id}", rule.per_month),
            (f"cap:{rule.id}:all:m{m.id}", rule.lifetime),
        ]
        if not self._bump_all([(k, cap) for k, cap in caps if cap is not None]):
            self.refusals.add((m.id, rule.id, source, rule.points, "cap reached", now))
            return
        months = self.scale.settings.expiry_months
        expires = _add_months(now, months) if months else None
        lots, pts = self.lots, rule.points
        for column, value in (
            (lots.merchant_id, merchant), (lots.member_id, m.id), (lots.order_id, None),
            (lots.points, pts), (lots.earned, now), (lots.available_at, now),
            (lots.expires, expires), (lots.amount, 0), (lots.detail, "[]"),
            (lots.remaining, pts), (lots.available, True), (lots.source, source),
            (lots.reason, rule.id), (lots.clawed, 0), (lots.refunded, 0),
        ):  # fmt: skip
            column.append(value)
        i = len(lots) - 1
        issued = self.merchant(merchant, "issued", now, m.id)
        self.move(source, rule.id, issued, m.accounts[0], pts, now)
        m.lots.append(i)
        if pts > 0 and expires is not None:
            m.live.append(i)
            m.due = min(m.due, expires)
        m.lifetime_earned += pts

    def _bump_all(self, caps: list[tuple[str, int]]) -> bool:
        """``earning._bump_all`` of one unit on each counter: all or none."""
        done = []
        for key, cap in caps:
            value = self.counters.setdefault(key, 0)
            if value + 1 > cap:
                for k in done:
                    self.counters[k] -= 1
                return False
            self.counters[key] = value + 1
            done.append(key)
        return True


def _us(at: Any) -> int:
    d = at - EPOCH
    return (d.days * 86_400 + d.seconds) * US + d.microseconds


def _add_months(us: int, months: int) -> int:
    return _us(domain.add_months(dt(us), months))


Progress = Callable[[int], None]


def replay_orders(
    session: Session,
    programme_id: int,
    scale: Scale,
    now: Any,
    *,
    batch: int = 200_000,
    progress: Progress | None = None,
) -> int:
    """Replay an order-only log in memory, then write every table in bulk."""
    with _no_gc():
        return _replay_orders(session, programme_id, scale, now, batch, progress)


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic collector off: the simulation holds millions of rows (tuples, lists) that
    live until the write, and every full collection would walk them all again (~10 s of 1M
    orders). They hold no cycles; what does is collected when it is back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _replay_orders(
    session: Session,
    programme_id: int,
    scale: Scale,
    now: Any,
    batch: int,
    progress: Progress | None,
) -> int:
    sim = Sim(programme_id, scale, {m: max_id(session, m) for m in TABLES if m is not CustomerLink})
    known = customers(session, programme_id)
    out = Writer(session)
    # A log with clawbacks may turn out :class:`Unbatchable` mid-way: then nothing may have
    # been written (no postings streamed, no index dropped) before the simulation ends.
    streaming = not set(CLAWBACKS) & log_types(session, programme_id)
    if streaming:
        out.defer_indexes([m.__table__.name for m in TABLES])
    count = 0
    with _Ledger(out, sim) as ledger:
        for frame, lines in events(session, programme_id, batch):  # read whole on PostgreSQL
            _batch(sim, known, frame, lines)
            ledger.send()
            count += frame.height
            if progress:
                progress(frame.height)
        end = _us(now)
        for m in sim.members.values():
            sim.catch_up(m, end)
        ledger.send()
        if not streaming:
            out.defer_indexes([m.__table__.name for m in TABLES])
        tables = _tables(sim, ledger.sent)  # built while the last postings are written
    _write(out, tables)
    return count


class _Ledger:
    """Postings and their entries, written while the simulation goes on: they are final as
    soon as they are made (only lots and balances wait for the end). After each batch the new
    rows go to one thread, which turns them into columns, formats and COPYs them on the
    session's connection (idle meanwhile: the log is read before the first batch); the server
    works and polars formats while Python simulates. Only into tables emptied by the wipe,
    whose foreign keys wait for the end (entries refer to accounts, written last); otherwise,
    and on SQLite, they are written at the end with the rest."""

    def __init__(self, out: Writer, sim: Sim) -> None:
        self.out, self.sim, self.sent = out, sim, 0
        names = {Posting.__tablename__, Entry.__tablename__}
        self.pool = ThreadPoolExecutor(1, "ledger-copy") if names <= out.emptied else None
        self.jobs: list[Future[None]] = []

    def __enter__(self) -> _Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is None:
            return
        if exc[0] is None:
            self.send()
        self.pool.shutdown(wait=True, cancel_futures=exc[0] is not None)
        if exc[0] is None:
            for job in self.jobs:
                job.result()  # a failed COPY fails the replay

    def send(self) -> None:
        if self.pool is None or self.sent == len(self.sim.postings):
            return
        rows, start = self.sim.postings.rows[self.sent :], self.sent
        self.sent = len(self.sim.postings)
        self.jobs.append(self.pool.submit(self._copy, rows, start))

    def _copy(self, rows: list[tuple[Any, ...]], start: int) -> None:
        postings, entries = _ledger(self.sim, _columns(self.sim.postings.names, rows), start)
        self.out.load(Posting.__table__, postings)
        self.out.load_ints(Entry.__table__, entries)


def _batch(sim: Sim, known: dict[int, Any], frame: pl.DataFrame, lines: pl.DataFrame) -> None:
    orders = frame.filter(pl.col("type") == "order.placed").with_row_index("idx")
    lines = lines.join(orders.select("id", pl.col("idx").cast(pl.Int64)), on="id")
    orders = orders.with_columns(pl.col("idx").cast(pl.Int64))
    earned = earnings(sim.scale, orders, lines) or earnings_by_domain(sim.scale, orders, lines)
    months = sim.scale.settings.expiry_months
    expiry = add_months(pl.col("placed_us"), months) if months else pl.lit(None, pl.Int64)
    cols = frame.select(
        "type", "customer_id", "merchant_id", "order_id", "received_us", "placed_us", "total",
        expiry.alias("expires"), "id", "occurred_us", "refunded_total",
    )  # fmt: skip
    k = -1
    for type_, customer, *ev, event_id, occurred, refunded in cols.iter_rows():
        if type_ == "order.placed":
            k += 1
        elif type_ in ORDER_EVENTS:
            _after_order(sim, type_, ev[1], event_id, occurred, refunded, ev[2])
            continue
        elif type_ in sim.actions:
            rules = [r for r in sim.actions[type_] if r.live(dt(ev[2]))]
            info = known.get(customer or 0)
            if rules and info is not None:
                m = sim.member(customer, info, ev[2])
                sim.action(m, rules, (ev[0], event_id, ev[2]))
            continue
        info = known.get(customer or 0)
        if info is None:
            continue
        if type_ == "order.placed" and ev[1]:
            sim.order(sim.member(customer, info, ev[2]), ev, earned, k)  # type: ignore[arg-type]
        elif type_ == "customer.upserted" and not info[2]:
            sim.member(customer, info, ev[2])


def _after_order(
    sim: Sim, type_: str, order: int | None, event: int, occurred: int, refunded: int, now: int
) -> None:
    if type_ == "order.delivered":
        sim.delivered(order, occurred, now)
    elif type_ == "order.cancelled":
        sim.cancelled(order, event, now)
    else:
        sim.refunded(order, refunded or 0, event, now)


def _times(values: list[int | None]) -> pl.Series:
    return pl.Series(values, dtype=pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _ids(base: int, n: int) -> np.ndarray:
    return np.arange(base + 1, base + n + 1, dtype=np.int64)


Tables = list[tuple[Any, pl.DataFrame | dict[str, Any]]]


def _tables(sim: Sim, sent: int) -> Tables:
    """Every table's rows but the postings and entries ``_Ledger`` wrote (the first ``sent``);
    entries last, as integer columns (:meth:`Writer.load_ints`)."""
    postings = sim.postings.cols
    ledger = _ledger(sim, _columns(sim.postings.names, sim.postings.rows[sent:]), sent)
    links = {"customer_id": [c for c, _ in sim.links], "member_id": [m for _, m in sim.links]}
    tables: Tables = [
        (Account, _accounts(sim, postings)),
        (Member, _members(sim)),
        (CustomerLink, links),
        (Lot, _lots(sim)),
        (Posting, ledger[0]),
        (Consumption, _expiries(sim)),
        (TierChange, _tier_changes(sim)),
        (Counter, _counters(sim)),
        (Refusal, _refusals(sim)),
    ]
    tables = [(model, pl.DataFrame(columns)) for model, columns in tables]
    return [*tables, (Entry, ledger[1])]


def _write(out: Writer, tables: Tables) -> None:
    *frames, (_, entries) = tables
    for model, frame in frames:
        out.load(model.__table__, frame)
    out.load_ints(Entry.__table__, entries)
    out.finish([m.__table__.name for m in TABLES if m is not CustomerLink])


def _const(value: Any, n: int) -> pl.Series:
    return pl.repeat(value, n, eager=True)


def _accounts(sim: Sim, p: dict[str, Any]) -> dict[str, Any]:
    c = sim.accounts.cols
    n, base = len(sim.accounts), sim.ids[Account]
    amounts = np.asarray(p["amount"], dtype=np.int64)
    balance = np.zeros(n, dtype=np.int64)
    np.add.at(balance, np.asarray(p["credit"], dtype=np.int64) - base - 1, amounts)
    np.subtract.at(balance, np.asarray(p["debit"], dtype=np.int64) - base - 1, amounts)
    return {
        "id": _ids(base, n),
        "key": c["key"],
        "programme_id": _const(sim.programme_id, n),
        "merchant_id": pl.Series(c["merchant_id"], dtype=pl.Int64),
        "kind": c["kind"],
        "unit": _const(POINTS, n),
        "ref": pl.Series(c["ref"], dtype=pl.String),
        "balance": balance,
        "allow_negative": c["allow_negative"],
        "created_at": _times(c["created"]),
    }


def _members(sim: Sim) -> dict[str, Any]:
    people, n = sim.people, len(sim.people)
    return {
        "id": [m.id for m in people],
        "programme_id": _const(sim.programme_id, n),
        "email_normalized": pl.Series([m.email for m in people], dtype=pl.String),
        "available_account_id": [m.accounts[0] for m in people],
        "pending_account_id": [m.accounts[1] for m in people],
        "debt_account_id": [m.accounts[2] for m in people],
        "tier_rank": [m.tier_rank for m in people],
        "tier_since": _times([m.tier_since for m in people]),
        "tier_review_at": _times([m.tier_review for m in people]),
        "tier_grace": [m.tier_grace for m in people],
        "first_order_at": _times([m.first_order for m in people]),
        "last_activity_at": _times([m.last_activity for m in people]),
        "lifetime_earned": [m.lifetime_earned for m in people],
        "lifetime_spent": _const(0, n),
        "created_at": _times([m.created_us for m in people]),
    }


def _lots(sim: Sim) -> dict[str, Any]:
    c, n = sim.lots, len(sim.lots)
    return {
        "id": _ids(sim.ids[Lot], n),
        "programme_id": _const(sim.programme_id, n),
        "merchant_id": c.merchant_id,
        "member_id": c.member_id,
        "source_key": pl.Series(c.source, dtype=pl.String),
        "reason": pl.Series(c.reason, dtype=pl.String),
        "points": c.points,
        "remaining": c.remaining,
        "clawed": pl.Series(c.clawed, dtype=pl.Int64),
        "status": pl.Series(c.available, dtype=pl.Boolean).replace_strict(
            {True: "available", False: "pending"}, return_dtype=pl.String
        ),
        "earned_at": _times(c.earned),
        "available_at": _times(c.available_at),
        "expires_at": _times(c.expires),
        "order_id": pl.Series(c.order_id, dtype=pl.Int64),
        "order_amount": c.amount,
        "refunded_amount": pl.Series(c.refunded, dtype=pl.Int64),
        "detail": c.detail,
    }


def _ledger(sim: Sim, c: dict[str, Any], start: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Postings from the ``start``-th on, and their entries: the debit leg then the credit leg
    of each."""
    n = len(c["amount"])
    ids = _ids(sim.ids[Posting] + start, n)
    amounts = np.asarray(c["amount"], dtype=np.int64)
    accounts = np.empty(2 * n, dtype=np.int64)
    accounts[0::2], accounts[1::2] = c["debit"], c["credit"]
    legs = np.empty(2 * n, dtype=np.int64)
    legs[0::2], legs[1::2] = -amounts, amounts
    postings = {
        "id": ids,
        "programme_id": _const(sim.programme_id, n),
        "source_key": c["source_key"],
        "reason": c["reason"],
        "unit": _const(POINTS, n),
        "created_at": _times(c["created"]),
        "meta": _const("{}", n),
    }
    entries = {
        "id": _ids(sim.ids[Entry] + 2 * start, 2 * n),
        "posting_id": np.repeat(ids, 2),
        "account_id": accounts,
        "amount": legs,
    }
    return postings, entries


def _expiries(sim: Sim) -> dict[str, Any]:
    c, n = sim.expiries.cols, len(sim.expiries)
    return {
        "id": _ids(sim.ids[Consumption], n),
        "programme_id": _const(sim.programme_id, n),
        "lot_id": np.asarray(c["lot"], dtype=np.int64) + sim.ids[Lot] + 1,
        "merchant_id": c["merchant_id"],
        "source_key": c["source_key"],
        "kind": _const("expire", n),
        "points": c["points"],
        "restored": _const(False, n),
        "created_at": _times(c["created"]),
    }


def _tier_changes(sim: Sim) -> dict[str, Any]:
    c, n = sim.tier_changes.cols, len(sim.tier_changes)
    return {
        "id": _ids(sim.ids[TierChange], n),
        "member_id": c["member_id"],
        "from_rank": c["from_rank"],
        "to_rank": c["to_rank"],
        "reason": c["reason"],
        "created_at": _times(c["created"]),
    }


def _counters(sim: Sim) -> dict[str, Any]:
    n = len(sim.counters)
    return {
        "id": _ids(sim.ids[Counter], n),
        "programme_id": _const(sim.programme_id, n),
        "key": pl.Series(list(sim.counters), dtype=pl.String),
        "value": pl.Series(list(sim.counters.values()), dtype=pl.Int64),
    }


def _refusals(sim: Sim) -> dict[str, Any]:
    c, n = sim.refusals.cols, len(sim.refusals)
    return {
        "id": _ids(sim.ids[Refusal], n),
        "programme_id": _const(sim.programme_id, n),
        "member_id": pl.Series(c["member_id"], dtype=pl.Int64),
        "rule_id": pl.Series(c["rule_id"], dtype=pl.String),
        "source_key": pl.Series(c["source_key"], dtype=pl.String),
        "points": pl.Series(c["points"], dtype=pl.Int64),
        "reason": pl.Series(c["reason"], dtype=pl.String),
        "created_at": _times(c["created"]),
    }
