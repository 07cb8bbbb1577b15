"""The per-process cache of authenticated API keys: fewer reads, and revocation still holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text, update
from sqlalchemy.orm import Session

from fidele.kit import cache
from fidele.tenancy import service
from fidele.tenancy.models import ApiKey
from tests.fixtures.factories import Tenant


@pytest.fixture
def key_reads(connection: object) -> Iterator[list[str]]:
    """Every statement that reads the api_keys table on the test's connection."""
    seen: list[str] = []

    def listener(*args: object) -> None:
        statement = str(args[2])
        if "FROM api_keys" in statement:
            seen.append(statement)

    event.listen(connection, "before_cursor_execute", listener)
    yield seen
    event.remove(connection, "before_cursor_execute", listener)


def test_a_key_is_read_once_within_the_ttl(api: TestClient, key_reads: list[str]) -> None:
    for _ in range(3):
        assert api.get("/v1/customers").status_code == 200
    assert len(key_reads) == 1


def test_an_expired_entry_is_read_again(
    api: TestClient, key_reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service._callers, "ttl", 0.0)
    for _ in range(2):
        assert api.get("/v1/customers").status_code == 200
    assert len(key_reads) == 2


def test_unknown_keys_are_never_cached(client: TestClient, key_reads: list[str]) -> None:
    bad = {"Authorization": "Bearer fdl_abcdef123456_wrongsecret"}
    for _ in range(3):
        assert client.get("/v1/customers", headers=bad).status_code == 401
    assert len(key_reads) == 3


def test_a_wrong_secret_with_a_known_prefix_is_refused(
    api: TestClient, tenant: Tenant, key_reads: list[str]
) -> None:
    assert api.get("/v1/customers").status_code == 200  # the right key is now cached
    wrong = tenant.key[:-4] + ("aaaa" if not tenant.key.endswith("aaaa") else "bbbb")
    r = api.get("/v1/customers", headers={"Authorization": f"Bearer {wrong}"})
    assert r.status_code == 401


def test_a_revocation_in_this_process_is_seen_at_once(
    api: TestClient, tenant: Tenant, session: Session, clock: object
) -> None:
    assert api.get("/v1/customers").status_code == 200
    service.revoke_api_key(session, prefix=tenant.key, now=clock.now())  # type: ignore[attr-defined]
    session.commit()
    assert api.get("/v1/customers").status_code == 401


def test_a_revocation_by_another_process_is_seen_after_the_ttl(
    api: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert api.get("/v1/customers").status_code == 200
    # Another process revokes: a plain UPDATE this process's ORM never sees flushed.
    session.execute(update(ApiKey).values(revoked_at=text("CURRENT_TIMESTAMP")))
    session.commit()
    assert api.get("/v1/customers").status_code == 200  # still cached, within the TTL
    later = cache.monotonic() + service.CALLER_TTL_SECONDS + 0.01
    monkeypatch.setattr(cache, "monotonic", lambda: later)
    assert api.get("/v1/customers").status_code == 401
