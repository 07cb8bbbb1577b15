"""Shops feed the delivery experience: Shopify fulfillments and carrier events, WooCommerce
(Shipment Tracking and the delivery meta), PrestaShop's Delivered state and carrier, and the
CSV import's delivery columns. Each records the delivery through the delivery service: the
carrier, late flagged against the promise, ``order.delivered`` exactly once however often
the shop sends the same thing, and bad dates a 422 naming the field, nothing stored."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.events.models import Event
from fidele.feedback.delivery_models import OrderDelivery
from fidele.ingest import prestashop
from fidele.ingest.importers import runner
from fidele.ingest.models import ShopPackage
from fidele.kit.clock import FrozenClock
from tests.feedback.complaints_shop import events_of
from tests.fixtures.factories import Tenant, make_tenant
from tests.ingest.conftest import load
from tests.ingest.importing import order_row, write_csv
from tests.ingest.prestashop_server import KEY, Shop, serve
from tests.ingest.test_webhooks import shopify, woo

SHOPIFY_ORDER = "5310000003"


# A few days after the payloads' deliveries (March 2026).
DAYS_AFTER = datetime(2026, 3, 16, 12, 0, tzinfo=UTC)


def delivered_events(session: Session, tenant: Tenant) -> list[Any]:
    return events_of(session, tenant.merchant_id, "order.delivered")


def late_events(session: Session, tenant: Tenant) -> list[Any]:
    return events_of(session, tenant.merchant_id, "order.delivered_late")


def ok(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def package(fulfillment_id: int) -> dict[str, Any]:
    """A ``fulfillments/create`` payload of one of the order's two units, in transit."""
    f = copy.deepcopy(load("delivery/shopify_order_delivered")["fulfillments"][0])
    f.update(
        id=fulfillment_id, shipment_status="in_transit", updated_at="2026-03-05T16:00:00-08:00"
    )
    f["line_items"][0]["quantity"] = 1
    return f


def arrived(f: dict[str, Any], at: str) -> dict[str, Any]:
    """``f``'s ``fulfillments/update`` once the carrier delivered it (``at``, Pacific time)."""
    return {**f, "shipment_status": "delivered", "updated_at": f"{at}-08:00"}


def carrier_delivered(fulfillment_id: int, at: str) -> dict[str, Any]:
    """The carrier's ``fulfillment_events/create`` delivering that package (``at``, Pacific)."""
    event = load("delivery/shopify_event_delivered")
    return {
        **event,
        "id": fulfillment_id + 1,
        "fulfillment_id": fulfillment_id,
        "happened_at": f"{at}-08:00",
    }


def delivered_once(api: TestClient, session: Session, tenant: Tenant, at: str) -> None:
    """The Shopify order is delivered at ``at``, and ``order.delivered`` was recorded once."""
    assert api.get(f"/v1/orders/{SHOPIFY_ORDER}").json()["status"] == "delivered"
    assert api.get(f"/v1/orders/{SHOPIFY_ORDER}/delivery").json()["delivered_at"] == at
    assert len(delivered_events(session, tenant)) == 1


class TestShopify:
    def test_carrier_estimate_then_delivered_order_is_late_once(
        self,
        client: TestClient,
        api: TestClient,
        tenant: Tenant,
        session: Session,
        clock: FrozenClock,
    ) -> None:
        clock.set(DAYS_AFTER)  # learnt as it happens: the apology gesture is still due
        ok(shopify(client, tenant, "orders/create", load("shopify/usd_tax_on_top_paid")))
        event = load("delivery/shopify_event_in_transit")
        assert ok(shopify(client, tenant, "fulfillment_events/create", event))["status"] == (
            "processed"
        )
        # a later re-estimate does not move the promise made first
        later = {**event, "id": 944956392, "estimated_delivery_at": "2026-03-14T12:00:00-08:00"}
        ok(shopify(client, tenant, "fulfillment_events/create", later))
        delivered = load("delivery/shopify_order_delivered")
        for _ in range(3):  # Shopify redelivers; orders/fulfilled carries the same order
            ok(shopify(client, tenant, "orders/updated", delivered))
        ok(shopify(client, tenant, "orders/fulfilled", delivered))
        shown = api.get(f"/v1/orders/{SHOPIFY_ORDER}/delivery").json()
        assert shown["carrier"] == "USPS"
        assert shown["promised_at"] == "2026-03-09T20:00:00Z"
        assert shown["delivered_at"] == "2026-03-13T18:00:00Z"
        assert shown["days_late"] == 4 and shown["gesture"]["kind"] == "coupon"
        order = api.get(f"/v1/orders/{SHOPIFY_ORDER}").json()
        assert order["status"] == "delivered"
        assert [e.payload["order_id"] for e in delivered_events(session, tenant)] == [SHOPIFY_ORDER]
        late = late_events(session, tenant)
        assert [(e.payload["days_late"], e.payload["carrier"]) for e in late] == [(4, "USPS")]

    def test_delivered_carrier_event_on_time(
        self, client: TestClient, api: TestClient, tenant: Tenant, session: Session
    ) -> None:
        ok(shopify(client, tenant, "orders/create", load("shopify/usd_tax_on_top_paid")))
        ok(
            shopify(
                client,
                tenant,
                "fulfillment_events/create",
                load("delivery/shopify_event_in_transit"),
            )
        )
        done = load("delivery/shopify_event_delivered")
        for _ in range(2):
            assert ok(shopify(client, tenant, "fulfillment_events/create", done))["object_id"] == (
                "944956399"
            )
        shown = api.get(f"/v1/orders/{SHOPIFY_ORDER}/delivery").json()
        assert shown["delivered_at"] == "2026-03-09T17:30:00Z"
        assert (shown["days_late"], shown["gesture"]) == (0, None)
        assert len(delivered_events(session, tenant)) == 1
        assert late_events(session, tenant) == []
        # the order payload saying the same afterwards changes nothing
        ok(shopify(client, tenant, "orders/updated", load("delivery/shopify_order_delivered")))
        assert len(delivered_events(session, tenant)) == 1
        shown = api.get(f"/v1/orders/{SHOPIFY_ORDER}/delivery").json()
        assert (shown["delivered_at"], shown["days_late"]) == ("2026-03-09T17:30:00Z", 0)
        assert shown["carrier"] == "USPS"

    def test_a_fulfillment_update_delivers_with_its_carrier(
        self, client: TestClient, api: TestClient, tenant: Tenant, session: Session
    ) -> None:
        ok(shopify(client, tenant, "orders/create", load("shopify/usd_tax_on_top_paid")))
        fulfillment = load("delivery/shopify_order_delivered")["fulfillments"][0]
        for _ in range(2):
            ok(shopify(client, tenant, "fulfillments/update", fulfillment))
        shown = api.get(f"/v1/orders/{SHOPIFY_ORDER}/delivery").json()
        assert (shown["carrier"], shown["delivered_at"]) == ("USPS", "2026-03-13T18:00:00Z")
        assert shown["days_late"] is None  # no promise known: nothing judged
        assert len(delivered_events(session, tenant)) == 1

    def test_an_order_in_two_packages_arrives_with_the_second(
        self, client: TestClient, api: TestClient, tenant: Tenant, session: Session
    ) -> None:
        ok(shopify(client, tenant, "orders/create", load("shopify/usd_tax_on_top_paid")))
        first, second = package(255858046), package(255858047)
        for p in (first, second):  # the merchant ships the two units apart
            ok(shopify(client, tenant, "fulfillments/create", p))
        ok(shopify(client, tenant, "fulfillments/update", arrived(first, "2026-03-09T10:00:00")))
        assert api.get(f"/v1/orders/{SHOPIFY_ORDER}").json()["status"] == "placed"
        shown = api.get(f"/v1/orders/{SHOPIFY_ORDER}/delivery").json()
        assert (shown["carrier"], shown["delivered_at"]) == ("USPS", None)
        assert delivered_events(session, tenant) == []
        for _ in range(2):
            done = arrived(second, "2026-03-11T10:00:00")
            ok(shopify(client, tenant, "fulfillments/update", done))
        delivered_once(api, session, tenant, "2026-03-11T18:00:00Z")  # the last package's arrival

    def test_a_carrier_event_for_one_of_two_packages_does_not_deliver_the_order(
        self, client: TestClient, api: TestClient, tenant: Tenant, session: Session
    ) -> None:
        ok(shopify(client, tenant, "orders/create", load("shopify/usd_tax_on_top_paid")))
        for fid in (255858046, 255858047):
            ok(shopify(client, tenant, "fulfillments/create", package(fid)))
        event = load("delivery/shopify_event_delivered")  # about 255858046
        ok(shopify(client, tenant, "fulfillment_events/create", event))
        assert api.get(f"/v1/orders/{SHOPIFY_ORDER}").json()["status"] == "placed"
        assert delivered_events(session, tenant) == []
        later = carrier_delivered(255858047, "2026-03-10T09:30:00")
        ok(shopify(client, tenant, "fulfillment_events/create", later))
        delivered_once(api, session, tenant, "2026-03-10T17:30:00Z")

    def test_packages_listed_by_an_order_webhook_are_remembered(
        self, client: TestClient, api: TestClient, tenant: Tenant, session: Session
    ) -> None:
        order = load("delivery/shopify_order_delivered")
        order["fulfillments"] = [
            arrived(package(255858046), "2026-03-09T10:00:00"),
            package(255858047),
        ]
        ok(shopify(client, tenant, "orders/updated", order))  # one of two packages arrived
        assert api.get(f"/v1/orders/{SHOPIFY_ORDER}").json()["status"] == "shipped"
        assert delivered_events(session, tenant) == []
        # a carrier's event about the first package alone: the second is still on its way
        ok(
            shopify(
                client,
                tenant,
                "fulfillment_events/create",
                load("delivery/shopify_event_delivered"),
            )
        )
        assert delivered_events(session, tenant) == []
        event = carrier_delivered(255858047, "2026-03-12T09:30:00")
        ok(shopify(client, tenant, "fulfillment_events/create", event))
        delivered_once(api, session, tenant, "2026-03-12T17:30:00Z")

    def test_a_cancelled_package_no_longer_holds_the_order_back(
        self, client: TestClient, api: TestClient, tenant: Tenant, session: Session
    ) -> None:
        ok(shopify(client, tenant, "orders/create", load("shopify/usd_tax_on_top_paid")))
        kept, lost, again = package(255858046), package(255858047), package(255858048)
        for p in (kept, lost):
            ok(shopify(client, tenant, "fulfillments/create", p))
        ok(shopify(client, tenant, "fulfillments/update", arrived(kept, "2026-03-09T10:00:00")))
        cancelled = {**lost, "status": "cancelled"}
        r = ok(shopify(client, tenant, "fulfillments/update", cancelled))
        # the unit is not shipped any more: nothing says the order arrived
        assert r["status"] == "ignored" and delivered_events(session, tenant) == []
        ok(shopify(client, tenant, "fulfillments/create", again))  # shipped anew
        ok(shopify(client, tenant, "fulfillments/update", arrived(again, "2026-03-12T10:00:00")))
        # a late redelivery of the cancelled one's creation does not bring it back to life
        ok(shopify(client, tenant, "fulfillments/create", lost))
        delivered_once(api, session, tenant, "2026-03-12T18:00:00Z")

    def test_bad_dates_are_422_naming_the_field_and_store_nothing(
        self, client: TestClient, api: TestClient, tenant: Tenant, session: Session
    ) -> None:
        ok(shopify(client, tenant, "orders/create", load("shopify/usd_tax_on_top_paid")))
        delivered = load("delivery/shopify_order_delivered")
        cases: list[tuple[str, dict[str, Any], str]] = []
        bad = copy.deepcopy(delivered)
        bad["fulfillments"][0]["updated_at"] = "last Tuesday"
        cases.append(("orders/updated", bad, "fulfillments.updated_at"))
        early = copy.deepcopy(delivered)
        early["fulfillments"][0]["updated_at"] = "2026-03-01T10:00:00-08:00"
        cases.append(("orders/updated", early, "fulfillments.updated_at"))
        event = load("delivery/shopify_event_delivered")
        cases.append(("fulfillment_events/create", {**event, "happened_at": "soon"}, "happened_at"))
        estimate = load("delivery/shopify_event_in_transit")
        estimate["estimated_delivery_at"] = "2026-03-09"  # no zone
        cases.append(("fulfillment_events/create", estimate, "estimated_delivery_at"))
        for topic, payload, field in cases:
            r = shopify(client, tenant, topic, payload)
            assert r.status_code == 422, r.text
            assert r.json()["fields"][0]["field"] == field, r.json()
        assert api.get(f"/v1/orders/{SHOPIFY_ORDER}").json()["status"] == "placed"
        assert session.query(OrderDelivery).count() == 0
        assert session.query(ShopPackage).count() == 0
        assert delivered_events(session, tenant) == []
        unknown = {**event, "order_id": 1}
        assert shopify(client, tenant, "fulfillment_events/create", unknown).status_code == 404


class TestWooCommerce:
    def test_completed_with_tracking_and_promise_is_late_once(
        self,
        client: TestClient,
        api: TestClient,
        tenant: Tenant,
        session: Session,
        clock: FrozenClock,
    ) -> None:
        clock.set(DAYS_AFTER)  # learnt as it happens: the apology gesture is still due
        processing = load("woocommerce/v3_processing_paid")
        ok(woo(client, tenant, "order.created", processing))
        completed = load("delivery/woocommerce_completed_tracked")
        for _ in range(3):
            ok(woo(client, tenant, "order.updated", completed))
        shown = api.get("/v1/orders/4101/delivery").json()
        assert shown["carrier"] == "colissimo"
        assert shown["promised_at"] == "2026-04-04T16:00:00Z"
        assert shown["delivered_at"] == "2026-04-07T14:00:00Z"
        assert shown["days_late"] == 3 and shown["gesture"] is not None
        assert len(delivered_events(session, tenant)) == 1
        assert [e.payload["days_late"] for e in late_events(session, tenant)] == [3]

    def test_tracking_before_completion_ships_and_names_the_carrier(
        self, client: TestClient, api: TestClient, tenant: Tenant, session: Session
    ) -> None:
        shipped = load("delivery/woocommerce_completed_tracked")
        shipped.update(status="processing", date_completed=None, date_completed_gmt=None)
        shipped["meta_data"] = [
            m for m in shipped["meta_data"] if m["key"] != "promised_delivery_at"
        ]
        ok(woo(client, tenant, "order.created", shipped))
        order = api.get("/v1/orders/4101").json()
        assert (order["status"], order["shipped_at"]) == ("shipped", "2026-04-03T00:00:00Z")
        assert api.get("/v1/orders/4101/delivery").json()["carrier"] == "colissimo"
        # the shop's delivery meta (Unix timestamp) delivers it, against a promise from the API
        r = api.put("/v1/orders/4101/delivery", json={"promised_at": "2026-04-08T12:00:00Z"})
        assert r.status_code == 200
        shipped["meta_data"].append({"id": 88150, "key": "delivered_at", "value": "1775642400"})
        for _ in range(2):
            ok(woo(client, tenant, "order.updated", shipped))
        shown = api.get("/v1/orders/4101/delivery").json()
        assert (shown["delivered_at"], shown["days_late"]) == ("2026-04-08T10:00:00Z", 0)
        assert len(delivered_events(session, tenant)) == 1

    def test_bad_meta_dates_are_422_naming_the_key(
        self, client: TestClient, api: TestClient, tenant: Tenant, session: Session
    ) -> None:
        base = load("delivery/woocommerce_completed_tracked")
        promised = copy.deepcopy(base)
        promised["meta_data"][2]["value"] = "next Tuesday"
        shipped = copy.deepcopy(base)
        shipped["meta_data"][1]["value"][0]["date_shipped"] = "3 April"
        early = copy.deepcopy(base)
        early["meta_data"].append({"id": 88151, "key": "delivered_at", "value": "1700000000"})
        for payload, field in [
            (promised, "meta_data.promised_delivery_at"),
            (shipped, "meta_data._wc_shipment_tracking_items.date_shipped"),
            (early, "meta_data.delivered_at"),
        ]:
            r = woo(client, tenant, "order.created", payload)
            assert r.status_code == 422, r.text
            assert r.json()["fields"][0]["field"] == field, r.json()
        assert api.get("/v1/orders/4101").status_code == 404
        assert session.query(OrderDelivery).count() == 0


PARIS = ZoneInfo("Europe/Paris")


def _sync(factory: sessionmaker[Session], tenant: Tenant, url: str, clock: FrozenClock) -> Any:
    client = prestashop.Client(url, KEY)
    try:
        return prestashop.sync(factory, tenant.caller, client, clock, tz=PARIS)
    finally:
        client.close()


class TestPrestaShop:
    def test_delivered_state_with_its_date_and_carrier(
        self,
        factory: sessionmaker[Session],
        api: TestClient,
        tenant: Tenant,
        session: Session,
        clock: FrozenClock,
    ) -> None:
        row = load("prestashop/payment_accepted")["orders"][0]
        shop = Shop()
        shop.data["carriers"] = [{"id": 1, "name": "0"}, {"id": 2, "name": "Colissimo"}]
        shop.data["orders"] = [row]
        with serve(shop) as url:
            assert _sync(factory, tenant, url, clock).rejected == 0
            # PrestaShop keeps no promise: the merchant's own system sends it
            r = api.put("/v1/orders/52/delivery", json={"promised_at": "2026-05-06T18:00:00Z"})
            assert r.status_code == 200 and r.json()["carrier"] == "Colissimo"
            delivered = {
                **row,
                "current_state": "5",
                "delivery_number": "1",
                "delivery_date": "2026-05-11 15:00:00",
                "date_upd": "2026-05-11 15:00:05",
            }
            shop.data["orders"] = [delivered]
            for _ in range(2):  # the last row of a sync is read again by the next
                assert _sync(factory, tenant, url, clock).rejected == 0
        shown = api.get("/v1/orders/52/delivery").json()
        assert (shown["carrier"], shown["delivered_at"]) == ("Colissimo", "2026-05-11T13:00:00Z")
        assert shown["days_late"] == 5
        assert len(delivered_events(session, tenant)) == 1
        assert [e.payload["carrier"] for e in late_events(session, tenant)] == ["Colissimo"]

    def test_an_unreadable_delivery_date_rejects_the_row(
        self,
        factory: sessionmaker[Session],
        api: TestClient,
        tenant: Tenant,
        session: Session,
        clock: FrozenClock,
    ) -> None:
        row = load("prestashop/payment_accepted")["orders"][0]
        shop = Shop()
        shop.data["orders"] = [{**row, "current_state": "5", "delivery_date": "2026-05-32 25:00"}]
        with serve(shop) as url:
            assert _sync(factory, tenant, url, clock).rejected == 1
        assert api.get("/v1/orders/52").status_code == 404
        assert session.query(OrderDelivery).count() == 0


class TestCsvImport:
    def test_delivery_columns(
        self,
        factory: sessionmaker[Session],
        api: TestClient,
        tenant: Tenant,
        session: Session,
        clock: FrozenClock,
        tmp_path: Path,
    ) -> None:
        promised = "2025-03-10T18:00:00+01:00"
        rows = [
            order_row(
                1,
                "c-1",
                promised_delivery_at=promised,
                delivered_at="2025-03-14T11:00:00+01:00",
                carrier="DHL",
            ),
            order_row(
                2,
                "c-2",
                promised_delivery_at=promised,
                delivered_at="2025-03-09T11:00:00+01:00",
                carrier="DHL",
            ),
            order_row(3, "c-3", promised_delivery_at="", delivered_at="", carrier=""),
            order_row(
                4, "c-4", promised_delivery_at=promised, delivered_at="the 14th", carrier="DHL"
            ),
        ]
        path = write_csv(tmp_path / "orders.csv", rows)
        rejects = tmp_path / "rejects.csv"
        opts = runner.Options("orders", rejects=rejects)
        first = runner.run(factory, tenant.caller, path, opts, clock)
        assert (first.created, first.rejected) == (3, 1)
        with rejects.open() as f:
            reason = f.read()
        assert "delivered_at" in reason and "o-4" in reason
        clock.advance(hours=1)
        again = runner.run(factory, tenant.caller, path, runner.Options("orders"), clock)
        assert (again.unchanged, again.rejected) == (3, 1)
        one = api.get("/v1/orders/o-1/delivery").json()
        assert (one["carrier"], one["days_late"]) == ("DHL", 4)
        assert api.get("/v1/orders/o-2/delivery").json()["days_late"] == 0
        assert api.get("/v1/orders/o-3/delivery").json()["promised_at"] is None
        assert sorted(e.payload["order_id"] for e in delivered_events(session, tenant)) == [
            "o-1",
            "o-2",
        ]
        assert [e.payload["order_id"] for e in late_events(session, tenant)] == ["o-1"]
        assert one["delivered_at"] == "2025-03-14T10:00:00Z"
        assert api.get("/v1/orders/o-4").status_code == 404  # refused before it was written


def test_the_import_command_records_deliveries_once(
    committed_engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    """``fidele import orders`` as the operator runs it, twice, with the delivery columns."""
    with Session(committed_engine) as s:
        tenant = make_tenant(s, clock.now())
        s.commit()
    promised = "2025-03-10 18:00:00"  # zone-less: read in --timezone
    rows = [
        order_row(1, "c-1", promised_delivery_at=promised, delivered_at="2025-03-14 11:00:00"),
        order_row(2, "c-2", promised_delivery_at=promised, delivered_at="2025-03-10 09:00:00"),
        order_row(3, "c-3", promised_delivery_at="2025-03-10T18:00:00", carrier="x" * 101),
    ]
    path = write_csv(
        tmp_path / "orders.csv", [{**r, "carrier": r.get("carrier", "GLS")} for r in rows]
    )
    url = committed_engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "FIDELE_DATABASE_URL": url, "FIDELE_SECRET_KEY": "test-secret-key"}
    cli = [str(Path(sys.executable).parent / "fidele"), "import", "orders", str(path)]
    args = ["--merchant", str(tenant.merchant_id), "--timezone", "Europe/Paris", "--json"]
    args += ["--rejects", str(tmp_path / "rejects.csv")]
    summaries = []
    for _ in range(2):
        done = subprocess.run(cli + args, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr  # some rows rejected, the others landed
        summaries.append(json.loads(done.stdout))
    assert [(x["created"], x["unchanged"], x["rejected"]) for x in summaries] == [
        (2, 0, 1),
        (0, 2, 1),
    ]
    with (tmp_path / "rejects.csv").open() as f:
        rejected = list(csv.DictReader(f))
    assert [r["id"] for r in rejected] == ["o-3"]
    assert "carrier" in rejected[0]["reject_reason"]
    with Session(committed_engine) as s:
        types = s.scalars(select(Event.type).where(Event.type.like("order.delivered%"))).all()
        judged = sorted((d.carrier, d.days_late) for d in s.scalars(select(OrderDelivery)))
    assert sorted(types) == ["order.delivered", "order.delivered", "order.delivered_late"]
    assert judged == [("GLS", 0), ("GLS", 4)]
