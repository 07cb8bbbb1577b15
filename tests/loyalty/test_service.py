from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers import service as customers
from fidele.customers.schemas import CustomerIn
from fidele.errors import InvalidInput
from fidele.events import service as events
from fidele.events.repository import EventRepository
from fidele.ledger import service as ledger
from fidele.loyalty import audit, members, rewards, service
from fidele.loyalty.config import default_scale
from fidele.loyalty.errors import InsufficientPoints, RewardUnavailable, VoucherNotUsable
from fidele.loyalty.models import Counter, Refusal
from fidele.loyalty.replay import catch_up_all, replay
from tests.fixtures.factories import make_tenant
from tests.loyalty.conftest import Shop

PLAIN = {
    "settings": {"points_per_unit": 1, "pending_days": 14, "expiry_months": 12},
    "tiers": {"levels": []},
}


def give(shop: Shop, points: int, customer: str = "c1", key: str = "k") -> None:
    rewards.adjust(
        shop.session, shop.caller, shop.customer(customer), points, "test", key, shop.clock.now()
    )


def reward(shop: Shop, cost: int, **kw: object):  # type: ignore[no-untyped-def]
    data = {
        "name": "Voucher",
        "points_cost": cost,
        "kind": "amount_off",
        "value": 500,
        "stock": None,
        "per_customer_limit": None,
        "tiers": [],
        "members_only": False,
        "starts_at": None,
        "ends_at": None,
        **kw,
    }
    return rewards.create_reward(shop.session, shop.caller, data, shop.clock.now())


class TestEarning:
    def test_default_scale_installed_and_order_points_pending(self, shop: Shop) -> None:
        assert members.scale_at(shop.session, shop.tenant.programme_id) == default_scale()
        shop.order("o1", amount=12_345)
        s = shop.summary()
        assert (s["pending"], s["available"]) == (123 + 50, 0)  # base + first-order bonus

    def test_released_after_return_window_by_job(self, shop: Shop) -> None:
        shop.rules(PLAIN)
        shop.order("o1", amount=10_000)
        shop.clock.advance(days=13)
        catch_up_all(shop.session, shop.clock.now())
        assert shop.summary()["pending"] == 100
        shop.clock.advance(days=1)
        catch_up_all(shop.session, shop.clock.now())
        assert (shop.summary()["pending"], shop.summary()["available"]) == (0, 100)

    def test_delivery_restarts_the_window(self, shop: Shop) -> None:
        shop.rules(PLAIN)
        shop.order("o1")
        shop.clock.advance(days=10)
        shop.status("o1", "delivered")
        shop.clock.advance(days=5)
        catch_up_all(shop.session, shop.clock.now())
        assert shop.summary()["pending"] == 100
        shop.clock.advance(days=9)
        catch_up_all(shop.session, shop.clock.now())
        assert shop.summary()["available"] == 100

    def test_cancelled_order_never_earns(self, shop: Shop) -> None:
        shop.rules(PLAIN)
        shop.order("o1")
        shop.status("o1", "cancelled")
        s = shop.summary()
        assert (s["pending"], s["available"], s["lifetime_earned"]) == (0, 0, 0)

    def test_budget_stops_awarding_and_records_refusal(self, shop: Shop) -> None:
        shop.rules(
            {
                **PLAIN,
                "rules": [
                    {
                        "id": "double",
                        "type": "multiplier",
                        "multiplier_bp": 20_000,
                        "budget": {"period": "month", "total": 150},
                    }
                ],
            }
        )
        shop.order("o1", amount=10_000)  # base 100 + double 100
        shop.order("o2", customer="c2", amount=10_000)  # double refused: 100 + 100 > 150
        assert shop.summary("c1")["pending"] == 200
        assert shop.summary("c2")["pending"] == 100
        refusals = shop.session.query(Refusal).all()
        assert [(r.rule_id, r.points) for r in refusals] == [("double", 100)]
        assert audit.verify(shop.session) == []  # the budget's counters match the awards
        shop.session.execute(
            update(Counter).where(Counter.key.like("budget:double:%:all")).values(value=40)
        )
        drift = audit.verify(shop.session)
        assert [(d.figure, d.stored, d.expected) for d in drift] == [("counter", 40, 100)]
        assert "budget:double:2026-06:all" in drift[0].subject

    def test_action_caps(self, shop: Shop) -> None:
        shop.order("o1")  # creates c1
        for i in range(5):
            events.record(
                shop.session,
                shop.caller,
                type="review_posted",
                occurred_at=shop.clock.now(),
                now=shop.clock.now(),
                source="api",
                payload={},
                customer_id=shop.customer().id,
                idempotency_key=f"r{i}",
            )
        assert shop.summary()["available"] == 3 * 2  # default: 2 points, 3 per day
        shop.clock.advance(days=1)
        events.record(
            shop.session,
            shop.caller,
            type="review_posted",
            occurred_at=shop.clock.now(),
            now=shop.clock.now(),
            source="api",
            payload={},
            customer_id=shop.customer().id,
            idempotency_key="r-next",
        )
        assert shop.summary()["available"] == 8
        assert audit.verify(shop.session) == []  # caps count the reviews that earned

    def test_tier_upgrade_at_once_and_multiplier_applies(self, shop: Shop) -> None:
        shop.order("o1", amount=50_000)  # 500 + 50 → Silver
        assert shop.summary()["tier"]["name"] == "Silver"
        lot_points = shop.order("o2", amount=10_000)
        view = service.customer_tier(shop.session, shop.customer(), shop.clock.now())
        assert view is not None
        assert (view.name, view.multiplier_bp) == ("Silver", 12_500)
        assert lot_points is not None
        assert shop.summary()["pending"] == 550 + 125

    def test_tier_downgrade_only_after_review_and_grace(self, shop: Shop) -> None:
        shop.order("o1", amount=50_000)
        shop.clock.advance(days=366)
        catch_up_all(shop.session, shop.clock.now())
        assert shop.summary()["tier"]["name"] == "Silver"  # in grace
        shop.clock.advance(days=31)
        catch_up_all(shop.session, shop.clock.now())
        assert shop.summary()["tier"]["name"] == "Bronze"


class TestRefunds:
    def test_partial_refund_claws_pending_in_proportion(self, shop: Shop) -> None:
        shop.rules(PLAIN)
        shop.order("o1", amount=10_000)
        shop.refund("o1", "r1", 2_500)
        assert shop.summary()["pending"] == 75
        shop.refund("o1", "r2")
        assert shop.summary()["pending"] == 0

    def test_spent_points_become_debt_settled_from_future_earnings(self, shop: Shop) -> None:
        shop.rules(PLAIN)
        shop.order("o1", amount=10_000)
        shop.clock.advance(days=15)
        rw = reward(shop, 80)
        rewards.redeem(shop.session, shop.caller, shop.customer(), rw.id, "x", shop.clock.now())
        shop.refund("o1", "r1")  # 20 from available, 80 spent → debt
        s = shop.summary()
        assert (s["available"], s["debt"]) == (0, 80)
        shop.order("o2", amount=5_000)
        shop.clock.advance(days=15)
        catch_up_all(shop.session, shop.clock.now())
        s = shop.summary()
        assert (s["available"], s["debt"]) == (0, 30)
        assert ledger.verify(shop.session).ok


class TestExpiry:
    def test_lots_expire_first_expiring_first(self, shop: Shop) -> None:
        shop.rules({**PLAIN, "settings": {**PLAIN["settings"], "pending_days": 0}})
        shop.order("o1", amount=10_000)
        shop.clock.advance(days=100)
        shop.order("o2", amount=5_000)
        rw = reward(shop, 120)
        rewards.redeem(shop.session, shop.caller, shop.customer(), rw.id, "x", shop.clock.now())
        # 100 from o1's lot (expires first), 20 from o2's: 30 left, all from o2
        s = shop.summary()
        assert s["available"] == 30
        shop.clock.advance(days=300)  # o1's lot expired, but it was already spent
        catch_up_all(shop.session, shop.clock.now())
        assert shop.summary()["available"] == 30
        shop.clock.advance(days=70)  # o2's lot expires
        catch_up_all(shop.session, shop.clock.now())
        assert shop.summary()["available"] == 0
        assert ledger.verify(shop.session).ok

    def test_inactivity_expires_everything(self, shop: Shop) -> None:
        shop.rules(
            {
                **PLAIN,
                "settings": {"pending_days": 0, "expiry_months": None, "inactivity_months": 6},
            }
        )
        shop.order("o1")
        shop.clock.advance(days=170)
        catch_up_all(shop.session, shop.clock.now(), everyone=True)
        assert shop.summary()["available"] == 100
        shop.clock.advance(days=20)
        catch_up_all(shop.session, shop.clock.now(), everyone=True)
        assert shop.summary()["available"] == 0

    def test_expiring_buckets(self, shop: Shop) -> None:
        shop.rules({**PLAIN, "settings": {"pending_days": 0, "expiry_months": 2}})
        shop.order("o1")
        shop.clock.advance(days=20)
        assert shop.summary()["expiring"] == {"30": 0, "60": 100, "90": 100}


class TestRedemption:
    def test_redeem_issues_voucher_and_cancel_restores_lots(self, shop: Shop) -> None:
        give(shop, 100)
        rw = reward(shop, 60)
        row, created = rewards.redeem(
            shop.session, shop.caller, shop.customer(), rw.id, "k1", shop.clock.now()
        )
        again, created2 = rewards.redeem(
            shop.session, shop.caller, shop.customer(), rw.id, "k1", shop.clock.now()
        )
        assert (created, created2, again.id) == (True, False, row.id)
        assert shop.summary()["available"] == 40
        rewards.cancel(shop.session, shop.caller, row.id, shop.clock.now())
        assert shop.summary()["available"] == 100
        assert shop.summary()["lifetime_spent"] == 0

    def test_insufficient_points_carries_balance(self, shop: Shop) -> None:
        give(shop, 10)
        rw = reward(shop, 60)
        with pytest.raises(InsufficientPoints) as err:
            rewards.redeem(shop.session, shop.caller, shop.customer(), rw.id, "k", shop.clock.now())
        assert err.value.extra["balance"] == 10

    @pytest.mark.parametrize(
        ("kw", "reason"),
        [
            ({"stock": 1}, "out_of_stock"),
            ({"per_customer_limit": 1}, "limit_reached"),
            ({"tiers": ["Gold"]}, "tier"),
            ({"members_only": True}, "membership"),
        ],
    )
    def test_refusals(self, shop: Shop, kw: dict[str, object], reason: str) -> None:
        give(shop, 100)
        rw = reward(shop, 10, **kw)
        first = reason in ("out_of_stock", "limit_reached")
        if first:
            rewards.redeem(shop.session, shop.caller, shop.customer(), rw.id, "a", shop.clock.now())
        with pytest.raises(RewardUnavailable) as err:
            rewards.redeem(shop.session, shop.caller, shop.customer(), rw.id, "b", shop.clock.now())
        assert err.value.extra["reason"] == reason

    def test_vouchers_used_once_released_and_cancel_refused_when_used(self, shop: Shop) -> None:
        give(shop, 100)
        row, _ = rewards.redeem(
            shop.session, shop.caller, shop.customer(), reward(shop, 10).id, "k", shop.clock.now()
        )
        code = rewards.pretty(rewards.LoyaltyRepository(shop.session).voucher_of(row.id).code)
        voucher = service.find_voucher(shop.session, shop.tenant.programme_id, code.lower())
        assert voucher is not None
        assert (
            service.find_voucher(shop.session, shop.tenant.programme_id, "RW-0000-0000-0001")
            is None
        )
        service.use_voucher(shop.session, voucher, order_ref="o1", now=shop.clock.now())
        service.use_voucher(shop.session, voucher, order_ref="o1", now=shop.clock.now())
        with pytest.raises(VoucherNotUsable):
            service.use_voucher(shop.session, voucher, order_ref="o2", now=shop.clock.now())
        with pytest.raises(VoucherNotUsable):
            rewards.cancel(shop.session, shop.caller, row.id, shop.clock.now())
        service.release_voucher(shop.session, voucher, order_ref="o1", now=shop.clock.now())
        assert voucher.status == "issued"

    def test_voucher_use_and_release_are_events_a_replay_reproduces(self, shop: Shop) -> None:
        give(shop, 100)
        cost = reward(shop, 10).id
        rows = [
            rewards.redeem(shop.session, shop.caller, shop.customer(), cost, k, shop.clock.now())
            for k in ("a", "b", "c", "d")
        ]
        repo = rewards.LoyaltyRepository(shop.session)
        used, released, reused, cancelled = (repo.voucher_of(r.id) for r, _ in rows)
        now = shop.clock.now
        service.use_voucher(shop.session, used, order_ref="o1", now=now())
        service.use_voucher(shop.session, released, order_ref="o2", now=now())
        shop.clock.advance(hours=1)
        service.release_voucher(shop.session, released, order_ref="o2", now=now())
        service.use_voucher(shop.session, reused, order_ref="o3", now=now())
        service.release_voucher(shop.session, reused, order_ref="o3", now=now())
        service.use_voucher(shop.session, reused, order_ref="o3", now=now())
        rewards.cancel(shop.session, shop.caller, rows[3][0].id, now())
        log = EventRepository(shop.session).for_customer(shop.customer().id)
        types = [e.type for e in log]
        assert types.count("loyalty.voucher_used") == 4
        assert types.count("loyalty.voucher_released") == 2

        def states() -> list[tuple[object, ...]]:
            vouchers = (repo.voucher_of(r.id) for r, _ in rows)
            return [(v.code, v.status, v.order_ref, v.used_at) for v in vouchers if v]

        before = states()
        assert [s[1:3] for s in before] == [
            ("used", "o1"),
            ("issued", None),
            ("used", "o3"),
            ("cancelled", None),
        ]
        replay(shop.session, shop.tenant.programme_id, now())
        assert states() == before


class TestInterfaces:
    def test_burn_and_refund_burn(self, shop: Shop) -> None:
        give(shop, 100)
        c = shop.customer()
        kw = {"now": shop.clock.now(), "merchant_id": shop.tenant.merchant_id}
        service.burn_points(shop.session, customer=c, points=30, source_key="chk-1", **kw)
        service.burn_points(shop.session, customer=c, points=30, source_key="chk-1", **kw)
        assert service.available_points(shop.session, c) == 70
        with pytest.raises(InsufficientPoints):
            service.burn_points(shop.session, customer=c, points=71, source_key="chk-2", **kw)
        service.refund_burn(shop.session, source_key="chk-1", now=shop.clock.now())
        service.refund_burn(shop.session, source_key="chk-1", now=shop.clock.now())
        assert service.available_points(shop.session, c) == 100

    def test_point_value_and_simulate(self, shop: Shop) -> None:
        assert service.point_value(shop.session, shop.tenant.programme_id) == (500, "EUR")
        shop.order("o0")
        pts = service.simulate_order_points(
            shop.session,
            shop.caller,
            customer=shop.customer(),
            lines=[{"product_id": "p", "category": None, "quantity": 2, "unit_price": 1000}],
            shipping=500,
            discounts=0,
            currency="EUR",
            now=shop.clock.now(),
        )
        assert pts == 20

    def test_adjustment_debit_never_below_zero(self, shop: Shop) -> None:
        give(shop, 10)
        with pytest.raises(InsufficientPoints):
            give(shop, -11, key="k2")
        give(shop, -10, key="k3")
        assert shop.summary()["available"] == 0
        with pytest.raises(InvalidInput):
            give(shop, 0, key="k4")

    def test_membership_from_billing_events(self, shop: Shop) -> None:
        shop.rules(
            {
                **PLAIN,
                "plans": [
                    {
                        "code": "plus",
                        "name": "Plus",
                        "price": 4900,
                        "multiplier_bp": 20_000,
                        "free_shipping": True,
                    }
                ],
            }
        )
        shop.order("o0")
        cid = shop.customer().id

        def billing(kind: str, key: str) -> None:
            events.record(
                shop.session,
                shop.caller,
                type=f"membership.{kind}",
                occurred_at=shop.clock.now(),
                now=shop.clock.now(),
                source="api",
                payload={"properties": {"plan": "plus"}},
                customer_id=cid,
                idempotency_key=key,
            )

        billing("activated", "m1")
        view = service.active_membership(shop.session, shop.customer(), shop.clock.now())
        assert view is not None
        assert (view.plan, view.free_shipping) == ("plus", True)
        shop.order("o1", amount=10_000)
        assert shop.summary()["pending"] == 100 + 200
        billing("cancelled", "m2")
        assert service.active_membership(shop.session, shop.customer(), shop.clock.now())
        shop.clock.advance(days=366)
        assert service.active_membership(shop.session, shop.customer(), shop.clock.now()) is None


class TestCoalition:
    def test_points_follow_the_person_and_settlement_sums_to_zero(
        self, shop: Shop, session: Session
    ) -> None:
        shop.rules({**PLAIN, "settings": {"pending_days": 0}})
        other = make_tenant(
            session, shop.clock.now(), name="Shop B", programme_id=shop.tenant.programme_id
        )
        b = Shop(session, other, shop.clock)
        customers.upsert(
            session, shop.caller, "a1", CustomerIn(email="Ann@x.org"), shop.clock.now()
        )
        customers.upsert(
            session, other.caller, "b1", CustomerIn(email="ann@x.org"), shop.clock.now()
        )
        shop.order("o1", customer="a1", amount=10_000)
        assert b.summary("b1")["available"] == 100
        rw = reward(b, 40)
        rewards.redeem(session, other.caller, b.customer("b1"), rw.id, "k", shop.clock.now())
        from fidele.loyalty import reports

        start = shop.clock.now() - timedelta(days=1)
        data = reports.settlement(
            session, shop.tenant.programme_id, start, shop.clock.now() + timedelta(days=1)
        )
        nets = {line["merchant_id"]: line["net"] for line in data["lines"]}
        assert nets == {shop.tenant.merchant_id: -200, other.merchant_id: 200}
        assert data["total"] == 0
        liab = reports.liability(session, shop.tenant.programme_id, shop.clock.now())
        assert (liab["points"], liab["value"]) == (60, 300)


class TestJobsAndEvents:
    def test_expiring_soon_and_tier_changed_are_events(self, shop: Shop) -> None:
        from fidele.events.models import Event
        from fidele.loyalty import tasks
        from fidele.worker.registry import load_jobs

        assert {
            "loyalty.catch_up",
            "loyalty.daily",
            "loyalty.expiring_soon",
            "loyalty.memberships",
        } <= set(load_jobs())
        shop.rules(
            {
                **PLAIN,
                "settings": {"pending_days": 0, "expiry_months": 1},
                "tiers": default_scale().tiers.model_dump(),
            }
        )
        shop.order("o1", amount=60_000)
        shop.clock.advance(days=10)
        assert tasks.expiring_soon(shop.session, shop.clock.now()) == 1
        assert tasks.expiring_soon(shop.session, shop.clock.now()) == 1  # same lot: deduped
        types = [e.type for e in shop.session.query(Event).order_by(Event.id)]
        assert types.count("loyalty.points_expiring") == 1
        assert types.count("loyalty.tier_changed") == 1
        shop.session.flush()  # the job works in its own short transactions (savepoints here)
        jobs = sessionmaker(
            bind=shop.session.connection(),
            join_transaction_mode="create_savepoint",
            expire_on_commit=False,
        )
        assert tasks.catch_up(jobs, shop.clock.now() + timedelta(days=30)) == 1
