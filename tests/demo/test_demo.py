from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers.models import Customer
from fidele.db.session import transaction
from fidele.demo import service, story
from fidele.events.models import Event
from fidele.kit.clock import FrozenClock
from fidele.ledger import service as ledger
from fidele.loyalty import replay as replay_module
from fidele.loyalty.models import CustomerLink, Lot, Member, TierChange
from fidele.loyalty.replay import catch_up_all
from fidele.messaging.models import Consent
from fidele.orders.models import Order
from fidele.tenancy.models import Programme
from tests.loyalty.test_state_machine import snapshot


def _fingerprint(session: Session, programme_id: int) -> tuple[object, ...]:
    orders = session.execute(
        select(func.count(), func.sum(Order.total), func.sum(Order.refunded_total)).where(
            Order.programme_id == programme_id
        )
    ).one()
    emails = (
        session.execute(
            select(Customer.email)
            .where(Customer.programme_id == programme_id)
            .order_by(Customer.external_id)
        )
        .scalars()
        .all()
    )
    return (*orders, tuple(emails))


def test_demo_shop_is_realistic_and_deterministic(
    factory: sessionmaker[Session], session: Session, clock: FrozenClock
) -> None:
    shop = service.build(factory, seed=7, n_customers=60, now=clock.now(), server_secret="s")
    assert shop.created and shop.api_key.startswith("fdl_")
    counts = shop.counts
    assert counts["customers"] == 60
    assert counts["orders"] > 60  # some customers came back
    assert counts["delivered"] > 0 and counts.get("newsletter_subscribed", 0) > 0
    repeaters = session.execute(
        select(func.count()).select_from(
            select(Order.customer_id)
            .where(Order.programme_id == shop.programme_id)
            .group_by(Order.customer_id)
            .having(func.count() > 1)
            .subquery()
        )
    ).scalar_one()
    assert 0 < repeaters < 60  # most buy once, some become regulars
    locales = set(session.execute(select(Customer.locale)).scalars())
    assert {"fr-FR", "en-GB"} <= locales
    first = _fingerprint(session, shop.programme_id)
    # the same seed again finds the same shop rather than building a second one
    again = service.build(factory, seed=7, n_customers=60, now=clock.now(), server_secret="s")
    assert not again.created and again.programme_id == shop.programme_id
    # another seed gives another shop
    other = service.build(factory, seed=8, n_customers=60, now=clock.now(), server_secret="s")
    assert _fingerprint(session, other.programme_id) != first
    n_events = session.execute(select(func.count()).select_from(Event)).scalar_one()
    assert n_events >= counts["orders"] + counts["customers"]


def test_story_is_deterministic_for_a_seed(clock: FrozenClock) -> None:
    def digest(seed: int) -> list[tuple[object, ...]]:
        return [(s.at, s.seq, s.kind) for s in story.steps(seed, 30, clock.now())]

    assert digest(3) == digest(3)
    assert digest(3) != digest(4)


def _shop_state(session: Session, programme_id: int) -> dict[str, Any]:
    """What the demo shows, by customer id (database ids differ between two builds)."""
    loyalty = snapshot(session, programme_id)
    orders = session.execute(
        select(
            Customer.external_id,
            Order.external_id,
            Order.status,
            Order.total,
            Order.refunded_total,
            Order.placed_at,
            Order.delivered_at,
            Order.cancelled_at,
        )
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.programme_id == programme_id)
    ).all()
    people = session.execute(
        select(
            Customer.external_id, Customer.email, Customer.email_marketing, Customer.birthday
        ).where(Customer.programme_id == programme_id)
    ).all()
    lots = session.execute(
        select(
            Customer.external_id, Lot.points, Lot.remaining, Lot.clawed, Lot.status,
            Lot.earned_at, Lot.available_at, Lot.expires_at, Lot.reason,
        )
        .join(CustomerLink, CustomerLink.member_id == Lot.member_id)
        .join(Customer, Customer.id == CustomerLink.customer_id)
        .where(Lot.programme_id == programme_id)
    ).all()  # fmt: skip
    tiers = session.execute(
        select(
            Customer.external_id, TierChange.from_rank, TierChange.to_rank, TierChange.created_at
        )
        .join(CustomerLink, CustomerLink.member_id == TierChange.member_id)
        .join(Customer, Customer.id == CustomerLink.customer_id)
        .join(Member, Member.id == TierChange.member_id)
        .where(Member.programme_id == programme_id)
    ).all()
    types = session.execute(
        select(Event.type, func.count())
        .where(Event.programme_id == programme_id, Event.source == "demo")
        .group_by(Event.type)
    ).all()
    consents = session.execute(
        select(
            Customer.external_id,
            Consent.topic,
            Consent.channel,
            Consent.granted,
            Consent.at,
            Consent.source,
        )
        .join(Customer, Customer.id == Consent.customer_id)
        .where(Customer.programme_id == programme_id)
    ).all()
    return {
        "consents": sorted(consents),
        "members": loyalty["members"],
        "merchant_accounts": sorted((kind, balance) for _, kind, balance in loyalty["merchants"]),
        "orders": sorted(orders),
        "people": sorted(people),
        "lots": sorted(lots, key=str),
        "tiers": sorted(tiers),
        "events": sorted(types),
    }


def test_bulk_build_equals_the_step_by_step_reference(
    factory: sessionmaker[Session],
    session: Session,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = clock.now()
    ref = service.build(
        factory, seed=11, n_customers=80, now=now, server_secret="s", reference=True
    )
    with transaction(factory) as s:
        # the online path leaves members as of their last event: catch everyone up to now,
        # as the bulk build's replay does
        catch_up_all(s, now, programme_id=ref.programme_id)
        s.get(Programme, ref.programme_id).name = "reference"  # type: ignore[union-attr]
    monkeypatch.setattr(replay_module, "route", _no_event_path)  # loyalty in batch
    shop = service.build(factory, seed=11, n_customers=80, now=now, server_secret="s")
    assert shop.created and shop.programme_id != ref.programme_id
    assert shop.counts == ref.counts
    assert shop.counts["refunds"] > 0 and shop.counts["review_posted"] > 0
    expected, got = _shop_state(session, ref.programme_id), _shop_state(session, shop.programme_id)
    assert got["members"] and got["lots"] and got["tiers"] and got["consents"]
    for part in expected:
        assert got[part] == expected[part], part
    assert ledger.verify(session).ok


def _no_event_path(*args: object) -> None:
    raise AssertionError("the loyalty replay took the per-event path")


def test_same_seed_same_shop(
    factory: sessionmaker[Session], session: Session, clock: FrozenClock
) -> None:
    first = service.build(factory, seed=5, n_customers=40, now=clock.now(), server_secret="s")
    with transaction(factory) as s:
        s.get(Programme, first.programme_id).name = "first"  # type: ignore[union-attr]
    second = service.build(factory, seed=5, n_customers=40, now=clock.now(), server_secret="s")
    assert second.created and second.programme_id != first.programme_id
    assert _shop_state(session, first.programme_id) == _shop_state(session, second.programme_id)
