"""The demo's story played step by step through the online services, in time order, with a
clock that follows the story: the reference the bulk build (:mod:`fidele.demo.bulk`) is
checked against, minutes slower on a shop of thousands of customers."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from fidele.customers import service as customers
from fidele.db.session import transaction
from fidele.demo.story import STATUSES, Step
from fidele.events import service as events
from fidele.orders import service as orders
from fidele.orders.schemas import RefundIn, StatusIn
from fidele.tenancy.service import Caller

BATCH = 250


def play(
    factory: sessionmaker[Session],
    caller: Caller,
    story: list[Step],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Play ``story`` for ``caller``'s shop, ``BATCH`` steps per transaction."""
    for start in range(0, len(story), BATCH):
        with transaction(factory) as session:
            for step in story[start : start + BATCH]:
                _step(session, caller, step)
        if progress:
            progress(min(start + BATCH, len(story)), len(story))


def _step(s: Session, c: Caller, step: Step) -> None:
    t, kind, args = step.at, step.kind, step.args
    if kind == "customers":
        customers.upsert(s, c, args[0], args[1], t, source="demo")
    elif kind == "orders":
        orders.create(s, c, args[0], t, source="demo")
    elif kind in STATUSES:
        status = StatusIn(status=kind, occurred_at=t)  # type: ignore[arg-type]
        orders.set_status(s, c, args[0], status, t, source="demo")
    elif kind == "refunds":
        oid, partial = args
        order = orders.get(s, c, oid)
        amount = max(1, order.total // 2) if partial else None
        data = RefundIn(id=f"R-{oid}", amount=amount, occurred_at=t)
        orders.refund(s, c, oid, data, t, source="demo")
    else:
        cid, seq, props = args
        customer = customers.get_or_create(s, c, cid, t, source="demo")
        events.record(
            s,
            c,
            type=kind,
            occurred_at=t,
            now=t,
            source="demo",
            payload={"type": kind, "customer_id": cid, "properties": props},
            customer_id=customer.id,
            idempotency_key=f"demo:{seq}",
        )
