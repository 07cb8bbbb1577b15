"""Storefront test helpers: a shop with customers, points and rewards; tokens signed as the
README says a shop's backend signs them (written out here, not borrowed from fidele)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fidele.kit.clock import FrozenClock
from tests.fixtures.browser import browser, demo  # noqa: F401 (the browser tests' fixtures)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(secret: str, merchant: int, customer: str, exp: int) -> str:
    payload = b64url(json.dumps({"m": merchant, "c": customer, "exp": exp}).encode())
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{b64url(mac)}"


@dataclass
class Shop:
    api: TestClient
    merchant_id: int
    secret: str
    rewards: list[int]
    now: datetime

    def token(self, customer: str = "c1", minutes: int = 10, **kw: Any) -> str:
        exp = int(self.now.timestamp()) + minutes * 60
        return sign(
            kw.get("secret", self.secret), kw.get("merchant", self.merchant_id), customer, exp
        )

    def as_customer(self, customer: str = "c1") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(customer)}"}


def credit(api: TestClient, customer: str, points: int) -> None:
    assert api.put(
        f"/v1/customers/{customer}", json={"email": f"{customer}@example.com"}
    ).is_success
    r = api.post(
        f"/v1/customers/{customer}/points/adjustments",
        json={"points": points, "reason": "gift"},
        headers={"Idempotency-Key": f"credit-{customer}-{points}"},
    )
    assert r.status_code == 201, r.text


@pytest.fixture
def shop(api: TestClient, tenant: Any, clock: FrozenClock) -> Shop:
    """c1 with 700 points, c2 with 100; rewards of 250, 600 and 1500 points; a secret."""
    credit(api, "c1", 700)
    credit(api, "c2", 100)
    ids = []
    for name, cost, kind, value in (
        ("5 off", 250, "amount_off", 500),
        ("20 off", 1500, "amount_off", 2000),
        ("10%", 600, "percent_off", 1000),
    ):
        r = api.post(
            "/v1/rewards", json={"name": name, "points_cost": cost, "kind": kind, "value": value}
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    r = api.post("/v1/storefront/secret")
    assert r.status_code == 201, r.text
    return Shop(api, tenant.merchant_id, r.json()["secret"], ids, clock.now())
