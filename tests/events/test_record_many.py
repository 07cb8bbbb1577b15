from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.events import bus
from fidele.events import service as events
from fidele.events.models import Event
from fidele.kit.clock import FrozenClock
from tests.fixtures.factories import Tenant

seen: list[tuple[int | None, str]] = []


@bus.on_event("test.batched")
def _remember(session: Session, event: Event, now: datetime) -> None:
    seen.append((event.customer_id, event.payload["n"]))


def test_record_many_appends_in_order_and_dispatches_each(
    session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    now = clock.now()
    ids = []
    for i in range(3):
        c = Customer(
            merchant_id=tenant.merchant_id,
            programme_id=tenant.programme_id,
            external_id=f"rm{i}",
            created_at=now,
            updated_at=now,
        )
        session.add(c)
        session.flush()
        ids.append(c.id)
    seen.clear()
    made = events.record_many(
        session,
        tenant.caller,
        type="test.batched",
        now=now,
        source="test",
        items=[(cid, {"n": str(k)}) for k, cid in enumerate(ids)],
    )
    assert [e.customer_id for e in made] == ids
    assert [e.id for e in made] == sorted(e.id for e in made)
    assert all(e.payload_hash and e.merchant_id == tenant.merchant_id for e in made)
    assert seen == [(cid, str(k)) for k, cid in enumerate(ids)]
