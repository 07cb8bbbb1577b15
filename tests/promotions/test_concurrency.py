"""Real parallel connections (threads, each with its own transaction) on both backends."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from fidele.db.session import make_sessionmaker, transaction
from fidele.errors import FideleError
from fidele.ledger import service as ledger
from fidele.promotions import coupons, giftcards, service
from fidele.promotions.models import Coupon, Redemption
from fidele.promotions.schemas import CheckoutIn, CouponIn
from tests.conftest import T0
from tests.fixtures.factories import Tenant, make_tenant
from tests.promotions.conftest import cart


def _setup(engine: Engine, fn: Callable[[Session, Tenant], Any]) -> tuple[Tenant, Any]:
    with transaction(make_sessionmaker(engine)) as s:
        tenant = make_tenant(s, T0)
        return tenant, fn(s, tenant)


def _parallel(engine: Engine, work: Callable[[Session, int], Any], n: int) -> list[Any]:
    factory = make_sessionmaker(engine)

    def run(i: int) -> Any:
        try:
            with transaction(factory) as s:
                return work(s, i)
        except FideleError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(run, range(n)))


def test_100_confirms_of_one_single_use_code_let_one_through(committed_engine: Engine) -> None:
    def setup(s: Session, t: Tenant) -> list[str]:
        coupons.create(
            s, t.caller, CouponIn(kind="amount_off", value=500, code="ONLY1", usage_limit=1), T0
        )
        body = CheckoutIn.model_validate(cart("ONLY1"))
        return [service.evaluate(s, t.caller, body, T0).id for _ in range(100)]

    tenant, sids = _setup(committed_engine, setup)
    results = _parallel(
        committed_engine,
        lambda s, i: service.confirm(s, tenant.caller, sids[i], f"o-{i}", T0).status,
        100,
    )
    assert results.count("confirmed") == 1
    assert results.count("coupon_not_redeemable") == 99
    with transaction(make_sessionmaker(committed_engine)) as s:
        assert s.query(Coupon).filter_by(display_code="ONLY1").one().used_count == 1
        assert s.query(Redemption).filter_by(kind="coupon").count() == 1


def test_parallel_replays_of_one_confirm_return_the_same_result(committed_engine: Engine) -> None:
    def setup(s: Session, t: Tenant) -> str:
        coupons.create(s, t.caller, CouponIn(kind="percent_off", value=1000, code="TENOFF"), T0)
        return service.evaluate(s, t.caller, CheckoutIn.model_validate(cart("TENOFF")), T0).id

    tenant, sid = _setup(committed_engine, setup)
    results = _parallel(
        committed_engine,
        lambda s, i: service.view(service.confirm(s, tenant.caller, sid, "o-1", T0)).model_dump(),
        20,
    )
    assert all(r == results[0] for r in results)
    with transaction(make_sessionmaker(committed_engine)) as s:
        assert s.query(Coupon).filter_by(display_code="TENOFF").one().used_count == 1


def test_gift_card_never_goes_below_zero(committed_engine: Engine) -> None:
    def setup(s: Session, t: Tenant) -> str:
        made = giftcards.issue(
            s,
            programme_id=t.programme_id,
            merchant_id=t.merchant_id,
            amount=5000,
            currency="EUR",
            now=T0,
        )
        assert made.code is not None
        return made.code

    tenant, code = _setup(committed_engine, setup)
    body = CheckoutIn.model_validate(cart(gift_cards=[{"code": code, "amount": 1000}]))

    def spend(s: Session, i: int) -> int:
        row = service.evaluate(s, tenant.caller, body, T0)
        service.confirm(s, tenant.caller, row.id, f"o-{i}", T0)
        return sum(t["amount"] for t in row.result["tenders"])

    spent = _parallel(committed_engine, spend, 20)
    assert sorted(spent, reverse=True)[:6] == [1000] * 5 + [0]
    with transaction(make_sessionmaker(committed_engine)) as s:
        assert giftcards.lookup(s, tenant.caller, code, T0).balance == 0
        assert ledger.verify(s).ok


def test_parallel_evaluates_of_one_single_use_code_hold_it_once(committed_engine: Engine) -> None:
    tenant, _ = _setup(
        committed_engine,
        lambda s, t: coupons.create(
            s, t.caller, CouponIn(kind="amount_off", value=500, code="LAST1", usage_limit=1), T0
        ),
    )

    def work(s: Session, i: int) -> list[str]:
        body = CheckoutIn.model_validate(cart("LAST1", customer=f"shopper-{i}"))
        row = service.evaluate(s, tenant.caller, body, T0)
        return [d["source"] for d in row.result["discounts"] if d["source"] == "coupon"]

    results = _parallel(committed_engine, work, 50)
    assert sum(len(r) for r in results) == 1  # exactly one cart got the discount
    with transaction(make_sessionmaker(committed_engine)) as s:
        found = s.query(Coupon).filter_by(display_code="LAST1").one()
        assert (found.used_count, found.held_count) == (0, 1)
