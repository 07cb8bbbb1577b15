"""Point 10 of the issue: for any sequence of orders, deliveries, refunds, cancellations,
redemptions (and their cancellation), vouchers used and released at checkout, adjustments, job
runs and clock moves, every programme's accounts sum to zero, no available balance is negative,
lots agree with balances, and a replay of the event log into empty loyalty tables gives
identical balances and voucher states."""

from __future__ import annotations

from datetime import timedelta
from itertools import count
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from fidele.db.session import make_sessionmaker, transaction
from fidele.errors import FideleError
from fidele.kit.clock import FrozenClock
from fidele.ledger import service as ledger
from fidele.ledger.models import Account
from fidele.loyalty import audit, rewards
from fidele.loyalty.models import Lot, Member, Voucher
from fidele.loyalty.replay import catch_up_all, replay
from tests.fixtures.factories import make_tenant
from tests.loyalty.conftest import Shop, parallel

CUSTOMERS = ("c1", "c2", "c3")
SCALE = {
    "settings": {"points_per_unit": 1, "pending_days": 14, "expiry_months": 2},
    "rules": [{"id": "welcome", "type": "first_order", "points": 20}],
    "tiers": {
        "review_months": 1,
        "grace_days": 5,
        "levels": [
            {"name": "Bronze"},
            {"name": "Silver", "threshold": {"value": 300}, "multiplier_bp": 15_000},
        ],
    },
}
_ids = count()


def snapshot(session: Session, programme_id: int) -> dict[str, Any]:
    """Balances by customer and by merchant account kind (ids differ after a replay)."""
    shop_rows: dict[str, Any] = {}
    members = session.execute(select(Member).where(Member.programme_id == programme_id))
    for member in members.scalars():
        accounts = {
            k: session.get(Account, getattr(member, f"{k}_account_id")).balance
            for k in ("available", "pending", "debt")
        }
        key = ",".join(
            c.external_id for c in rewards.LoyaltyRepository(session).customers_of(member.id)
        )
        shop_rows[key] = (accounts, member.lifetime_earned, member.lifetime_spent, member.tier_rank)
    merchant = session.execute(
        select(Account.merchant_id, Account.kind, Account.balance).where(
            Account.programme_id == programme_id, Account.merchant_id.is_not(None)
        )
    ).all()
    vouchers = session.execute(
        select(
            Voucher.redemption_id, Voucher.code, Voucher.status, Voucher.order_ref, Voucher.used_at
        ).where(Voucher.programme_id == programme_id)
    ).all()
    return {"members": shop_rows, "merchants": sorted(merchant), "vouchers": sorted(vouchers)}


class LoyaltyMachine(RuleBasedStateMachine):
    session: Session

    def __init__(self) -> None:
        super().__init__()
        self.session.expunge_all()
        self.clock = FrozenClock(self.clock0)
        tenant = make_tenant(self.session, self.clock.now(), name=f"SM{next(_ids)}")
        self.shop = Shop(self.session, tenant, self.clock)
        self.shop.rules(SCALE)
        self.orders: list[str] = []
        self.redemptions: list[int] = []
        self.rewards = [
            rewards.create_reward(
                self.session,
                tenant.caller,
                {"name": f"R{c}", "points_cost": c, "kind": "custom", "value": 0},
                self.clock.now(),
            ).id
            for c in (15, 60, 150)
        ]

    def attempt(self, fn: Any, *args: Any, **kw: Any) -> Any:
        """Like a request: a refused operation rolls back and changes nothing."""
        try:
            with self.session.begin_nested():
                return fn(*args, **kw)
        except FideleError:
            return None

    @rule(customer=st.sampled_from(CUSTOMERS), amount=st.integers(0, 40_000))
    def place(self, customer: str, amount: int) -> None:
        oid = f"o{len(self.orders)}"
        self.shop.order(oid, customer=customer, amount=amount)
        self.orders.append(oid)

    @rule(
        customer=st.sampled_from(CUSTOMERS),
        amounts=st.lists(st.integers(0, 40_000), min_size=2, max_size=3),
    )
    def place_together(self, customer: str, amounts: list[int]) -> None:
        """Orders of one customer at the same instant, around a tier threshold: live they
        are serialised on the member in the order the log numbers them, which the replay
        follows (tests/loyalty/test_integrity.py runs them on parallel connections)."""
        for amount in amounts:
            self.place(customer, amount)

    @precondition(lambda self: self.orders)
    @rule(i=st.integers(0, 100), status=st.sampled_from(["shipped", "delivered", "cancelled"]))
    def set_status(self, i: int, status: str) -> None:
        self.attempt(self.shop.status, self.orders[i % len(self.orders)], status)

    @precondition(lambda self: self.orders)
    @rule(i=st.integers(0, 100), amount=st.one_of(st.none(), st.integers(1, 20_000)))
    def refund(self, i: int, amount: int | None) -> None:
        oid = self.orders[i % len(self.orders)]
        self.attempt(self.shop.refund, oid, f"r{next(_ids)}", amount)

    @rule(customer=st.sampled_from(CUSTOMERS), r=st.integers(0, 2))
    def redeem(self, customer: str, r: int) -> None:
        row = self.attempt(
            rewards.redeem,
            self.session,
            self.shop.caller,
            self.shop.customer(customer),
            self.rewards[r],
            f"k{next(_ids)}",
            self.clock.now(),
        )
        if row is not None:
            self.redemptions.append(row[0].id)

    @precondition(lambda self: self.redemptions)
    @rule(i=st.integers(0, 100))
    def cancel_redemption(self, i: int) -> None:
        rid = self.redemptions[i % len(self.redemptions)]
        self.attempt(rewards.cancel, self.session, self.shop.caller, rid, self.clock.now())

    @precondition(lambda self: self.redemptions)
    @rule(i=st.integers(0, 100), order=st.sampled_from(["x1", "x2"]), release=st.booleans())
    def checkout_voucher(self, i: int, order: str, release: bool) -> None:
        """The promotions checkout uses a reward's code for an order, or releases it."""
        rid = self.redemptions[i % len(self.redemptions)]
        voucher = rewards.LoyaltyRepository(self.session).voucher_of(rid)
        assert voucher is not None
        fn = rewards.release_voucher if release else rewards.use_voucher
        self.attempt(fn, self.session, voucher, order_ref=order, now=self.clock.now())

    @rule(customer=st.sampled_from(CUSTOMERS), points=st.integers(-100, 100))
    def adjust(self, customer: str, points: int) -> None:
        self.attempt(
            rewards.adjust,
            self.session,
            self.shop.caller,
            self.shop.customer(customer),
            points,
            "sm",
            f"a{next(_ids)}",
            self.clock.now(),
        )

    @rule()
    def run_jobs(self) -> None:
        catch_up_all(self.session, self.clock.now())

    @rule(days=st.integers(0, 40))
    def move_clock(self, days: int) -> None:
        self.clock.advance(days=days, hours=1)

    @invariant()
    def books_balance(self) -> None:
        programme = self.shop.tenant.programme_id
        accounts = (
            self.session.execute(
                select(Account)
                .where(Account.programme_id == programme)
                .execution_options(populate_existing=True)
            )
            .scalars()
            .all()
        )
        assert sum(a.balance for a in accounts) == 0
        assert all(a.balance >= 0 for a in accounts if not a.allow_negative)

    @invariant()
    def lots_match_balances(self) -> None:
        programme = self.shop.tenant.programme_id
        for member in self.session.execute(
            select(Member).where(Member.programme_id == programme)
        ).scalars():
            for status in ("available", "pending"):
                lots = self.session.execute(
                    select(func.coalesce(func.sum(Lot.remaining), 0)).where(
                        Lot.member_id == member.id, Lot.status == status
                    )
                ).scalar_one()
                acc = self.session.get(Account, getattr(member, f"{status}_account_id"))
                assert acc is not None
                assert acc.balance == lots >= 0

    def teardown(self) -> None:
        programme = self.shop.tenant.programme_id
        now = self.clock.now() + timedelta(days=1)
        catch_up_all(self.session, now, programme_id=programme)
        before = snapshot(self.session, programme)
        replay(self.session, programme, now)
        after = snapshot(self.session, programme)
        assert after == before
        assert ledger.verify(self.session).ok
        assert audit.verify(self.session) == []


class ConcurrentOrdersMachine(RuleBasedStateMachine):
    """The same programme driven through committed transactions, orders of one customer
    written at once on parallel connections (one per thread) among refunds, redemptions, job
    runs and clock moves; the replay of the log must give what live gave."""

    factory: sessionmaker[Session]

    def __init__(self) -> None:
        super().__init__()
        self.clock = FrozenClock(self.clock0)
        with transaction(self.factory) as s:
            self.tenant = make_tenant(s, self.clock.now(), name=f"CM{next(_ids)}")
            Shop(s, self.tenant, self.clock).rules(SCALE)
            for external_id in CUSTOMERS[:2]:  # known customers: their orders race on earning
                Shop(s, self.tenant, self.clock).customer(external_id)
            data = {"name": "R", "points_cost": 60, "kind": "custom", "value": 0}
            self.reward = rewards.create_reward(s, self.tenant.caller, data, self.clock.now()).id
        self.orders: list[str] = []

    def shop(self, work: Any) -> Any:
        """``work(shop)`` in a transaction of its own; a refusal changes nothing."""
        try:
            with transaction(self.factory) as s:
                return work(Shop(s, self.tenant, self.clock))
        except FideleError:
            return None

    @rule(
        customer=st.sampled_from(CUSTOMERS[:2]),
        amounts=st.lists(st.integers(0, 30_000), min_size=2, max_size=5),
    )
    def place_at_once(self, customer: str, amounts: list[int]) -> None:
        oids = [f"o{next(_ids)}" for _ in amounts]

        def place(i: int) -> None:
            self.shop(lambda shop: shop.order(oids[i], customer=customer, amount=amounts[i]))

        parallel(len(amounts), place)
        self.orders += oids

    @precondition(lambda self: self.orders)
    @rule(i=st.integers(0, 100), amount=st.one_of(st.none(), st.integers(1, 20_000)))
    def refund(self, i: int, amount: int | None) -> None:
        oid = self.orders[i % len(self.orders)]
        self.shop(lambda shop: shop.refund(oid, f"r{next(_ids)}", amount))

    @rule(customer=st.sampled_from(CUSTOMERS[:2]))
    def redeem(self, customer: str) -> None:
        self.shop(
            lambda shop: rewards.redeem(
                shop.session,
                shop.caller,
                shop.customer(customer),
                self.reward,
                f"k{next(_ids)}",
                self.clock.now(),
            )
        )

    @rule()
    def run_jobs(self) -> None:
        self.shop(lambda shop: catch_up_all(shop.session, self.clock.now()))

    @rule(days=st.integers(0, 40))
    def move_clock(self, days: int) -> None:
        self.clock.advance(days=days, hours=1)

    def teardown(self) -> None:
        programme = self.tenant.programme_id
        now = self.clock.now() + timedelta(days=1)
        with transaction(self.factory) as s:
            catch_up_all(s, now, programme_id=programme)
        with transaction(self.factory) as s:
            before = snapshot(s, programme)
            assert audit.verify(s) == []
        with transaction(self.factory) as s:
            replay(s, programme, now)
        with transaction(self.factory) as s:
            assert snapshot(s, programme) == before
            assert ledger.verify(s).ok
            assert audit.verify(s) == []


def run(machine: type[RuleBasedStateMachine], clock: FrozenClock, examples: int) -> None:
    machine.clock0 = clock.now()  # type: ignore[attr-defined]
    runner = machine.TestCase
    runner.settings = settings(
        max_examples=examples,
        stateful_step_count=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    runner().runTest()


def test_concurrent_orders_state_machine(committed_engine: Engine, clock: FrozenClock) -> None:
    ConcurrentOrdersMachine.factory = make_sessionmaker(committed_engine)
    run(ConcurrentOrdersMachine, clock, 8)


def test_state_machine(session: Session, clock: FrozenClock) -> None:
    LoyaltyMachine.session = session
    run(LoyaltyMachine, clock, 30)
