from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers.models import Customer
from fidele.demo import service, story
from fidele.events.models import Event
from fidele.kit.clock import FrozenClock
from fidele.orders.models import Order


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
