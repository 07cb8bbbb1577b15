"""Point 1 of the issue: 50 simultaneous redemptions against a balance that covers 10 let
exactly 10 through — real parallel connections, one per thread, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import Engine

from fidele.customers import service as customers
from fidele.db.session import make_sessionmaker, transaction
from fidele.errors import FideleError
from fidele.kit.clock import FrozenClock
from fidele.ledger import service as ledger
from fidele.loyalty import rewards, service
from tests.fixtures.factories import make_tenant


def test_fifty_redemptions_against_ten(committed_engine: Engine, clock: FrozenClock) -> None:
    factory = make_sessionmaker(committed_engine)
    now = clock.now()
    with transaction(factory) as s:
        tenant = make_tenant(s, now, name="Race")
        customer = customers.get_or_create(s, tenant.caller, "c1", now, source="test")
        rewards.adjust(s, tenant.caller, customer, 100, "seed", "seed", now)
        reward = rewards.create_reward(
            s, tenant.caller, {"name": "R", "points_cost": 10, "kind": "custom", "value": 0}, now
        )
        reward_id = reward.id
    barrier = threading.Barrier(50)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            with transaction(factory) as s:
                c = customers.get(s, tenant.caller, "c1")
                rewards.redeem(s, tenant.caller, c, reward_id, f"k{i}", now)
            result = "ok"
        except FideleError as exc:
            result = exc.code
        with lock:
            outcomes[result] += 1

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes["ok"] == 10
    assert outcomes["ok"] + outcomes["insufficient_points"] + outcomes["insufficient_balance"] == 50
    with transaction(factory) as s:
        assert service.available_points(s, customers.get(s, tenant.caller, "c1")) == 0
        assert ledger.verify(s).ok
