"""The batch replay of order-only logs gives what the per-event path gives."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import ANY

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.events import service as events
from fidele.kit.clock import FrozenClock
from fidele.ledger import service as ledger
from fidele.ledger.models import Entry, Posting
from fidele.loyalty import bulk, members
from fidele.loyalty import replay as replay_module
from fidele.loyalty.config import default_scale
from fidele.loyalty.models import (
    Counter,
    CustomerLink,
    Lot,
    Member,
    Refusal,
    RuleVersion,
    TierChange,
)
from fidele.loyalty.replay import catch_up_all, replay
from tests.fixtures.factories import make_tenant
from tests.loyalty.conftest import Shop
from tests.loyalty.test_state_machine import SCALE as MACHINE_SCALE
from tests.loyalty.test_state_machine import snapshot

SCALE = {
    **MACHINE_SCALE,
    "rules": [
        *MACHINE_SCALE["rules"],
        {"id": "shoes", "type": "multiplier", "multiplier_bp": 30_000, "categories": ["shoes"]},
    ],
}


def lots(session: Session, programme_id: int) -> list[tuple[object, ...]]:
    rows = session.query(Lot).filter(Lot.programme_id == programme_id).all()
    return sorted(
        (r.source_key, r.points, r.remaining, r.status, r.expires_at, r.available_at)
        + (r.earned_at, r.order_amount, str(r.detail))
        for r in rows
    )


def history(session: Session, programme_id: int) -> list[tuple[object, ...]]:
    """Postings (reason, points moved), member dates and tier changes. Not the time of
    releases and expiries: the jobs that posted them are not in the log, a replay posts them
    when the member's next event (or the end) catches up, with the same effect."""
    postings = session.execute(
        select(Posting.reason, func.sum(Entry.amount))
        .join(Entry, Entry.posting_id == Posting.id)
        .where(Posting.programme_id == programme_id, Entry.amount > 0)
        .group_by(Posting.id)
    ).all()
    people = session.execute(
        select(
            Member.email_normalized, Member.tier_since, Member.tier_review_at, Member.tier_grace,
            Member.first_order_at, Member.last_activity_at, Member.created_at,
        ).where(Member.programme_id == programme_id)
    ).all()  # fmt: skip
    changes = session.execute(
        select(TierChange.from_rank, TierChange.to_rank, TierChange.reason, TierChange.created_at)
        .join(Member, Member.id == TierChange.member_id)
        .where(Member.programme_id == programme_id)
    ).all()
    return [sorted(postings), sorted(people, key=str), sorted(changes)]


def test_bulk_replay_matches_the_event_path(session: Session, clock: FrozenClock) -> None:
    tenant = make_tenant(session, clock.now(), name="Bulk")
    shop = Shop(session, tenant, clock)
    # one version: the default scale is replaced in place by the test's scale
    from fidele.loyalty.models import RuleVersion

    version = session.query(RuleVersion).filter_by(programme_id=tenant.programme_id).one()
    version.config = members.parse(SCALE).model_dump(mode="json")
    session.flush()
    for i in range(60):
        cat = "shoes" if i % 3 == 0 else "hats"
        shop.order(
            f"o{i}",
            customer=f"c{i % 7}",
            amount=1_000 + (i * 3_7919) % 30_000,
            lines=[
                {
                    "product_id": "p",
                    "category": cat,
                    "quantity": 1,
                    "unit_price": 1_000 + (i * 37_919) % 30_000,
                }
            ],
        )
        clock.advance(days=i % 9, hours=3)
        if i % 10 == 0:
            catch_up_all(session, clock.now())
    end = clock.now() + timedelta(days=1)
    catch_up_all(session, end, programme_id=tenant.programme_id)
    scale = members.scale_at(session, tenant.programme_id)
    assert bulk.eligible(session, tenant.programme_id, scale)

    def state() -> tuple[object, ...]:
        p = tenant.programme_id
        return snapshot(session, p), lots(session, p), history(session, p)

    before = state()
    assert replay(session, tenant.programme_id, end) > 60
    assert state() == before
    assert ledger.verify(session).ok


def test_bulk_replay_of_a_log_without_orders(session: Session, clock: FrozenClock) -> None:
    tenant = make_tenant(session, clock.now(), name="Empty")
    shop = Shop(session, tenant, clock)
    shop.customer("c1")
    scale = members.scale_at(session, tenant.programme_id)
    assert bulk.eligible(session, tenant.programme_id, scale)
    seen: list[int] = []
    count = replay(session, tenant.programme_id, clock.now(), progress=seen.append)
    assert count == sum(seen)
    assert snapshot(session, tenant.programme_id)["members"] == {"c1": ANY}
    assert ledger.verify(session).ok


def _action(shop: Shop, customer: str, type_: str, key: str) -> None:
    events.record(
        shop.session,
        shop.caller,
        type=type_,
        occurred_at=shop.clock.now(),
        now=shop.clock.now(),
        source="test",
        payload={"type": type_, "customer_id": customer},
        customer_id=shop.customer(customer).id,
        idempotency_key=key,
    )


def _after_orders_shop(session: Session, clock: FrozenClock, name: str) -> tuple[Shop, int]:
    """The default scale (first-order bonus, tiers, actions), with reviews capped to one a
    day so that caps refuse some."""
    tenant = make_tenant(session, clock.now(), name=name)
    version = session.query(RuleVersion).filter_by(programme_id=tenant.programme_id).one()
    data = default_scale().model_dump(mode="json")
    for rule in data["rules"]:
        if rule["id"] == "review":
            rule["per_day"] = 1
    version.config = members.parse(data).model_dump(mode="json")
    session.flush()
    return Shop(session, tenant, clock), tenant.programme_id


def _state(session: Session, programme_id: int) -> tuple[object, ...]:
    # a counter's key names its member by id, and ids differ after a replay on PostgreSQL
    owners = dict(
        session.execute(
            select(CustomerLink.member_id, Customer.external_id)
            .join(Customer, Customer.id == CustomerLink.customer_id)
            .where(Customer.programme_id == programme_id)
        ).all()
    )
    counters = [
        (f"{head}:{owners[int(member)]}", value)
        for key, value in session.execute(
            select(Counter.key, Counter.value).where(Counter.programme_id == programme_id)
        )
        for head, member in [key.rsplit(":m", 1)]
    ]
    refusals = session.execute(
        select(Refusal.rule_id, Refusal.points, Refusal.reason, Refusal.created_at).where(
            Refusal.programme_id == programme_id
        )
    ).all()
    return (
        snapshot(session, programme_id),
        lots(session, programme_id),
        history(session, programme_id),
        sorted(counters),
        sorted(refusals),
    )


def test_bulk_replay_of_deliveries_clawbacks_and_actions(
    session: Session, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop, programme = _after_orders_shop(session, clock, "After orders")
    for i in range(40):
        customer, oid = f"c{i % 6}", f"o{i}"
        if i < 6:
            _action(shop, customer, "newsletter_subscribed", f"n{i}")
        shop.order(oid, customer=customer, amount=2_000 + (i * 7_919) % 40_000)
        clock.advance(hours=2)
        if i % 9 == 4:
            shop.status(oid, "cancelled")
            continue
        clock.advance(days=2)
        shop.status(oid, "delivered")
        clock.advance(days=3)
        if i % 5 == 1:
            shop.refund(oid, f"r{i}", amount=700)  # partial, then the rest
            clock.advance(hours=5)
            shop.refund(oid, f"r{i}b")
        _action(shop, customer, "review_posted", f"rv{i}")
        _action(shop, customer, "review_posted", f"rv{i}-again")  # over the daily cap
        _action(shop, customer, "newsletter_subscribed", f"n-again{i}")  # lifetime cap
        clock.advance(days=i % 11, hours=1)
    end = clock.now() + timedelta(days=400)  # releases, expiries, tier reviews
    catch_up_all(session, end, programme_id=programme)
    assert bulk.eligible(session, programme, members.scale_at(session, programme))
    before = _state(session, programme)
    assert before[4]  # some refusals
    monkeypatch.setattr(replay_module, "route", _no_event_path)
    replay(session, programme, end)
    assert _state(session, programme) == before
    assert ledger.verify(session).ok


def _no_event_path(*args: object) -> None:
    raise AssertionError("the per-event path ran")


def test_clawback_of_released_points_falls_back_to_the_event_path(
    session: Session, clock: FrozenClock
) -> None:
    shop, programme = _after_orders_shop(session, clock, "Late refund")
    shop.order("o1", amount=30_000)
    shop.order("o2", customer="c2", amount=5_000)
    clock.advance(days=20)
    catch_up_all(session, clock.now())  # o1's points are released
    shop.refund("o1", "r1", amount=10_000)
    end = clock.now() + timedelta(days=1)
    catch_up_all(session, end, programme_id=programme)
    before = _state(session, programme)
    with pytest.raises(bulk.Unbatchable):
        bulk.replay_orders(session, programme, members.scale_at(session, programme), end)
    replay(session, programme, end)  # nothing was written: the per-event path rebuilds it
    assert _state(session, programme) == before
    assert ledger.verify(session).ok
