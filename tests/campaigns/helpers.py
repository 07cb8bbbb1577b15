"""Playing flows on a small shop through the API, with the test's clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fidele.campaigns import engine, triggers
from fidele.db.session import transaction
from fidele.kit.clock import FrozenClock


def save(api: TestClient, definition: dict[str, Any], *, activate: bool = True) -> dict[str, Any]:
    answer = api.post("/v1/flows", json={"definition": definition})
    assert answer.status_code == 201, answer.text
    flow = answer.json()
    if activate:
        assert api.post(f"/v1/flows/{flow['id']}/activate").status_code == 200
    return flow


def customer(api: TestClient, ext: str, **fields: Any) -> None:
    body = {"email": f"{ext}@example.com", "first_name": ext.title(), **fields}
    answer = api.put(f"/v1/customers/{ext}", json=body)
    assert answer.status_code in (200, 201), answer.text


def event(api: TestClient, ext: str, type_: str, at: datetime, **properties: Any) -> None:
    body = {
        "type": type_,
        "customer_id": ext,
        "occurred_at": at.isoformat(),
        "properties": properties,
    }
    answer = api.post("/v1/events", json=body, headers={"Idempotency-Key": f"{ext}-{type_}-{at}"})
    assert answer.status_code == 201, answer.text


def order(api: TestClient, ext: str, order_id: str, at: datetime, total: int = 3000) -> None:
    body = {
        "id": order_id,
        "customer_id": ext,
        "placed_at": at.isoformat(),
        "currency": "EUR",
        "lines": [{"product_id": "p1", "name": "Tea", "quantity": 1, "unit_price": total}],
        "total": total,
    }
    answer = api.post("/v1/orders", json=body)
    assert answer.status_code in (200, 201), answer.text


def run(factory: sessionmaker[Session], clock: FrozenClock) -> int:
    """What the worker does at the clock's time: date and prediction scans, then advancing."""
    with transaction(factory) as session:
        triggers.enroll_dates(session, clock.now())
        triggers.enroll_predictions(session, clock.now())
    return engine.advance_due(factory, clock.now())


def play(
    factory: sessionmaker[Session], clock: FrozenClock, until: datetime, step: timedelta
) -> None:
    """Run the worker every ``step`` up to ``until``."""
    while clock.now() < until:
        clock.advance(step)
        run(factory, clock)


def journeys(api: TestClient, ext: str) -> list[dict[str, Any]]:
    answer = api.get(f"/v1/customers/{ext}/journeys")
    assert answer.status_code == 200, answer.text
    return answer.json()


def outcomes(journey: dict[str, Any]) -> list[tuple[str, str]]:
    return [(h["kind"], h["outcome"]) for h in journey["history"]]


def enrollment_row(
    tenant: Any, flow: Any, customer_id: int, due_at: datetime, **fields: Any
) -> dict[str, Any]:
    """An active enrollment at the flow's first step, due at ``due_at``, as a row to insert
    in bulk (``fields`` override the columns)."""
    return {
        "merchant_id": tenant.merchant_id,
        "flow_id": flow.id,
        "version": flow.active_version,
        "customer_id": customer_id,
        "occurrence": "o",
        "status": "active",
        "step": "s1",
        "due_at": due_at,
        "entered_at": due_at,
        "updated_at": due_at,
        "attempts": 0,
        "context": {},
        **fields,
    }
