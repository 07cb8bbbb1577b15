"""Recorded shop payloads replayed through the real endpoints.

``payloads/<platform>/<case>.json`` is what the shop sends (Shopify and WooCommerce: a webhook
body; PrestaShop: the webservice's answers, ``{"orders": [...], "order_slips": [...]}``) and
``<case>.expect.json`` what fidele must then show: ``topic`` (webhooks), ``after`` (cases of
the same directory delivered first), ``response``, and subsets of the order, its ``lines`` and
``refunds``, the ``customer``, and ``points`` (``null``: the order earned nothing; ``base``:
the base rule's points; ``earned``: what the order holds after clawbacks). Webhooks are signed
with the merchant's secret as the shop would; PrestaShop is served over loopback HTTP and
pulled by the sync. Adding a real payload is adding these two files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fidele.ingest import prestashop
from fidele.kit.clock import FrozenClock
from tests.fixtures.factories import Tenant
from tests.ingest.conftest import signed
from tests.ingest.prestashop_server import KEY, Shop, serve

ROOT = Path(__file__).parent / "payloads"
HEADERS = {
    "shopify": ("X-Shopify-Topic", "X-Shopify-Hmac-Sha256"),
    "woocommerce": ("X-WC-Webhook-Topic", "X-WC-Webhook-Signature"),
}


def cases() -> list[Any]:
    return [
        pytest.param(
            path.parent.name,
            path.name.removesuffix(".expect.json"),
            id=path.parent.name + "/" + path.name.removesuffix(".expect.json"),
        )
        for path in sorted(ROOT.glob("*/*.expect.json"))
    ]


def read(platform: str, case: str) -> tuple[Any, dict[str, Any]]:
    folder = ROOT / platform
    payload = json.loads((folder / f"{case}.json").read_text())
    expect = json.loads((folder / f"{case}.expect.json").read_text())
    return payload, expect


def deliver(client: TestClient, tenant: Tenant, platform: str, case: str) -> Any:
    payload, expect = read(platform, case)
    body, sig = signed(tenant.webhook_secret, payload)
    topic_header, sig_header = HEADERS[platform]
    headers = {topic_header: expect["topic"], sig_header: sig, "Content-Type": "application/json"}
    return client.post(
        f"/v1/webhooks/{platform}/{tenant.merchant_id}", content=body, headers=headers
    )


def sync(
    factory: sessionmaker[Session],
    tenant: Tenant,
    clock: FrozenClock,
    shop: Shop,
    url: str,
    case: str,
) -> None:
    payload, _ = read("prestashop", case)
    shop.data.update(orders=payload.get("orders", []), order_slips=payload.get("order_slips", []))
    client = prestashop.Client(url, KEY)
    try:
        summary = prestashop.sync(
            factory, tenant.caller, client, clock, tz=ZoneInfo("Europe/Paris")
        )
    finally:
        client.close()
    assert summary.rejected == 0, summary


def assert_subset(actual: Any, expected: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing from {sorted(actual)}"
            assert_subset(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list) and expected and isinstance(expected[0], dict):
        assert len(actual) == len(expected), f"{where}: {actual!r}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_subset(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def assert_points(order: dict[str, Any], expected: dict[str, int] | None) -> None:
    loyalty = order["loyalty"]
    if expected is None:
        assert loyalty is None, f"the order earned: {loyalty}"
        return
    assert loyalty is not None, "the order earned nothing"
    base = [r["points"] for r in loyalty["rules"] if r["rule"] == "base"]
    assert base == [expected["base"]], loyalty
    if "earned" in expected:
        assert loyalty["earned"] == expected["earned"], loyalty


@pytest.mark.parametrize(("platform", "case"), cases())
def test_recorded_payload(
    platform: str,
    case: str,
    client: TestClient,
    api: TestClient,
    tenant: Tenant,
    factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    _, expect = read(platform, case)
    steps = [*expect.get("after", []), case]
    if platform == "prestashop":
        shop = Shop()
        with serve(shop) as url:
            for step in steps:
                sync(factory, tenant, clock, shop, url, step)
    else:
        for step in steps:
            r = deliver(client, tenant, platform, step)
            assert r.status_code == 200, f"{step}: {r.status_code} {r.text}"
        assert_subset(r.json(), expect.get("response", {}), "response")
    order = api.get(f"/v1/orders/{expect['order']['id']}").json()
    assert_subset(order, expect["order"], "order")
    for key in ("lines", "refunds"):
        if key in expect:
            assert_subset(order[key], expect[key], key)
    if "customer" in expect:
        customer = api.get(f"/v1/customers/{expect['customer']['id']}").json()
        assert_subset(customer, expect["customer"], "customer")
    if "points" in expect:
        assert_points(order, expect["points"])
