"""Evaluating rules, and the merchant's saved segments.

``customer_matches``, ``count`` and ``customer_ids`` are the functions other domains call
(flows' condition steps and trigger filters): each runs ONE SQL query built by
``segments.compiler``. Services never commit: the request, job or command owns the
transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.orm import Session

from fidele.errors import NotFound, StateConflict
from fidele.segments import domain
from fidele.segments.compiler import Compiler
from fidele.segments.domain import Rule
from fidele.segments.models import Segment
from fidele.segments.repository import FactsRepository, SegmentRepository


def refresh_order_facts(session: Session, customer_ids: Sequence[int]) -> None:
    """Recompute these customers' order facts (``customer_order_facts``) from their orders:
    every path that writes orders calls it in its transaction (the order events' handler,
    the bulk import). Idempotent."""
    FactsRepository(session).refresh(customer_ids)


def count_new_order(session: Session, order: Any) -> None:
    """A new order (just placed, recorded once) counted into its customer's facts: one
    statement on the hot path of ``POST /v1/orders``."""
    FactsRepository(session).add_order(order)


def rebuild_order_facts(session: Session, merchant_id: int) -> None:
    """Recompute the order facts of every customer of a merchant (a bulk build)."""
    FactsRepository(session).rebuild(merchant_id)


def _tiers(session: Session, merchant_id: int, rule: Rule) -> list[str]:
    if not any(c.field.name == "loyalty.tier" for c in domain.conditions(rule)):
        return []
    from fidele.loyalty import members

    programme_id = SegmentRepository(session).programme_of(merchant_id)
    if programme_id is None:
        return []
    return [t.name for t in members.scale_at(session, programme_id).tiers.levels]


def _flows(session: Session, merchant_id: int, rule: Rule) -> dict[str, list[int]]:
    """The merchant's flows each ``messages.<flow>.*`` field names (by id, by name, or by the
    ready-made journey installed); an unknown one is refused naming its path."""
    keys = {c.field.flow: c for c in domain.conditions(rule) if c.field.source == "messages"}
    found = SegmentRepository(session).flow_ids(merchant_id, [k for k in keys if k])
    for key, cond in keys.items():
        if not found.get(key or ""):
            raise domain.RuleError(f"{cond.path}.field", f"unknown flow {key!r}")
    return found


def compiler(
    session: Session, merchant_id: int, rule: Rule, now: datetime, restrict: Any = None
) -> Compiler:
    return Compiler(
        merchant_id=merchant_id,
        now=now,
        dialect=session.get_bind().dialect.name,
        tiers=_tiers(session, merchant_id, rule),
        flows=_flows(session, merchant_id, rule),
        restrict=restrict,
    )


def _parsed(rule: Mapping[str, Any] | Rule) -> Rule:
    if isinstance(rule, Mapping):
        return domain.parse_rule(rule)
    return rule


def customer_matches(
    session: Session, *, merchant_id: int, customer_id: int, rule: Mapping[str, Any], now: datetime
) -> bool:
    """Whether the merchant's customer ``customer_id`` matches ``rule`` now (a customer of
    another merchant never does)."""
    parsed = _parsed(rule)
    comp = compiler(session, merchant_id, parsed, now, restrict=lambda col: col == customer_id)
    stmt = comp.query(parsed).limit(1)
    return bool(SegmentRepository(session).ids(stmt))


def count(session: Session, *, merchant_id: int, rule: Mapping[str, Any], now: datetime) -> int:
    """How many of the merchant's customers match ``rule`` now."""
    parsed = _parsed(rule)
    comp = compiler(session, merchant_id, parsed, now)
    stmt = comp.query(parsed, columns=[func.count()])
    return int(SegmentRepository(session).scalar(stmt))


def customer_ids(
    session: Session,
    *,
    merchant_id: int,
    rule: Mapping[str, Any],
    now: datetime,
    after_id: int = 0,
    limit: int = 1000,
) -> list[int]:
    """The matching customers' ids in ascending order, ``limit`` after ``after_id``."""
    parsed = _parsed(rule)
    comp = compiler(session, merchant_id, parsed, now)
    from fidele.customers.models import Customer

    stmt = comp.query(parsed).where(Customer.id > after_id).order_by(Customer.id).limit(limit)
    return SegmentRepository(session).ids(stmt)


def matching_among(
    session: Session, *, merchant_id: int, rule: Rule, now: datetime, ids: Sequence[int]
) -> set[int]:
    """Which of ``ids`` match (one query, the restriction pushed into every aggregate)."""
    if not ids:
        return set()
    comp = compiler(session, merchant_id, rule, now, restrict=lambda col: col.in_(list(ids)))
    return set(SegmentRepository(session).ids(comp.query(rule)))


# -- saved segments ----------------------------------------------------------------------------


def get(session: Session, merchant_id: int, segment_id: int) -> Segment:
    found = SegmentRepository(session).find(merchant_id, segment_id)
    if found is None:
        raise NotFound(f"segment {segment_id} not found")
    return found


def listing(session: Session, merchant_id: int, *, after_id: int, limit: int) -> Sequence[Segment]:
    return SegmentRepository(session).listing(merchant_id, after_id, limit)


def _check_name(session: Session, merchant_id: int, name: str, own_id: int | None) -> None:
    other = SegmentRepository(session).by_name(merchant_id, name)
    if other is not None and other.id != own_id:
        raise StateConflict(f"a segment named {name!r} exists (id {other.id})", field="name")


def _validated(session: Session, merchant_id: int, rule: Any, now: datetime) -> Rule:
    parsed = domain.parse_rule(rule)
    compiler(session, merchant_id, parsed, now).query(parsed)  # tier names are checked here
    return parsed


def create(
    session: Session,
    merchant_id: int,
    *,
    name: str,
    rule: Mapping[str, Any],
    now: datetime,
    builtin: bool = False,
) -> Segment:
    """Save a segment and compute its members (``segment.entered`` for each: a new segment is
    entered by the customers it finds)."""
    parsed = _validated(session, merchant_id, rule, now)
    _check_name(session, merchant_id, name, None)
    segment = Segment(
        merchant_id=merchant_id,
        name=name,
        rule=dict(rule),
        builtin=builtin,
        depends=",".join(sorted(domain.depends_on(parsed))),
        created_at=now,
        updated_at=now,
    )
    SegmentRepository(session).add(segment)
    from fidele.segments import membership

    membership.recompute(session, segment, now)
    return segment


def update(
    session: Session,
    merchant_id: int,
    segment_id: int,
    *,
    name: str,
    rule: Mapping[str, Any],
    now: datetime,
) -> Segment:
    segment = get(session, merchant_id, segment_id)
    if segment.builtin:
        raise StateConflict("built-in segments cannot be edited", field="segment_id")
    parsed = _validated(session, merchant_id, rule, now)
    _check_name(session, merchant_id, name, segment.id)
    segment.name, segment.rule, segment.updated_at = name, dict(rule), now
    segment.depends = ",".join(sorted(domain.depends_on(parsed)))
    session.flush()
    from fidele.segments import membership

    membership.recompute(session, segment, now)
    return segment


def delete(session: Session, merchant_id: int, segment_id: int) -> None:
    segment = get(session, merchant_id, segment_id)
    if segment.builtin:
        raise StateConflict("built-in segments cannot be deleted", field="segment_id")
    repo = SegmentRepository(session)
    repo.clear_members(segment.id)
    session.delete(segment)
    session.flush()


def preview(
    session: Session, merchant_id: int, rule: Mapping[str, Any], now: datetime, sample: int = 20
) -> tuple[int, list[int]]:
    """How many customers ``rule`` matches now and the first ``sample`` of them (ids)."""
    _validated(session, merchant_id, rule, now)
    n = count(session, merchant_id=merchant_id, rule=rule, now=now)
    ids = customer_ids(session, merchant_id=merchant_id, rule=rule, now=now, limit=sample)
    return n, ids


def ensure_builtins(session: Session, merchant_id: int, now: datetime) -> int:
    """Create the merchant's missing built-in segments (one per RFM name); how many."""
    have = SegmentRepository(session).names(merchant_id)
    made = 0
    for name, rule in domain.builtin_rules():
        if name not in have:
            create(session, merchant_id, name=name, rule=rule, now=now, builtin=True)
            made += 1
    return made


def members(
    session: Session, merchant_id: int, segment_id: int, *, after_id: int, limit: int
) -> Sequence[Any]:
    """The segment's members (customers), ``limit`` after customer id ``after_id``."""
    segment = get(session, merchant_id, segment_id)
    return SegmentRepository(session).members_page(segment.id, after_id, limit)
