"""The per-process cache of a merchant's promotion settings and automatic promotions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from fidele.promotions import cache, coupons
from fidele.promotions.config import PromotionConfig
from fidele.promotions.schemas import PromotionIn
from tests.fixtures.factories import Tenant


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the cache's database reads."""
    calls: list[int] = []
    real = cache._load

    def counted(session: Session, merchant_id: int) -> cache.MerchantPromotions:
        calls.append(merchant_id)
        return real(session, merchant_id)

    monkeypatch.setattr(cache, "_load", counted)
    return calls


@pytest.fixture
def fresh(factory: sessionmaker[Session]) -> Any:
    """Run ``fn(session)`` in a new session committed at the end, like one request."""

    def run(fn: Any) -> Any:
        with factory() as s:
            out = fn(s)
            s.commit()
            return out

    return run


def _promo(tenant: Tenant, now: datetime, name: str, **extra: Any) -> Any:
    data = PromotionIn.model_validate({"name": name, "kind": "amount_off", "value": 100, **extra})
    return lambda s: coupons.create_promotion(s, tenant.caller, data, now)


def _names(fresh: Any, tenant: Tenant, now: datetime) -> list[str | None]:
    promos = fresh(lambda s: cache.merchant(s, tenant.merchant_id))
    return [c.name for c in promos.automatic_at(now)]


def test_second_read_within_ttl_is_served_from_memory(
    tenant: Tenant, fresh: Any, loads: list[int], clock: Any
) -> None:
    fresh(_promo(tenant, clock.now(), "a"))
    assert _names(fresh, tenant, clock.now()) == ["a"]
    assert _names(fresh, tenant, clock.now()) == ["a"]
    assert loads == [tenant.merchant_id]


def test_expired_entry_is_read_again(
    tenant: Tenant, fresh: Any, loads: list[int], clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache._cache, "ttl", 0.0)
    _names(fresh, tenant, clock.now())
    _names(fresh, tenant, clock.now())
    assert loads == [tenant.merchant_id] * 2


def test_change_committed_in_this_process_is_seen_at_once(
    tenant: Tenant, fresh: Any, clock: Any
) -> None:
    fresh(_promo(tenant, clock.now(), "a"))
    assert _names(fresh, tenant, clock.now()) == ["a"]
    fresh(_promo(tenant, clock.now(), "b"))
    assert _names(fresh, tenant, clock.now()) == ["a", "b"]
    cfg = PromotionConfig(session_ttl_minutes=7)
    fresh(lambda s: coupons.set_config(s, tenant.caller, cfg, clock.now()))
    assert fresh(lambda s: cache.merchant(s, tenant.merchant_id)).cfg.session_ttl_minutes == 7


def test_writing_session_bypasses_and_rollback_leaves_nothing(
    tenant: Tenant, factory: sessionmaker[Session], fresh: Any, clock: Any
) -> None:
    assert _names(fresh, tenant, clock.now()) == []
    with factory() as s:
        _promo(tenant, clock.now(), "draft")(s)
        s.flush()
        # Its own uncommitted promotion is visible to the writing session...
        assert [c.name for c in cache.merchant(s, tenant.merchant_id).automatic] == ["draft"]
        s.rollback()
    # ...and neither it nor the pre-change entry outlives the rollback.
    assert _names(fresh, tenant, clock.now()) == []


def test_read_overtaken_by_a_change_is_not_stored(
    tenant: Tenant, fresh: Any, loads: list[int], clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cache._load  # the counting wrapper

    def overtaken(session: Session, merchant_id: int) -> cache.MerchantPromotions:
        out = real(session, merchant_id)
        cache.clear()  # a change flushed elsewhere while this read was running
        return out

    monkeypatch.setattr(cache, "_load", overtaken)
    _names(fresh, tenant, clock.now())
    monkeypatch.setattr(cache, "_load", real)
    _names(fresh, tenant, clock.now())
    assert loads == [tenant.merchant_id] * 2


def test_windows_apply_at_each_read(tenant: Tenant, fresh: Any, clock: Any) -> None:
    now = clock.now()
    window = {"starts_at": (now + timedelta(days=1)).isoformat()}
    fresh(_promo(tenant, now, "later", ends_at=(now + timedelta(days=2)).isoformat(), **window))
    assert _names(fresh, tenant, now) == []
    assert _names(fresh, tenant, now + timedelta(days=1)) == ["later"]
    assert _names(fresh, tenant, now + timedelta(days=2)) == []


def test_other_merchant_never_sees_the_entry(
    tenant: Tenant, fresh: Any, clock: Any, session: Session
) -> None:
    from tests.fixtures.factories import make_tenant

    other = make_tenant(session, clock.now(), name="Other")
    session.commit()
    fresh(_promo(tenant, clock.now(), "mine"))
    assert _names(fresh, tenant, clock.now()) == ["mine"]
    assert _names(fresh, other, clock.now()) == []
