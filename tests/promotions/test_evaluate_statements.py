"""Checkout evaluate's hot path: with a warm cache and codes without limits, five statements:
the customer, the typed codes counted against the lookup limit before the lookup (an upsert of
the rate counters; its own transaction on PostgreSQL, the request's here where the session is
bound to the test's connection), the codes, the found codes given back, the session."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import event

from tests.promotions.conftest import cart


def test_warm_evaluate_reads_customer_and_codes_then_inserts_the_session(
    api: TestClient, connection: object
) -> None:
    for code in ("SUMMER10", "FIVEOFF"):
        r = api.post("/v1/coupons", json={"code": code, "kind": "amount_off", "value": 100})
        assert r.status_code == 201, r.text
    body = cart("SUMMER10", "FIVEOFF")
    assert api.post("/v1/checkout/evaluate", json=body).status_code == 201  # warms the caches
    seen: list[str] = []

    def listener(*args: object) -> None:
        seen.append(str(args[2]).split()[0] + " " + str(args[2]).split("FROM")[-1].split()[0])

    event.listen(connection, "before_cursor_execute", listener)
    try:
        r = api.post("/v1/checkout/evaluate", json=body)
    finally:
        event.remove(connection, "before_cursor_execute", listener)
    assert r.status_code == 201, r.text
    statements = [s for s in seen if not s.startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 5, seen
    assert statements[0] == "SELECT customers", seen
    assert statements[1] == statements[3] == "INSERT INSERT", seen  # INSERT INTO rate counters
    assert statements[2] == "SELECT coupons", seen
    assert statements[4].startswith("INSERT")
