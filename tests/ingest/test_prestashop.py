from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.events.models import Event
from fidele.ingest import prestashop
from fidele.kit.clock import FrozenClock
from fidele.orders.models import Order
from tests.fixtures.factories import Tenant
from tests.ingest.prestashop_server import KEY, Shop, customer, order, serve

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def shop() -> Iterator[tuple[Shop, str]]:
    s = Shop()
    s.data["customers"] = [customer(i, f"2025-01-0{i} 10:00:00") for i in range(1, 6)]
    s.data["orders"] = [order(i, 1 + i % 5, f"2025-01-1{i} 10:00:00") for i in range(1, 4)]
    with serve(s) as url:
        yield s, url


def run(
    factory: sessionmaker[Session], tenant: Tenant, url: str, clock: FrozenClock, key: str = KEY
) -> prestashop.SyncSummary:
    client = prestashop.Client(url, key)
    try:
        return prestashop.sync(factory, tenant.caller, client, clock, tz=PARIS, page=2)
    finally:
        client.close()


def test_first_sync_pulls_everything_in_pages(
    factory: sessionmaker[Session],
    tenant: Tenant,
    clock: FrozenClock,
    shop: tuple[Shop, str],
    api: TestClient,
) -> None:
    s, url = shop
    summary = run(factory, tenant, url, clock)
    assert summary.as_dict() == {
        "customers_read": 5,
        "customers_created": 5,
        "orders_read": 3,
        "orders_created": 3,
        "refunds_created": 0,
        "rejected": 0,
        "order_slips_unreadable": 0,
    }
    limits = [r["limit"][0] for r in s.requests if r["resource"] == ["customers"]]
    assert limits == ["0,2", "2,2", "4,2"]
    o = api.get("/v1/orders/1").json()
    assert o["customer_id"] == "2"
    assert o["placed_at"] == "2025-01-10T13:30:00Z"
    # stored tax-exclusive with the tax, whatever the shop displays
    lines = [(ln["product_id"], ln["quantity"], ln["unit_price"], ln["tax"]) for ln in o["lines"]]
    assert lines == [("demo_2", 1, 2250, 450), ("demo_3", 2, 1083, 434)]
    assert (o["total"], o["shipping"], o["discounts"]) == (5680, 733, 417)
    # 44.16 of unit prices against total_products 44.17: the cent of rounding goes to tax
    assert (o["tax"], o["adjustment"], o["payment_status"]) == (948, 0, "paid")
    c = api.get("/v1/customers/3").json()
    assert (c["email"], c["birthday"]) == ("pub3@prestashop.com", "1970-01-15")
    assert c["consent"]["email_marketing"] is True


def test_second_sync_is_incremental_and_idempotent(
    factory: sessionmaker[Session],
    session: Session,
    tenant: Tenant,
    clock: FrozenClock,
    shop: tuple[Shop, str],
    api: TestClient,
) -> None:
    s, url = shop
    run(factory, tenant, url, clock)
    events = session.scalar(select(func.count()).select_from(Event))
    s.requests.clear()
    s.data["customers"][1] = customer(2, "2025-02-01 09:00:00", lastname="MARTIN")
    s.data["orders"][0] = order(1, 2, "2025-02-02 09:00:00", state="5")
    clock.advance(days=1)
    summary = run(factory, tenant, url, clock)
    since = [
        r["filter[date_upd]"][0]
        for r in s.requests
        if "filter[date_upd]" in r and r["resource"] != ["order_slips"]
    ]
    assert since[0].startswith("[2025-01-05 10:00:00,")
    assert since[-1].startswith("[2025-01-13 10:00:00,")
    # the boundary rows come again (inclusive filter) and change nothing
    assert (summary.customers_read, summary.customers_created) == (2, 0)
    assert (summary.orders_read, summary.orders_created) == (2, 0)
    assert api.get("/v1/customers/2").json()["last_name"] == "MARTIN"
    assert api.get("/v1/orders/1").json()["status"] == "delivered"
    assert session.scalar(select(func.count()).select_from(Order)) == 3
    # one customer change + one status change
    assert session.scalar(select(func.count()).select_from(Event)) == (events or 0) + 2


def test_bad_key_is_an_error_and_writes_nothing(
    factory: sessionmaker[Session],
    session: Session,
    tenant: Tenant,
    clock: FrozenClock,
    shop: tuple[Shop, str],
) -> None:
    with pytest.raises(prestashop.PrestaShopError, match="401"):
        run(factory, tenant, shop[1], clock, key="wrong")
    assert session.scalar(select(func.count()).select_from(Order)) == 0
