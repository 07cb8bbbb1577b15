"""Property-based fuzzing of the HTTP API from its own /openapi.json (schemathesis): whatever
the generated request, authenticated with a real key, no operation may answer a 5xx.

Each operation gets its own hypothesis run (12 examples) inside one test per backend; the
pytest plugin of schemathesis is not used because it does not support this pytest."""

from __future__ import annotations

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from tests.fixtures.factories import Tenant

EXAMPLES = 12


def _fuzz(operation: schemathesis.APIOperation, key: str, failures: list[str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers={"Authorization": f"Bearer {key}"})
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} {case.body!r:.300} -> "
                f"{response.status_code}: {response.text[:300]}"
            )

    check()


def test_no_operation_answers_5xx(app: FastAPI, tenant: Tenant) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10  # every router is mounted and fuzzed
    failures: list[str] = []
    for operation in operations:
        _fuzz(operation, tenant.key, failures)
    assert not failures, "\n".join(failures[:20])
