"""The request's transaction commits before the response is sent: a commit that fails is an
error response, never a 2xx for work that was rolled back."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.deps import SessionDep, WriteCaller, in_one_hop
from fidele.tenancy.service import Caller
from tests.fixtures.factories import Tenant, make_tenant


def _twins(session: Session, caller: Caller) -> dict[str, str]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(2):  # the same external id twice: only the commit's flush can tell
        session.add(
            Customer(
                merchant_id=caller.merchant_id,
                programme_id=caller.programme_id,
                external_id="twin",
                attributes={},
                created_at=now,
                updated_at=now,
            )
        )
    return {"status": "ok"}


def test_failed_commit_is_not_a_success(app: FastAPI, tenant: Tenant) -> None:
    @app.post("/test/duplicate")
    def duplicate(caller: WriteCaller, session: SessionDep) -> dict[str, str]:
        return _twins(session, caller)

    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {tenant.key}"
        r = client.post("/test/duplicate")
        assert r.status_code == 409, r.text
        assert client.get("/v1/customers/twin").status_code == 404


def test_one_hop_endpoints_keep_the_same_guarantees(
    app: FastAPI, tenant: Tenant, session: Session, clock: object
) -> None:
    @app.post("/test/one-hop")
    async def one_hop(request: Request) -> dict[str, str]:
        return await in_one_hop(request, "write", lambda s, caller, now: _twins(s, caller))

    reader = make_tenant(session, clock.now(), name="Reader", scopes="read")  # type: ignore[attr-defined]
    session.commit()
    with TestClient(app) as client:
        assert client.post("/test/one-hop").status_code == 401
        bearer = {"Authorization": f"Bearer {reader.key}"}
        assert client.post("/test/one-hop", headers=bearer).status_code == 403
        client.headers["Authorization"] = f"Bearer {tenant.key}"
        r = client.post("/test/one-hop")
        assert r.status_code == 409, r.text  # the commit failed: an error, nothing written
        assert client.get("/v1/customers/twin").status_code == 404


def test_every_route_runs_its_transaction_in_one_thread_pool_hop(app: FastAPI) -> None:
    """No route resolves ``get_session`` through FastAPI's dependency graph: a transaction
    spread over several hops holds its locks while waiting for a thread (issue #12.1)."""
    from fastapi.routing import APIRoute

    from fidele.deps import get_session

    def calls(dependant: object) -> list[object]:
        subs = getattr(dependant, "dependencies", [])
        return [getattr(dependant, "call", None)] + [c for d in subs for c in calls(d)]

    def api_routes(routes: list[object]) -> list[APIRoute]:
        out: list[APIRoute] = []
        for r in routes:
            if isinstance(r, APIRoute):
                out.append(r)
            elif hasattr(r, "original_router"):  # an included router, kept as it is
                out += api_routes(r.original_router.routes)
        return out

    routes = api_routes(app.routes)
    assert len(routes) > 40
    assert [r.path for r in routes if get_session in calls(r.dependant)] == []
