"""Promotions test helpers: a fake loyalty port, carts, and a client using the fake."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fidele.errors import Conflict


class FakeInsufficientPoints(Conflict):
    code = "insufficient_points"


@dataclass
class FakeLoyalty:
    """In-memory loyalty: points per customer id, a tier, a membership, reward vouchers."""

    points: dict[int, int] = field(default_factory=dict)
    tier: Any = None
    membership: Any = None
    vouchers: dict[str, Any] = field(default_factory=dict)
    per_100: int = 100  # 100 points = 1.00 EUR
    earn_bp: int = 10_000  # 1 point per minor unit... of merchandise net of discounts, /100
    burns: dict[str, tuple[int, int]] = field(default_factory=dict)
    awards: dict[str, tuple[int, int]] = field(default_factory=dict)
    installed: bool = True

    def available_points(self, session: Any, customer: Any, now: datetime) -> int:
        return self.points.get(customer.id, 0)

    def burn_points(
        self,
        session: Any,
        *,
        customer: Any,
        points: int,
        source_key: str,
        now: datetime,
        merchant_id: int,
    ) -> None:
        if source_key in self.burns:
            return
        if self.points.get(customer.id, 0) < points:
            raise FakeInsufficientPoints("not enough points")
        self.points[customer.id] -= points
        self.burns[source_key] = (customer.id, points)

    def refund_burn(self, session: Any, *, source_key: str, now: datetime) -> None:
        cid, pts = self.burns.pop(source_key)
        self.points[cid] += pts

    def point_value(self, session: Any, programme_id: int) -> tuple[int, str]:
        return self.per_100, "EUR"

    def customer_tier(self, session: Any, customer: Any, now: datetime) -> Any:
        return self.tier

    def active_membership(self, session: Any, customer: Any, now: datetime) -> Any:
        return self.membership

    def simulate_order_points(
        self,
        session: Any,
        caller: Any,
        *,
        customer: Any,
        lines: Any,
        shipping: int,
        discounts: int,
        currency: str,
        now: datetime,
    ) -> int:
        merch = sum(ln["quantity"] * ln["unit_price"] for ln in lines) - discounts
        return max(0, merch) // 100

    def find_voucher(self, session: Any, programme_id: int, code: str) -> Any:
        return self.vouchers.get(code.upper())

    def voucher_owner(self, session: Any, voucher: Any) -> int | None:
        return getattr(voucher, "customer_id", None)

    def use_voucher(self, session: Any, voucher: Any, *, order_ref: str, now: datetime) -> None:
        if voucher.status == "used" and voucher.order_ref != order_ref:
            raise Conflict("voucher used elsewhere")
        voucher.status, voucher.order_ref = "used", order_ref

    def release_voucher(self, session: Any, voucher: Any, *, order_ref: str, now: datetime) -> None:
        voucher.status, voucher.order_ref = "active", None

    def award_points(
        self, session: Any, *, customer: Any, points: int, reason: str, key: str, now: datetime
    ) -> None:
        if key not in self.awards:
            self.awards[key] = (customer.id, points)
            self.points[customer.id] = self.points.get(customer.id, 0) + points


def voucher(code: str, kind: str = "amount_off", value: int = 500) -> Any:
    return SimpleNamespace(code=code, kind=kind, value=value, status="active", order_ref=None)


def tier(name: str = "Gold", free_shipping: bool = True) -> Any:
    return SimpleNamespace(
        name=name,
        rank=2,
        free_shipping=free_shipping,
        multiplier_bp=10_000,
        exclusive_rewards=False,
    )


@pytest.fixture
def loyalty() -> FakeLoyalty:
    return FakeLoyalty()


@pytest.fixture
def lapi(api: TestClient, loyalty: FakeLoyalty) -> TestClient:
    """The authenticated client, with the fake loyalty port installed."""
    api.app.state.loyalty = loyalty  # type: ignore[attr-defined]
    return api


def cart(*codes: str, customer: str = "c1", shipping: int = 500, **extra: Any) -> dict[str, Any]:
    lines = extra.pop("lines", None) or [
        {
            "product_id": "p1",
            "name": "Shirt",
            "category": "apparel",
            "quantity": 2,
            "unit_price": 2000,
        },
        {"product_id": "p2", "name": "Mug", "category": "home", "quantity": 1, "unit_price": 1000},
    ]
    return {
        "customer_id": customer,
        "currency": "EUR",
        "lines": lines,
        "shipping": shipping,
        "codes": list(codes),
        **extra,
    }


def by_source(body: dict[str, Any], source: str) -> list[dict[str, Any]]:
    return [d for d in body["discounts"] if d["source"] == source]
