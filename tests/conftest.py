"""Test database fixtures: every database test runs on SQLite and, when
``FIDELE_TEST_POSTGRES_URL`` is set, on PostgreSQL too (in CI it must be set and reachable).

Migrations run once per backend; each test runs inside an outer transaction rolled back at the
end (the app's commits become savepoint releases). Tests that need real commits and parallel
connections use ``committed_engine``, which empties the tables afterwards."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from fidele.app import create_app
from fidele.db.base import Base, import_all_models
from fidele.db.engine import make_engine
from fidele.db.migrate import upgrade
from fidele.kit.clock import FrozenClock
from fidele.settings import Settings
from tests.fixtures.factories import Tenant, make_tenant

PG_URL = os.environ.get("FIDELE_TEST_POSTGRES_URL")
if os.environ.get("FIDELE_TEST_REQUIRE_POSTGRES") and not PG_URL:
    raise RuntimeError("CI requires PostgreSQL: FIDELE_TEST_POSTGRES_URL is not set")
BACKENDS = ["sqlite", "postgres"] if PG_URL else ["sqlite"]
# Tests assert results, never timings: on a loaded machine (CI beside a database, two cores)
# hypothesis' deadline and "generation is slow" checks would fail correct code.
hypothesis_settings.register_profile(
    "fidele", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("fidele")

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SECRET = "test-secret-key"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Block outbound connections except loopback and unix sockets."""
    real = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "localhost", "::1", "testserver"):
            raise RuntimeError(f"network access to {host} blocked in tests")
        return real(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


def _reset_postgres(url: str) -> Engine:
    engine = make_engine(url, pool_size=20)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    return engine


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    if request.param == "postgres":
        assert PG_URL
        eng = _reset_postgres(PG_URL)
    else:
        eng = make_engine(f"sqlite:///{tmp_path_factory.mktemp('db') / 'fidele.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def backend(engine: Engine) -> str:
    return engine.dialect.name


@pytest.fixture
def connection(engine: Engine) -> Iterator[object]:
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def factory(connection: object) -> sessionmaker[Session]:
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    s = factory()
    yield s
    s.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def settings(engine: Engine) -> Settings:
    return Settings(
        env="test", database_url=str(engine.url), secret_key=SECRET, embedded_worker=False
    )


@pytest.fixture
def app(settings: Settings, engine: Engine, clock: FrozenClock, factory: sessionmaker[Session]):
    return create_app(
        settings, engine=engine, clock=clock, sessionmaker=factory, start_worker=False
    )


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as c:
        yield c


@pytest.fixture
def tenant(session: Session, clock: FrozenClock) -> Tenant:
    t = make_tenant(session, clock.now(), name="Shop A")
    session.commit()
    return t


@pytest.fixture
def api(client: TestClient, tenant: Tenant) -> TestClient:
    """A client authenticated as the tenant's read/write/admin key."""
    client.headers["Authorization"] = f"Bearer {tenant.key}"
    return client


@pytest.fixture
def committed_engine(engine: Engine) -> Iterator[Engine]:
    """For tests that need real commits (parallel connections): tables are emptied after."""
    yield engine
    import_all_models()
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An empty database for another process (the console script, a served API): a SQLite
    file ``fidele.db`` in ``tmp_path``, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fidele.db'}"
        return
    assert PG_URL
    url = make_url(PG_URL)
    name = f"fidele_empty_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
