"""The request's transaction commits before the response is sent: a commit that fails is an
error response, never a 2xx for work that was rolled back."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI
from fastapi.testclient import TestClient

from fidele.customers.models import Customer
from fidele.deps import SessionDep, WriteCaller
from tests.fixtures.factories import Tenant


def test_failed_commit_is_not_a_success(app: FastAPI, tenant: Tenant) -> None:
    @app.post("/test/duplicate")
    def duplicate(caller: WriteCaller, session: SessionDep) -> dict[str, str]:
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

    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {tenant.key}"
        r = client.post("/test/duplicate")
        assert r.status_code == 409, r.text
        assert client.get("/v1/customers/twin").status_code == 404
