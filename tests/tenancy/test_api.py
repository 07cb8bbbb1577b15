from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from fidele.kit.clock import FrozenClock
from fidele.tenancy import service
from fidele.tenancy.models import ApiKey
from tests.fixtures.factories import Tenant, make_tenant, order_body


def test_missing_or_bad_key_is_401(client: TestClient) -> None:
    assert client.get("/v1/customers").status_code == 401
    r = client.get("/v1/customers", headers={"Authorization": "Bearer fdl_nope_nope"})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert client.get("/v1/customers", headers={"Authorization": "Basic x"}).status_code == 401


def test_healthz_needs_no_key(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["database"] == "ok"


def test_read_key_cannot_write(client: TestClient, session: Session, clock: FrozenClock) -> None:
    t = make_tenant(session, clock.now(), scopes="read")
    session.commit()
    h = {"Authorization": f"Bearer {t.key}"}
    assert client.get("/v1/customers", headers=h).status_code == 200
    r = client.post("/v1/orders", json=order_body(), headers=h)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"


def test_revoked_key_is_refused_at_once(
    api: TestClient, tenant: Tenant, session: Session, clock: FrozenClock
) -> None:
    assert api.get("/v1/customers").status_code == 200
    service.revoke_api_key(session, prefix=tenant.key, now=clock.now())
    session.commit()
    assert api.get("/v1/customers").status_code == 401


def test_keys_are_stored_hashed(tenant: Tenant, session: Session) -> None:
    from sqlalchemy import select

    rows = session.execute(select(ApiKey)).scalars().all()
    assert all(tenant.key not in (r.key_hash, r.prefix) for r in rows)
    assert all(len(r.key_hash) == 64 for r in rows)


def test_tenant_isolation(api: TestClient, session: Session, clock: FrozenClock) -> None:
    other = make_tenant(session, clock.now(), name="Shop B")
    session.commit()
    api.put("/v1/customers/c1", json={"email": "a@example.com"})
    api.post("/v1/orders", json=order_body())
    h = {"Authorization": f"Bearer {other.key}"}
    assert api.get("/v1/customers/c1", headers=h).status_code == 404
    assert api.get("/v1/orders/o-1", headers=h).status_code == 404
    assert api.get("/v1/customers/c1/export", headers=h).status_code == 404
    assert api.delete("/v1/customers/c1", headers=h).status_code == 404
    assert api.post("/v1/orders/o-1/refunds", json={"id": "r"}, headers=h).status_code == 404
    assert api.get("/v1/customers", headers=h).json()["items"] == []
    assert api.get("/v1/orders", headers=h).json()["items"] == []
    # B may use the same external ids without touching A's data
    assert api.post("/v1/orders", json=order_body(shipping=100), headers=h).status_code == 201
    assert api.get("/v1/orders/o-1").json()["shipping"] == 0


def test_scopes_are_validated(session: Session, clock: FrozenClock, tenant: Tenant) -> None:
    from fidele.errors import InvalidInput

    with pytest.raises(InvalidInput):
        service.create_api_key(
            session, merchant_id=tenant.merchant_id, scopes="root", now=clock.now()
        )


def test_coalition_merchants_share_a_programme(session: Session, clock: FrozenClock) -> None:
    a = make_tenant(session, clock.now(), name="A")
    b = make_tenant(
        session, clock.now() + timedelta(seconds=1), name="B", programme_id=a.programme_id
    )
    assert a.programme_id == b.programme_id and a.merchant_id != b.merchant_id
    assert a.webhook_secret != b.webhook_secret
