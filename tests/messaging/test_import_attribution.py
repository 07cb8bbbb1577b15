"""Conversions are credited the same way whatever path wrote the order: the rule
(``conversions.last_touch``) by hand, and orders written by ``fidele import``'s bulk path (which
dispatches no ``order.placed`` handler) attributed exactly as the same orders placed online,
once, a replayed import adding nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fidele.ingest.importers import runner
from fidele.kit.clock import FrozenClock
from fidele.messaging import conversions, measurement, tracking
from fidele.messaging.measure_models import MessageConversion
from fidele.orders.models import Order
from tests.fixtures.factories import Tenant, make_tenant
from tests.ingest.importing import write_csv
from tests.messaging.shop import customer_id, place

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass
class Seen:
    id: int
    send_id: int
    kind: str
    first_at: datetime
    last_at: datetime


def pick(touches: list[Seen], click_days: float = 5, open_days: float = 3) -> int | None:
    found = conversions.last_touch(touches, T, click_days * DAY, open_days * DAY)
    return None if found is None else found.send_id


def test_the_rule_by_hand() -> None:
    click = Seen(1, 10, "click", T - 4 * DAY, T - 4 * DAY)
    later_click = Seen(2, 11, "click", T - 2 * DAY, T - 2 * DAY)
    late_open = Seen(3, 12, "open", T - timedelta(hours=1), T - timedelta(hours=1))
    assert pick([click, later_click, late_open]) == 11  # a click beats a later open; last wins
    assert pick([late_open]) == 12
    assert pick([Seen(4, 13, "click", T - 6 * DAY, T - 6 * DAY)]) is None  # out of the window
    assert pick([Seen(5, 14, "open", T - 4 * DAY, T - 4 * DAY)]) is None
    # repeats: counted from the last one in the window, even when they went on after the order
    assert pick([Seen(6, 15, "click", T - 9 * DAY, T - DAY)]) == 15
    assert pick([Seen(7, 16, "click", T - DAY, T + DAY)]) == 16
    assert pick([Seen(8, 17, "click", T + timedelta(seconds=1), T + DAY)]) is None  # after it
    assert pick([late_open], open_days=0) is None  # a zero window turns opens off
    assert pick([click], click_days=0) is None
    twin = Seen(9, 18, "click", later_click.first_at, later_click.last_at)
    assert pick([twin, later_click]) == 18  # same time: the latest row
    assert pick([]) is None


def _touches(session: Session, tenant: Tenant, cid: int, base: int) -> None:
    """A click 4 days before T (send base+1), another 2 days before (base+2), an open an hour
    before (base+3): the order at T goes to base+2."""
    for send, kind, at in [
        (base + 1, "click", T - 4 * DAY),
        (base + 2, "click", T - 2 * DAY),
        (base + 3, "open", T - timedelta(hours=1)),
    ]:
        url = "https://shop.example/" if kind == "click" else ""
        tracking.record(session, tracking.Mark(kind, tenant.merchant_id, cid, send, url), at)


def _row(oid: str, customer: str, at: datetime) -> dict[str, object]:
    lines = [{"product_id": "p1", "name": "Mug", "quantity": 1, "unit_price": 1000}]
    return {
        "id": oid,
        "customer_id": customer,
        "placed_at": at.isoformat(),
        "currency": "EUR",
        "lines": json.dumps(lines),
        "shipping": 0,
        "discounts": 0,
        "tax": 0,
        "total": 1000,
        "email": "",
    }


def _conversions(session: Session) -> dict[str, tuple[int, str, datetime]]:
    session.expire_all()
    rows = session.execute(
        select(Order.external_id, MessageConversion.send_id, MessageConversion.touch)
        .join(Order, Order.id == MessageConversion.order_id)
        .order_by(Order.external_id)
    ).all()
    return {oid: (send, touch) for oid, send, touch in rows}  # type: ignore[misc]


def _import(
    factory: sessionmaker[Session], tenant: Tenant, path: Path, clock: FrozenClock
) -> runner.Summary:
    return runner.run(factory, tenant.caller, path, runner.Options("orders"), clock)


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_imported_orders_are_attributed_like_online_ones_once(
    factory: sessionmaker[Session],
    session: Session,
    tenant: Tenant,
    clock: FrozenClock,
    tmp_path: Path,
    batch_size: int,
) -> None:
    online = customer_id(session, tenant, "online", T - 10 * DAY)
    imported = customer_id(session, tenant, "imported", T - 10 * DAY)
    quiet = customer_id(session, tenant, "quiet", T - 10 * DAY)
    _touches(session, tenant, online, 100)
    _touches(session, tenant, imported, 200)
    tracking.record(  # the quiet customer's only touch is too old
        session, tracking.Mark("click", tenant.merchant_id, quiet, 301, "https://x/"), T - 9 * DAY
    )
    place(session, tenant, "on-1", "online", at=T)
    place(session, tenant, "on-2", "online", at=T + 4 * DAY)  # only the open... now too old
    session.commit()
    rows = [
        _row("im-1", "imported", T),
        _row("im-2", "imported", T + 4 * DAY),
        _row("im-3", "quiet", T),
    ]
    path = write_csv(tmp_path / "orders.csv", rows)
    summary = runner.run(
        factory, tenant.caller, path, runner.Options("orders", batch_size=batch_size), clock
    )
    assert summary.as_dict()["created"] == 3
    got = _conversions(session)
    assert got == {"on-1": (102, "click"), "im-1": (202, "click")}
    # the same touches, the same orders: the same credit whichever path wrote them
    assert got["im-1"][0] - 200 == got["on-1"][0] - 100
    assert ("on-2" in got) == ("im-2" in got) is False
    again = _import(factory, tenant, path, clock)  # a replayed file credits nothing twice
    assert again.as_dict()["created"] == 0
    assert _conversions(session) == got


def test_the_import_follows_the_merchant_windows(
    factory: sessionmaker[Session],
    session: Session,
    tenant: Tenant,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    measurement.put(
        session, tenant.merchant_id, global_holdout_share=0, click_days=10, open_days=0, now=T
    )
    cid = customer_id(session, tenant, "c1", T - 20 * DAY)
    tracking.record(
        session, tracking.Mark("click", tenant.merchant_id, cid, 7, "https://x/"), T - 9 * DAY
    )
    tracking.record(session, tracking.Mark("open", tenant.merchant_id, cid, 8, ""), T - DAY)
    session.commit()
    path = write_csv(tmp_path / "orders.csv", [_row("o1", "c1", T)])
    assert _import(factory, tenant, path, clock).as_dict()["created"] == 1
    assert _conversions(session) == {"o1": (7, "click")}  # opens off, clicks over 10 days


def test_another_merchants_touches_are_not_used(
    factory: sessionmaker[Session],
    session: Session,
    tenant: Tenant,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    other_tenant = make_tenant(session, T - 30 * DAY, name="Shop B")
    mine = customer_id(session, tenant, "c1", T - 20 * DAY)
    theirs = customer_id(session, other_tenant, "c1", T - 20 * DAY)
    tracking.record(
        session, tracking.Mark("click", other_tenant.merchant_id, theirs, 5, "https://x/"), T - DAY
    )
    session.commit()
    path = write_csv(tmp_path / "orders.csv", [_row("o1", "c1", T)])
    assert _import(factory, tenant, path, clock).as_dict()["created"] == 1
    assert _conversions(session) == {}
    tracking.record(
        session, tracking.Mark("click", tenant.merchant_id, mine, 6, "https://x/"), T - DAY
    )
    session.commit()
    path = write_csv(tmp_path / "more.csv", [_row("o2", "c1", T)])
    assert _import(factory, tenant, path, clock).as_dict()["created"] == 1
    assert _conversions(session) == {"o2": (6, "click")}
