"""Members, the scale in force, tiers and the catch-up of time-driven changes.

Time-driven changes (releasing pending points, expiring lots, inactivity, tier reviews,
birthday and anniversary bonuses) are applied by :func:`catch_up` in the order of their own
dates, before any operation on a member and by the sweeping jobs. So the state is a function of
the event log alone: running the jobs earlier or later, or not at all before the next event,
gives the same balances, and a replay of the log rebuilds them exactly."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.kit.cache import memo
from fidele.ledger import service as ledger
from fidele.ledger.service import POINTS
from fidele.loyalty import domain, notify, points
from fidele.loyalty.config import Scale, Tier, default_scale, parse  # noqa: F401
from fidele.loyalty.models import CustomerLink, Member, RuleVersion, TierChange
from fidele.loyalty.repository import LoyaltyRepository
from fidele.tenancy.models import Programme

_parsed: dict[str, Scale] = {}


def scale_at(session: Session, programme_id: int, at: datetime | None = None) -> Scale:
    """The scale in force at ``at`` (default: the latest); read once per transaction."""
    scales = memo(session, "loyalty_scales")
    key = (programme_id, at)
    if key not in scales:
        scales[key] = _scale_at(session, programme_id, at)
    return scales[key]


def _scale_at(session: Session, programme_id: int, at: datetime | None) -> Scale:
    repo = LoyaltyRepository(session)
    version = repo.latest_version(programme_id, at) or repo.latest_version(programme_id)
    if version is None:
        programme = session.get(Programme, programme_id)
        return default_scale(programme.currency if programme else "EUR")
    raw = json.dumps(version.config, sort_keys=True)
    digest = hashlib.sha1(raw.encode()).hexdigest()
    if digest not in _parsed:
        _parsed[digest] = parse(version.config)
    return _parsed[digest]


def set_scale(session: Session, programme_id: int, scale: Scale, now: datetime) -> RuleVersion:
    """Append a version; it applies to everything received from ``now`` on."""
    row = RuleVersion(
        programme_id=programme_id, config=scale.model_dump(mode="json"), created_at=now
    )
    session.add(row)
    session.flush()
    memo(session, "loyalty_scales").clear()
    return row


def member_for(session: Session, customer: Customer, now: datetime) -> Member:
    """The customer's member, created on first sight and linked by normalised email (once
    per transaction: a new customer's first order asks twice, for the customer and the
    order events)."""
    known = memo(session, "loyalty_members")
    if customer.id not in known:
        known[customer.id] = _member_for(session, customer, now)
    return known[customer.id]


def _member_for(session: Session, customer: Customer, now: datetime) -> Member:
    repo = LoyaltyRepository(session)
    found = _known_member(session, customer)
    if found is not None:
        return found
    email = customer.email_normalized
    member = repo.member_by_email(customer.programme_id, email) if email else None
    try:
        with session.begin_nested():
            if member is None:
                member = Member(
                    programme_id=customer.programme_id, email_normalized=email, created_at=now
                )
                session.add(member)
                session.flush()
                points.held(session, member)  # inserted here: no one else can see it yet
                points.open_accounts(session, member, now)
            session.add(CustomerLink(customer_id=customer.id, member_id=member.id))
            session.flush()
    except IntegrityError:
        twin = repo.member_of(customer.id)
        if twin is None and email:
            twin = repo.member_by_email(customer.programme_id, email)
            if twin is not None:
                session.add(CustomerLink(customer_id=customer.id, member_id=twin.id))
                session.flush()
        if twin is None:
            raise
        return twin
    return member


def _known_member(session: Session, customer: Customer) -> Member | None:
    """The customer's member, its accounts and its ``issued`` shard at the customer's
    merchant read in one statement; the shard goes into ``points.merchant_account``'s
    per-transaction cache."""
    prefix = ledger.account_key(
        customer.programme_id, "issued", POINTS, customer.merchant_id, None, points.SHARD
    )
    row = LoyaltyRepository(session).member_with_accounts(customer.id, prefix, points.ISSUED_SHARDS)
    if row is None:
        return None
    member, *accounts = row
    points.held(session, member)  # read FOR UPDATE
    # The identity map is weak: the accounts stay referenced until the transaction ends.
    memo(session, "loyalty_accounts_read")[member.id] = accounts
    if accounts[2] is not None:
        points.remember_account(session, accounts[2])
    return member


def tier_of(scale: Scale, member: Member) -> Tier | None:
    levels = scale.tiers.levels
    return levels[min(member.tier_rank, len(levels) - 1)] if levels else None


def qualifying_rank(session: Session, member: Member, scale: Scale, at: datetime) -> int:
    start = domain.tier_window_start(scale.tiers.window, at)
    metrics = LoyaltyRepository(session).window_metrics(member.id, start, at)
    years = domain.full_years(member.first_order_at, at)
    return domain.tier_rank(scale.tiers.levels, metrics, years, scale.tiers.seniority_bp_per_year)


def upgrade(session: Session, member: Member, scale: Scale, at: datetime, merchant_id: int) -> None:
    """After an order: move up at once; meeting the current tier again ends a grace period."""
    if not scale.tiers.levels:
        return
    rank = qualifying_rank(session, member, scale, at)
    if rank >= member.tier_rank:
        member.tier_grace = False
    if rank > member.tier_rank:
        _change(session, member, scale, rank, "qualified", at, merchant_id)


def review(session: Session, member: Member, scale: Scale, at: datetime, merchant_id: int) -> None:
    """A scheduled review: keep, or start a grace period, or (after it) move down."""
    rank = qualifying_rank(session, member, scale, at)
    if rank >= member.tier_rank:
        member.tier_grace = False
        member.tier_review_at = domain.add_months(at, scale.tiers.review_months)
    elif not member.tier_grace and scale.tiers.grace_days:
        member.tier_grace = True
        member.tier_review_at = at + timedelta(days=scale.tiers.grace_days)
    else:
        _change(session, member, scale, rank, "review: threshold not met", at, merchant_id)


def _change(
    session: Session,
    member: Member,
    scale: Scale,
    rank: int,
    reason: str,
    at: datetime,
    merchant_id: int,
) -> None:
    old = member.tier_rank
    member.tier_rank, member.tier_since, member.tier_grace = rank, at, False
    member.tier_review_at = domain.add_months(at, scale.tiers.review_months)
    change = TierChange(
        member_id=member.id, from_rank=old, to_rank=rank, reason=reason, created_at=at
    )
    session.add(change)
    session.flush()
    levels = scale.tiers.levels
    notify.emit(
        session,
        member,
        merchant_id=merchant_id,
        topic="loyalty.tier_changed",
        dedup=f"tier:{change.id}",
        now=at,
        payload={
            "from": levels[old].name if old < len(levels) else None,
            "to": levels[rank].name,
            "reason": reason,
        },
    )


Item = tuple[datetime, int, Callable[[], object]]


def catch_up(session: Session, member: Member, now: datetime, merchant_id: int) -> None:
    """Apply every time-driven change due by ``now``, one at a time in date order."""
    locked = False
    while True:
        items = _due(session, member, now)
        if not items:
            return
        if not locked:
            points.lock(session, member)
            locked = True
            continue  # re-read under the lock
        min(items, key=lambda i: (i[0], i[1]))[2]()


def _due(session: Session, member: Member, now: datetime) -> list[Item]:
    repo = LoyaltyRepository(session)
    scale = scale_at(session, member.programme_id, now)
    items: list[Item] = []
    pending, expiring = repo.due_lots(member.id, now)
    for lot in pending:
        items.append(
            (lot.available_at, 0, lambda lot=lot: points.release(session, member, lot, now))
        )
    for lot in expiring:
        assert lot.expires_at is not None
        items.append(
            (
                lot.expires_at,
                1,
                lambda lot=lot: points.expire(session, member, lot, lot.expires_at, now),
            )
        )
    months = scale.settings.inactivity_months
    if months and member.last_activity_at is not None:
        deadline = domain.add_months(member.last_activity_at, months)
        if deadline <= now:
            items.append((deadline, 2, lambda: _inactive(session, member, deadline, now)))
    if member.tier_review_at is not None and member.tier_review_at <= now and scale.tiers.levels:
        at = member.tier_review_at
        items.append(
            (at, 3, lambda: review(session, member, scale, at, _merchant(session, member)))
        )
    items.extend(_celebrations(session, member, scale, now))
    return items


def _inactive(session: Session, member: Member, deadline: datetime, now: datetime) -> None:
    for lot in LoyaltyRepository(session).lots(member.id, "available"):
        points.expire(session, member, lot, deadline, now)
    member.last_activity_at = None  # nothing more to expire until the member is active again


def _celebrations(session: Session, member: Member, scale: Scale, now: datetime) -> list[Item]:
    """Birthday (fixed bonus) and membership-anniversary awards due this year."""
    items: list[Item] = []
    for rule in scale.rules:
        at = None
        if rule.type == "birthday" and rule.points:
            at = _birthday(session, member, now)
        elif rule.type == "anniversary" and rule.points and now.year > member.created_at.year:
            at = domain.add_months(member.created_at, 12 * (now.year - member.created_at.year))
        if at is None or at > now or at < member.created_at or not rule.live(at):
            continue
        key = f"{rule.type}:{member.id}:{at.year}"
        if LoyaltyRepository(session).lot(member.programme_id, key) is None:
            items.append(
                (
                    at,
                    4,
                    lambda rule=rule, at=at, key=key: _bonus(
                        session, member, scale, rule.id, rule.points, key, at, now
                    ),
                )
            )
    return items


def _birthday(session: Session, member: Member, now: datetime) -> datetime | None:
    for customer in LoyaltyRepository(session).customers_of(member.id):
        if customer.birthday is not None:
            day = domain.birthday_in(now.year, customer.birthday)
            return datetime.combine(day, time(), tzinfo=UTC)
    return None


def _bonus(
    session: Session,
    member: Member,
    scale: Scale,
    rule_id: str,
    amount: int,
    key: str,
    at: datetime,
    now: datetime,
) -> None:
    expiry = scale.settings.expiry_months
    points.earn(
        session,
        member,
        merchant_id=_merchant(session, member),
        source_key=key,
        reason=rule_id,
        points=amount,
        earned_at=at,
        available_at=at,
        expires_at=domain.add_months(at, expiry) if expiry else None,
        now=now,
    )


def _merchant(session: Session, member: Member) -> int:
    """The merchant a member-level change is booked to: that of its first customer."""
    return LoyaltyRepository(session).customers_of(member.id)[0].merchant_id
