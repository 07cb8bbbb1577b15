"""Orders earn once paid (or at placement, by the programme's choice), a cancellation takes
their points back, and tax-inclusive prices earn on the same tax-free base as others."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from fidele.errors import Conflict
from fidele.loyalty import bulk, domain, members
from fidele.loyalty.config import default_scale
from fidele.loyalty.earning import facts_of
from fidele.loyalty.models import Lot
from fidele.loyalty.replay import replay
from fidele.loyalty.repository import LoyaltyRepository
from fidele.orders.domain import tax_free_amounts
from tests.loyalty.conftest import Shop
from tests.loyalty.test_state_machine import snapshot


def lot_of(session: Session, order_id: int) -> Lot | None:
    return LoyaltyRepository(session).order_lot(order_id)


def test_an_unpaid_order_earns_on_its_payment(shop: Shop, session: Session) -> None:
    order = shop.order("o1", payment_status="pending")
    assert lot_of(session, order.id) is None
    shop.clock.advance(days=3)
    paid_at = shop.clock.now()
    shop.status("o1", "paid")
    shop.status("o1", "paid")  # a repeated payment changes nothing
    lot = lot_of(session, order.id)
    assert lot is not None and lot.points == 100 + 50  # base + first order
    # the return window runs from the payment, the points date from the order
    assert lot.available_at == paid_at + timedelta(days=14)
    assert lot.earned_at == order.placed_at


def test_an_order_cancelled_before_payment_never_earns(shop: Shop, session: Session) -> None:
    order = shop.order("o1", payment_status="pending")
    shop.status("o1", "cancelled")
    with pytest.raises(Conflict):
        shop.status("o1", "paid")
    assert lot_of(session, order.id) is None


def test_a_programme_may_earn_at_placement(shop: Shop, session: Session) -> None:
    scale = default_scale()
    shop.rules(
        scale.model_copy(
            update={"settings": scale.settings.model_copy(update={"earn_on": "placed"})}
        )
    )
    order = shop.order("o1", payment_status="pending")
    lot = lot_of(session, order.id)
    assert lot is not None and (lot.points, lot.status) == (150, "pending")
    shop.status("o1", "cancelled")
    session.refresh(lot)
    assert lot.points - lot.clawed == 0


@pytest.mark.parametrize(
    ("earn_on", "payment", "earns"),
    [("paid", "paid", True), ("paid", "pending", False), ("placed", "pending", True)],
)
def test_earns_at_placement(earn_on: str, payment: str, earns: bool) -> None:
    assert domain.earns_at_placement(earn_on, payment) is earns


def test_tax_free_amounts() -> None:
    # tax-exclusive prices are tax-free already
    assert tax_free_amounts(
        [1000, 500], [200, None], tax=300, shipping=0, prices_include_tax=False
    ) == [1000, 500]
    # per line tax given: taken out of each line
    assert tax_free_amounts(
        [1100, 550], [100, 50], tax=160, shipping=110, prices_include_tax=True
    ) == [1000, 500]
    # only the order's tax: spread over the lines and the shipping (largest remainder)
    assert tax_free_amounts(
        [1100, 550], [None, None], tax=150, shipping=0, prices_include_tax=True
    ) == [1000, 500]


BASE = {"currency": "EUR", "placed_at": "2026-03-01T10:00:00+00:00", "shipping": 0}


def base_points(payload: dict[str, object]) -> int:
    facts = facts_of({**BASE, **payload})
    return domain.order_points(default_scale(), facts, domain.Context()).awards[0][1]


def test_every_shop_earns_on_the_same_tax_free_base() -> None:
    line = {"product_id": "p", "quantity": 1}
    exclusive = {"lines": [{**line, "unit_price": 8100}], "tax": 810, "total": 8910}
    inclusive = {
        "lines": [{**line, "unit_price": 8910, "tax": 810}],
        "tax": 810,
        "total": 8910,
        "prices_include_tax": True,
    }
    order_level = {**inclusive, "lines": [{**line, "unit_price": 8910}]}
    assert base_points(exclusive) == base_points(inclusive) == base_points(order_level) == 81


def test_the_batch_replay_leaves_unpaid_and_tax_inclusive_orders_to_the_event_path(
    shop: Shop, session: Session
) -> None:
    programme = shop.tenant.programme_id
    shop.order("o1", customer="c1")
    assert bulk.eligible(session, programme, members.scale_at(session, programme))
    shop.order("o2", customer="c2", payment_status="pending")
    shop.order(
        "o3",
        customer="c3",
        lines=[{"product_id": "p", "quantity": 1, "unit_price": 11_000, "tax": 1_000}],
        tax=1_000,
        prices_include_tax=True,
    )
    assert not bulk.eligible(session, programme, members.scale_at(session, programme))
    shop.clock.advance(days=2)
    shop.status("o2", "paid")
    before = snapshot(session, programme)
    replay(session, programme, shop.clock.now())
    assert snapshot(session, programme) == before
