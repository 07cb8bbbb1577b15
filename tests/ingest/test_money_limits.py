"""Money out of range or malformed, on every way in: a 422 naming the field (webhooks, API) or a
rejected row while the others land (``fidele import orders``), never a 500 or a traceback."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from fidele.errors import InvalidInput
from fidele.events.models import Event
from fidele.ingest.amounts import to_minor
from fidele.kit.clock import FrozenClock
from fidele.kit.money import MAX_MINOR
from fidele.orders.models import Order
from tests.fixtures.factories import SECRET, Tenant, make_tenant, order_body
from tests.ingest.conftest import load
from tests.ingest.importing import shopify_rows, write_csv
from tests.ingest.test_webhooks import shopify, woo

HUGE = ["1e30", "1e26", "-1e30", "1E+999999999", "10000000000000.01", "9" * 400]
MALFORMED = ["abc", "NaN", "-Infinity", "sNaN", "1,5"]


class TestToMinor:
    @pytest.mark.parametrize("value", HUGE)
    def test_out_of_range_names_the_field(self, value: str) -> None:
        with pytest.raises(InvalidInput) as exc:
            to_minor(value, "EUR", field="total_price")
        assert exc.value.extra["fields"][0]["field"] == "total_price"
        assert "out of range" in exc.value.detail

    @pytest.mark.parametrize("value", MALFORMED)
    def test_malformed_names_the_field(self, value: str) -> None:
        with pytest.raises(InvalidInput) as exc:
            to_minor(value, "EUR", field="total")
        assert exc.value.extra["fields"] == [
            {"field": "total", "message": f"{value!r} is not a decimal amount"}
        ]

    @pytest.mark.parametrize(
        ("value", "currency", "minor"),
        [
            ("10000000000000", "EUR", MAX_MINOR),
            ("1000000000000000", "JPY", MAX_MINOR),
            ("-10000000000000", "EUR", -MAX_MINOR),
            ("1e2", "EUR", 10_000),
            ("1e-30", "EUR", 0),
            ("1.005", "EUR", 101),
            # one rounding from the exact input: not 1.005 first, then 1.01
            ("1.00499999999999999999999999999999999", "EUR", 100),
        ],
    )
    def test_limits_and_rounding(self, value: str, currency: str, minor: int) -> None:
        assert to_minor(value, currency) == minor


def _fields(response: Any) -> list[str]:
    return [f["field"] for f in response.json().get("fields", [])]


def _events(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Event)) or 0


class TestWebhooks:
    @pytest.mark.parametrize("value", ["1e30", "1e26", "abc", "NaN", 1e30])
    def test_shopify_total_price(
        self, client: TestClient, tenant: Tenant, session: Session, value: Any
    ) -> None:
        payload = load("shopify_order_create")
        payload["total_price"] = value
        before = _events(session)
        r = shopify(client, tenant, "orders/create", payload)
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "validation_error"
        assert _fields(r) == ["total_price"]
        assert _events(session) == before

    @pytest.mark.parametrize(
        ("path", "field"),
        [
            (("line_items", 0, "price"), "line_items.price"),
            (("total_discounts",), "total_discounts"),
            (("total_tax",), "total_tax"),
            (("total_shipping_price_set", "shop_money", "amount"), "total_shipping_price_set"),
        ],
    )
    def test_shopify_other_amounts(
        self, client: TestClient, tenant: Tenant, path: tuple[Any, ...], field: str
    ) -> None:
        payload = load("shopify_order_create")
        payload.pop("shipping_lines", None)
        target = payload
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = "1e30"
        r = shopify(client, tenant, "orders/create", payload)
        assert r.status_code == 422, r.text
        assert _fields(r) == [field]

    @pytest.mark.parametrize(
        ("key", "value"),
        [("total", "1e30"), ("total", "abc"), ("shipping_total", "1e26"), ("total_tax", "-1e30")],
    )
    def test_woocommerce(
        self, client: TestClient, tenant: Tenant, session: Session, key: str, value: str
    ) -> None:
        payload = load("woocommerce_order_created")
        payload[key] = value
        before = _events(session)
        r = woo(client, tenant, "order.created", payload)
        assert r.status_code == 422, r.text
        assert _fields(r) == [key]
        assert _events(session) == before

    def test_in_range_still_lands(self, client: TestClient, tenant: Tenant) -> None:
        r = shopify(client, tenant, "orders/create", load("shopify_order_create"))
        assert r.status_code == 200, r.text


class TestOrdersApi:
    @pytest.mark.parametrize("value", [10**30, 2**63, 2**64 + 1, MAX_MINOR + 1, -1])
    @pytest.mark.parametrize("field", ["total", "shipping", "tax", "discounts"])
    def test_huge_int_is_422_naming_the_field(
        self, api: TestClient, field: str, value: int
    ) -> None:
        body = order_body()
        body[field] = value
        r = api.post("/v1/orders", json=body)
        assert r.status_code == 422, r.text
        assert f"body.{field}" in _fields(r)

    def test_huge_unit_price(self, api: TestClient) -> None:
        body = order_body(lines=[{"product_id": "p", "quantity": 1, "unit_price": 10**30}])
        r = api.post("/v1/orders", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["fields"][0]["field"].startswith("body.lines")
        assert "0.unit_price" in r.json()["fields"][0]["message"]

    def test_huge_attribute(self, api: TestClient) -> None:
        r = api.post("/v1/orders", json=order_body(attributes={"a": [1, {"b": 2**70}]}))
        assert r.status_code == 422, r.text
        assert _fields(r) == ["body.attributes"]
        assert "(at a.1.b)" in r.json()["fields"][0]["message"]


class TestSimulateApi:
    @pytest.mark.parametrize("field", ["total", "shipping", "discounts", "tax"])
    def test_huge_int_is_422_naming_the_field(self, api: TestClient, field: str) -> None:
        order = order_body(placed_at="2026-06-01T12:00:00Z")
        order[field] = 10**18
        r = api.post("/v1/loyalty/simulate", json={"order": order})
        assert r.status_code == 422, r.text
        assert f"body.order.{field}" in _fields(r)


def _shopify_order(name: str, total: str, price: str = "20.00") -> dict[str, Any]:
    row = dict(shopify_rows()[2])  # a one-line order, taxes included
    row.update({"Name": name, "Email": f"{name[1:]}@example.com", "Total": total})
    row.update({"Subtotal": price, "Lineitem price": price, "Id": name[1:]})
    return row


def test_cli_import_rejects_bad_money_and_lands_the_rest(
    committed_engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    """The installed ``fidele import orders`` on a Shopify export with a ``1e30`` and an ``abc``
    total among good orders, in one batch."""
    with Session(committed_engine) as s:
        tenant = make_tenant(s, clock.now())
        s.commit()
    rows = [
        _shopify_order("#2001", "20.00"),
        _shopify_order("#2002", "1e30"),
        _shopify_order("#2003", "20.00"),
        _shopify_order("#2004", "abc"),
        _shopify_order("#2005", "1e26", price="1e26"),
        _shopify_order("#2006", "20.00"),
    ]
    path = write_csv(tmp_path / "orders.csv", rows)
    rejects = tmp_path / "rejects.csv"
    env = {
        **os.environ,
        "FIDELE_DATABASE_URL": committed_engine.url.render_as_string(hide_password=False),
        "FIDELE_SECRET_KEY": SECRET,
    }
    cli = Path(sys.executable).parent / "fidele"
    args = ["import", "orders", str(path), "--merchant", str(tenant.merchant_id)]
    done = subprocess.run(
        [str(cli), *args, "--rejects", str(rejects), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    assert (summary["read"], summary["created"], summary["rejected"]) == (6, 3, 3)
    assert summary["rejects_file"] == str(rejects)
    refused = {r["Name"]: r["reject_reason"] for r in csv.DictReader(rejects.open())}
    assert set(refused) == {"#2002", "#2004", "#2005"}
    assert refused["#2002"].startswith("row 2: Total: ") and "out of range" in refused["#2002"]
    assert refused["#2004"] == "row 4: Total: 'abc' is not a decimal amount"
    assert refused["#2005"].startswith("row 5: Lineitem price: ")
    with Session(committed_engine) as s:
        stored = set(s.scalars(select(Order.external_id)))
    assert stored == {"#2001", "#2003", "#2006"}
    again = subprocess.run(
        [str(cli), *args, "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 2, again.stderr
    assert json.loads(again.stdout)["unchanged"] == 3
