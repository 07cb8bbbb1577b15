"""``ProcessCache.get_many``: the fresh values from memory, the missing ones in one load, kept
for the TTL unless a change overtook the read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from fidele.kit import cache
from fidele.kit.cache import ProcessCache
from fidele.webhooks.models import WebhookEndpoint
from tests.fixtures.factories import Tenant


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(cache, "monotonic", lambda: now[0])
    return now


def _cache() -> ProcessCache[str]:
    return ProcessCache(
        "test_many", 2.0, lambda objects: any(isinstance(o, WebhookEndpoint) for o in objects)
    )


def test_loads_only_the_missing_keys_in_one_call(session: Session, ticks: list[float]) -> None:
    c = _cache()
    loads: list[list[object]] = []

    def load(keys: list[object]) -> dict[object, str]:
        loads.append(keys)
        return {k: f"v{k}" for k in keys if k != 3}  # 3 does not exist

    assert c.get_many(session, [1, 2, 2, 3], load) == {1: "v1", 2: "v2"}
    assert c.get_many(session, [2, 4, 1], load) == {1: "v1", 2: "v2", 4: "v4"}
    assert c.get_many(session, [1, 2, 4], load) == {1: "v1", 2: "v2", 4: "v4"}
    assert loads == [[1, 2, 3], [4]]  # a missing key is not remembered: asked again
    ticks[0] += 2.5
    assert c.get_many(session, [1], load) == {1: "v1"}
    assert loads[-1] == [1]  # expired
    assert c.get_many(session, [], load) == {} and len(loads) == 3


def test_a_change_flushed_during_the_load_is_not_hidden(
    session: Session, factory: sessionmaker[Session], tenant: Tenant, ticks: list[float]
) -> None:
    """A change flushed while the values are read empties the cache and what was read is not
    kept; the session that wrote bypasses the cache until its transaction ends."""
    c = _cache()
    value = ["old"]

    def load(keys: list[object]) -> dict[object, str]:
        found = {k: value[0] for k in keys}
        # another session of this process changes an endpoint meanwhile
        with factory() as other:
            other.add(
                WebhookEndpoint(
                    merchant_id=tenant.merchant_id,
                    url="http://x/",
                    topics=[],
                    created_at=datetime.now(UTC),
                )
            )
            other.flush()
            other.rollback()
        return found

    assert c.get_many(session, [1], load) == {1: "old"}
    value[0] = "new"
    assert c.get_many(session, [1], lambda keys: {k: value[0] for k in keys}) == {1: "new"}
    assert c.get_many(session, [1], lambda keys: {}) == {1: "new"}  # now kept
