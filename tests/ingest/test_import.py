from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers.models import Customer
from fidele.events import bus
from fidele.events.models import Event
from fidele.ingest.importers import runner
from fidele.kit.clock import FrozenClock
from fidele.orders.models import Order, OrderLine
from tests.fixtures.factories import Tenant
from tests.ingest.importing import (
    SHOPIFY_COLUMNS,
    order_row,
    shopify_rows,
    woocommerce_rows,
    write_csv,
    write_parquet,
)


def count(session: Session, model: type, **where: object) -> int:
    stmt = select(func.count()).select_from(model)
    for k, v in where.items():
        stmt = stmt.where(getattr(model, k) == v)
    return session.scalar(stmt) or 0


def run(
    factory: sessionmaker[Session],
    tenant: Tenant,
    path: Path,
    clock: FrozenClock,
    kind: str = "orders",
    **opts: object,
) -> runner.Summary:
    return runner.run(factory, tenant.caller, path, runner.Options(kind, **opts), clock)


class TestOrders:
    def test_order_per_row_csv_twice_creates_once(
        self,
        factory: sessionmaker[Session],
        session: Session,
        tenant: Tenant,
        clock: FrozenClock,
        tmp_path: Path,
    ) -> None:
        path = write_csv(tmp_path / "orders.csv", [order_row(i) for i in range(25)])
        first = run(factory, tenant, path, clock, batch_size=10)
        assert first.as_dict() == {
            "read": 25,
            "created": 25,
            "updated": 0,
            "unchanged": 0,
            "rejected": 0,
            "batches": 3,
        }
        clock.advance(hours=1)
        again = run(factory, tenant, path, clock, batch_size=7)
        assert (again.created, again.unchanged, again.rejected) == (0, 25, 0)
        assert count(session, Order) == 25
        assert count(session, Customer) == 5
        assert count(session, Event, type="order.placed", source="import") == 25
        assert count(session, Event, type="customer.upserted") == 5

    @pytest.mark.parametrize("delimiter", [";", "\t"])
    def test_a_semicolon_or_tab_file_imports_as_the_comma_one(
        self,
        factory: sessionmaker[Session],
        session: Session,
        tenant: Tenant,
        clock: FrozenClock,
        tmp_path: Path,
        delimiter: str,
    ) -> None:
        """A spreadsheet saved where the comma is the decimal mark separates fields with a
        semicolon (the JSON lines hold commas): read off the header, it imports the same
        orders, which the comma file then finds unchanged."""
        rows = [order_row(i) for i in range(12)]
        path = write_csv(tmp_path / "orders.csv", rows, delimiter=delimiter)
        first = run(factory, tenant, path, clock)
        assert (first.read, first.created, first.rejected) == (12, 12, 0)
        again = run(factory, tenant, write_csv(tmp_path / "comma.csv", rows), clock)
        assert (again.created, again.unchanged, again.rejected) == (0, 12, 0)
        assert count(session, Order) == 12
        assert count(session, OrderLine) == 12

    def test_imported_order_reads_like_an_api_order(
        self,
        factory: sessionmaker[Session],
        tenant: Tenant,
        clock: FrozenClock,
        tmp_path: Path,
        api: object,
    ) -> None:
        row = order_row(1, discounts=100, total=2 * 1250 + 490 - 100)
        path = write_csv(tmp_path / "o.csv", [row])
        run(factory, tenant, path, clock)
        body = api.get("/v1/orders/o-1").json()  # type: ignore[attr-defined]
        assert body["total"] == 2890
        assert body["lines"][0]["discount"] == 100
        assert body["placed_at"] == "2025-03-02T09:00:00Z"
        # the same order posted through the API is a replay, not a conflict
        replay = {
            **{k: row[k] for k in ("id", "customer_id", "placed_at", "currency")},
            "lines": json.loads(row["lines"]),
            "shipping": 490,
            "discounts": 100,
            "tax": 0,
            "total": 2890,
        }
        r = api.post("/v1/orders", json=replay)  # type: ignore[attr-defined]
        assert r.status_code == 200, r.text

    def test_line_per_row_parquet_groups_lines(
        self,
        factory: sessionmaker[Session],
        session: Session,
        tenant: Tenant,
        clock: FrozenClock,
        tmp_path: Path,
    ) -> None:
        rows = []
        for i in range(30):
            for j in range(1 + i % 3):
                rows.append(
                    {
                        "id": f"o-{i}",
                        "customer_id": f"c-{i % 4}",
                        "placed_at": "2025-01-01T00:00:00Z",
                        "currency": "EUR",
                        "product_id": f"p{j}",
                        "quantity": 1,
                        "unit_price": 100,
                        "shipping": 0,
                        "discounts": 0,
                        "tax": 0,
                        "total": 100 * (1 + i % 3),
                    }
                )
        path = write_parquet(tmp_path / "lines.parquet", rows)
        summary = run(factory, tenant, path, clock, batch_size=4)
        assert (summary.read, summary.created, summary.rejected) == (30, 30, 0)
        assert count(session, OrderLine) == len(rows)

    def test_rejects_file_names_each_reason(
        self,
        factory: sessionmaker[Session],
        session: Session,
        tenant: Tenant,
        clock: FrozenClock,
        tmp_path: Path,
    ) -> None:
        rows = [
            order_row(0),
            order_row(1, total=1),
            order_row(2, currency="XYZ"),
            order_row(3, placed_at="2025-03-01T10:00:00"),
            order_row(4, lines="not json"),
            order_row(0, channel="pos"),
        ]
        rejects = tmp_path / "rejects.csv"
        summary = run(factory, tenant, write_csv(tmp_path / "o.csv", rows), clock, rejects=rejects)
        assert (summary.read, summary.created, summary.rejected) == (6, 1, 5)
        refused = list(csv.DictReader(rejects.open()))
        assert [r["id"] for r in refused] == ["o-1", "o-2", "o-3", "o-4", "o-0"]
        reasons = [r["reject_reason"] for r in refused]
        assert "does not add up" in reasons[0]
        assert "currency" in reasons[1]
        assert "timezone" in reasons[2]
        assert reasons[3].startswith("row 5:")
        assert "twice" in reasons[4]
        assert count(session, Order) == 1

    def test_changed_body_under_a_stored_id_is_rejected(
        self,
        factory: sessionmaker[Session],
        session: Session,
        tenant: Tenant,
        clock: FrozenClock,
        tmp_path: Path,
    ) -> None:
        run(factory, tenant, write_csv(tmp_path / "a.csv", [order_row(1)]), clock)
        changed = write_csv(tmp_path / "b.csv", [order_row(1, channel="pos")])
        summary = run(factory, tenant, changed, clock)
        assert (summary.created, summary.rejected) == (0, 1)

    def test_no_handlers_are_dispatched(
        self,
        factory: sessionmaker[Session],
        tenant: Tenant,
        clock: FrozenClock,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        def boom(*_: object) -> None:
            raise AssertionError("a historical import must not dispatch handlers")

        monkeypatch.setattr(bus, "dispatch", boom)
        summary = run(factory, tenant, write_csv(tmp_path / "o.csv", [order_row(1)]), clock)
        assert summary.created == 1

    def test_shopify_export(
        self,
        factory: sessionmaker[Session],
        tenant: Tenant,
        clock: FrozenClock,
        tmp_path: Path,
        api: object,
    ) -> None:
        summary = run(factory, tenant, write_csv(tmp_path / "s.csv", shopify_rows()), clock)
        assert (summary.read, summary.created, summary.rejected) == (2, 2, 0)
        o = api.get("/v1/orders/%231001").json()  # type: ignore[attr-defined]
        assert o["customer_id"] == "ana@example.com"
        assert [(ln["product_id"], ln["quantity"], ln["unit_price"]) for ln in o["lines"]] == [
            ("TS-1", 2, 1500),
            ("CAP-1", 1, 1500),
        ]
        assert (o["discounts"], o["shipping"], o["tax"], o["total"]) == (500, 490, 898, 5388)
        assert o["placed_at"] == "2025-03-01T09:00:00Z"
        included = api.get("/v1/orders/%231002").json()  # type: ignore[attr-defined]
        # taxes included in prices: stored, inside the total
        assert (included["tax"], included["prices_include_tax"], included["total"]) == (
            333,
            True,
            2000,
        )
        assert included["customer_id"] == "guest-1002"

    def test_shopify_export_payment_cancellation_and_refund(
        self,
        factory: sessionmaker[Session],
        tenant: Tenant,
        clock: FrozenClock,
        tmp_path: Path,
        api: object,
    ) -> None:
        # One order per financial state the export can show, each read as the API would
        # have recorded it: unpaid orders pending (they earn when paid), a voided payment or
        # a "Cancelled at" cancels, "Refunded Amount" is booked as a refund.
        def order(name: str, **cols: str) -> dict[str, str]:
            row = {
                "Name": name,
                "Email": f"{name.strip('#')}@example.com",
                "Currency": "EUR",
                "Subtotal": "20.00",
                "Shipping": "0.00",
                "Taxes": "0.00",
                "Total": "20.00",
                "Discount Amount": "0.00",
                "Created at": "2025-03-02 09:00:00 +0100",
                "Lineitem quantity": "1",
                "Lineitem name": "Socks",
                "Lineitem price": "20.00",
                "Lineitem sku": "SO-1",
                **cols,
            }
            return {
                c: row.get(c, "") for c in [*SHOPIFY_COLUMNS, "Cancelled at", "Refunded Amount"]
            }

        rows = [
            order("#2001", **{"Financial Status": "paid", "Paid at": "2025-03-03 08:00:00 +0100"}),
            order("#2002", **{"Financial Status": "pending"}),
            order("#2003", **{"Financial Status": "authorized"}),
            order("#2004", **{"Financial Status": "voided"}),
            order(
                "#2005",
                **{"Financial Status": "refunded", "Cancelled at": "2025-03-04 12:00:00 +0100"},
            ),
            order("#2006", **{"Financial Status": "partially_refunded", "Refunded Amount": "7.50"}),
        ]
        path = write_csv(tmp_path / "s.csv", rows)
        for _ in range(2):  # importing the same export again changes nothing
            summary = run(factory, tenant, path, clock)
            assert summary.rejected == 0
            seen = {
                name: api.get(f"/v1/orders/%23{name}").json()  # type: ignore[attr-defined]
                for name in ("2001", "2002", "2003", "2004", "2005", "2006")
            }
            got = {
                n: (o["status"], o["payment_status"], o["refunded_total"]) for n, o in seen.items()
            }
            assert got == {
                "2001": ("placed", "paid", 0),
                "2002": ("placed", "pending", 0),
                "2003": ("placed", "pending", 0),
                "2004": ("cancelled", "pending", 0),
                "2005": ("cancelled", "paid", 0),
                "2006": ("placed", "paid", 750),
            }
            assert seen["2001"]["paid_at"] == "2025-03-03T07:00:00Z"
            assert seen["2005"]["cancelled_at"] == "2025-03-04T11:00:00Z"
        assert summary.unchanged == 6

    def test_woocommerce_export_with_shop_timezone(
        self,
        factory: sessionmaker[Session],
        tenant: Tenant,
        clock: FrozenClock,
        tmp_path: Path,
        api: object,
    ) -> None:
        path = write_csv(tmp_path / "w.csv", woocommerce_rows())
        summary = run(factory, tenant, path, clock, timezone="Europe/Paris")
        assert summary.created == 1
        o = api.get("/v1/orders/727").json()  # type: ignore[attr-defined]
        assert o["placed_at"] == "2025-03-05T09:00:00Z"
        assert (o["total"], o["tax"], o["discounts"]) == (3635, 135, 500)

    def test_woocommerce_export_without_timezone_is_rejected(
        self, factory: sessionmaker[Session], tenant: Tenant, clock: FrozenClock, tmp_path: Path
    ) -> None:
        summary = run(factory, tenant, write_csv(tmp_path / "w.csv", woocommerce_rows()), clock)
        assert summary.rejected == 1


class TestCustomers:
    def test_created_updated_unchanged_rejected(
        self,
        factory: sessionmaker[Session],
        tenant: Tenant,
        clock: FrozenClock,
        tmp_path: Path,
        api: object,
    ) -> None:
        rows = [
            {
                "id": "c1",
                "email": "a@example.com",
                "first_name": "Ana",
                "email_marketing": "true",
                "attributes": '{"vip": true}',
            },
            {"id": "c2", "email": "b@example.com", "country": "fr"},
            {"id": "c3", "email": "not-an-email"},
        ]
        first = run(factory, tenant, write_csv(tmp_path / "c.csv", rows), clock, "customers")
        assert (first.created, first.updated, first.rejected) == (2, 0, 1)
        clock.advance(days=1)
        rows[1]["country"] = "BE"
        again = run(factory, tenant, write_csv(tmp_path / "c2.csv", rows), clock, "customers")
        assert (again.created, again.updated, again.unchanged, again.rejected) == (0, 1, 1, 1)
        c1 = api.get("/v1/customers/c1").json()  # type: ignore[attr-defined]
        assert c1["consent"]["email_marketing"] is True
        assert c1["attributes"] == {"vip": True}
