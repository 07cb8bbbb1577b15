"""The batch replay of order-only logs gives what the per-event path gives."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import ANY

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidele.kit.clock import FrozenClock
from fidele.ledger import service as ledger
from fidele.ledger.models import Entry, Posting
from fidele.loyalty import bulk, members
from fidele.loyalty.models import Lot, Member, TierChange
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
