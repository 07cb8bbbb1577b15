"""Issue #12 item 2 and issue #20 item 4, with real parallel connections (one per thread) on
SQLite and PostgreSQL: counters kept on a member stay exact under concurrency, ``fidele
loyalty verify`` (the installed console script) finds any stored figure that drifted from its
source, and concurrent orders of one customer earn live what a replay of the log earns."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from fidele.customers import service as customers
from fidele.db.session import make_sessionmaker, transaction
from fidele.events import bus
from fidele.kit.clock import FrozenClock
from fidele.ledger import service as ledger
from fidele.loyalty import audit, members, points, rewards, service
from fidele.loyalty.config import parse
from fidele.loyalty.models import Lot, Member, Reward
from fidele.loyalty.replay import replay
from fidele.orders import service as orders
from fidele.orders.models import Order
from fidele.orders.schemas import OrderIn
from tests.fixtures.factories import Tenant, make_tenant, order_body
from tests.loyalty.conftest import parallel

FIDELE = Path(sys.executable).with_name("fidele")


def _shop_with_reward(
    factory: sessionmaker[Session], clock: FrozenClock, seed: int, cost: int
) -> tuple[Tenant, int]:
    now = clock.now()
    with transaction(factory) as s:
        tenant = make_tenant(s, now, name="Race")
        customer = customers.get_or_create(s, tenant.caller, "c1", now, source="test")
        rewards.adjust(s, tenant.caller, customer, seed, "seed", "seed", now)
        data = {"name": "R", "points_cost": cost, "kind": "custom", "value": 0}
        reward_id = rewards.create_reward(s, tenant.caller, data, now).id
    return tenant, reward_id


def test_parallel_redemptions_keep_lifetime_spent_exact(
    committed_engine: Engine, clock: FrozenClock
) -> None:
    factory = make_sessionmaker(committed_engine)
    tenant, reward_id = _shop_with_reward(factory, clock, seed=1_000, cost=10)
    with transaction(factory) as s:  # the member row is in this process's sessions first
        customers.get(s, tenant.caller, "c1")

    def redeem(i: int) -> None:
        with transaction(factory) as s:
            c = customers.get(s, tenant.caller, "c1")
            rewards.redeem(s, tenant.caller, c, reward_id, f"k{i}", clock.now())

    assert parallel(15, redeem) == []  # 15 were enough to lose updates (issue #12)
    with transaction(factory) as s:
        summary = service.summary(s, customers.get(s, tenant.caller, "c1"), clock.now())
        assert summary["lifetime_spent"] == 150
        assert summary["available"] == 850
        assert s.get(Reward, reward_id).issued == 15  # type: ignore[union-attr]
        assert ledger.verify(s).ok
        assert audit.verify(s) == []


def _verify(engine: Engine) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FIDELE_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    return subprocess.run(
        [str(FIDELE), "loyalty", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_verify_command_names_each_drifted_figure(
    committed_engine: Engine, clock: FrozenClock
) -> None:
    factory = make_sessionmaker(committed_engine)
    tenant, reward_id = _shop_with_reward(factory, clock, seed=100, cost=10)
    with transaction(factory) as s:
        c = customers.get(s, tenant.caller, "c1")
        rewards.redeem(s, tenant.caller, c, reward_id, "k1", clock.now())
        member_id = service.member_of(s, c).id  # type: ignore[union-attr]
    clean = _verify(committed_engine)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "derived figures OK" in clean.stdout + clean.stderr  # the console writes to stderr
    with committed_engine.begin() as conn:  # a lost update, as concurrent writers made one
        conn.execute(
            text("UPDATE loyalty_members SET lifetime_spent = 0 WHERE id = :m"), {"m": member_id}
        )
        conn.execute(text("UPDATE loyalty_rewards SET issued = 3 WHERE id = :r"), {"r": reward_id})
    drifted = _verify(committed_engine)
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    out = " ".join((drifted.stdout + drifted.stderr).split())
    assert f"member {member_id} lifetime_spent: stored 0, source gives 10" in out
    assert f"reward {reward_id} issued: stored 3, source gives 1" in out
    assert "ledger OK" in out  # the ledger itself is intact: only the derived figures drift


# Gold from 100 points in the window: the customer has 90, each new order earns 50 at
# Bronze, 75 at Gold. Only the first order to earn can be at Bronze.
TIERED = {
    "settings": {"points_per_unit": 1, "pending_days": 14},
    "tiers": {
        "levels": [
            {"name": "Bronze"},
            {"name": "Gold", "threshold": {"value": 100}, "multiplier_bp": 15_000},
        ]
    },
}


def _place(
    factory: sessionmaker[Session], tenant: Tenant, oid: str, amount: int, at: datetime
) -> None:
    lines = [{"product_id": "p", "category": "c", "quantity": 1, "unit_price": amount}]
    body = order_body(oid, "c1", placed_at=at.isoformat(), lines=lines)
    with transaction(factory) as s:
        orders.create(s, tenant.caller, OrderIn(**body), at)


def _lots(session: Session, programme_id: int) -> dict[str, tuple[int, int, str]]:
    rows = session.execute(
        select(Order.external_id, Lot.points, Lot.remaining, Lot.status)
        .join(Order, Order.id == Lot.order_id)
        .where(Lot.programme_id == programme_id)
        .execution_options(populate_existing=True)
    ).all()
    return {oid: (p, r, st) for oid, p, r, st in rows}


def _member_state(session: Session, programme_id: int) -> tuple[Any, ...]:
    member = session.execute(
        select(Member)
        .where(Member.programme_id == programme_id)
        .execution_options(populate_existing=True)
    ).scalar_one()
    balances = {k: points.balance(session, member, k) for k in ("available", "pending", "debt")}
    return member.tier_rank, member.lifetime_earned, balances


def _near_gold(
    engine: Engine, clock: FrozenClock
) -> tuple[sessionmaker[Session], Tenant, datetime]:
    """A shop on ``TIERED`` whose customer has 90 points (Bronze, 10 short of Gold); the
    clock a minute later."""
    factory = make_sessionmaker(engine)
    now = clock.now()
    with transaction(factory) as s:
        tenant = make_tenant(s, now, name="Tiers")
        members.set_scale(s, tenant.programme_id, parse(TIERED), now)
        customers.get_or_create(s, tenant.caller, "c1", now, source="test")
    _place(factory, tenant, "first", 9_000, now)
    clock.advance(minutes=1)
    return factory, tenant, clock.now()


def test_concurrent_orders_of_one_customer_earn_as_the_replay_does(
    committed_engine: Engine, clock: FrozenClock
) -> None:
    factory, tenant, at = _near_gold(committed_engine, clock)

    assert parallel(8, lambda i: _place(factory, tenant, f"o{i}", 5_000, at)) == []
    with transaction(factory) as s:
        live = _lots(s, tenant.programme_id)
        earned = sorted(p for oid, (p, _, _) in live.items() if oid != "first")
        assert earned == [50] + [75] * 7  # one order at Bronze, the others at Gold
        live_member = _member_state(s, tenant.programme_id)
        assert live_member[0] == 1
        assert audit.verify(s) == []
    with transaction(factory) as s:
        replay(s, tenant.programme_id, at)
    with transaction(factory) as s:
        assert _lots(s, tenant.programme_id) == live
        assert _member_state(s, tenant.programme_id) == live_member
        assert ledger.verify(s).ok
        assert audit.verify(s) == []


def test_an_order_numbered_first_earns_first(
    committed_engine: Engine, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order whose event is numbered first stalls before its handlers run; the second
    one waits for it (the member is locked before numbering), so the live order of earning is
    the log's order, which the replay follows."""
    factory, tenant, at = _near_gold(committed_engine, clock)
    real = bus.dispatch
    numbered = threading.Event()

    def stalling(session: Session, event: Any, now: Any) -> None:
        if event.type == "order.placed" and event.payload["id"] == "slow":
            numbered.set()
            time.sleep(1.5)
        real(session, event, now)

    monkeypatch.setattr(bus, "dispatch", stalling)

    def place(i: int) -> None:
        if i == 1:
            assert numbered.wait(30)  # the slow order has its id: this one comes after it
        _place(factory, tenant, "slow" if i == 0 else "fast", 5_000, at)

    assert parallel(2, place) == []
    with transaction(factory) as s:
        live = _lots(s, tenant.programme_id)
        assert (live["slow"][0], live["fast"][0]) == (50, 75)
    with transaction(factory) as s:
        replay(s, tenant.programme_id, at)
    with transaction(factory) as s:
        assert _lots(s, tenant.programme_id) == live
