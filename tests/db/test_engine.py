"""The PostgreSQL pool pings a connection before use only when it has been idle a while."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from fidele.db import engine as engine_mod
from fidele.db.engine import make_engine


@pytest.fixture
def pg(engine: Engine) -> Iterator[Engine]:
    # SQLite engines get no ping hook: the busy test then checks that nothing pings either.
    own = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1)
    yield own
    own.dispose()


def _pings(eng: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = eng.dialect.do_ping
    monkeypatch.setattr(eng.dialect, "do_ping", lambda c: calls.append(1) or real(c))
    return calls


def _pid(eng: Engine) -> int:
    with eng.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_busy_connection_is_not_pinged(
    pg: Engine, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _pings(pg, monkeypatch)
    for _ in range(3):
        with pg.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert calls == []


def test_idle_dead_connection_is_replaced(
    pg: Engine, backend: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "postgresql":
        assert _pings(pg, monkeypatch) == []  # SQLite engines have no ping hook at all
        return
    first = _pid(pg)
    with engine.connect() as other:  # the server drops the pooled connection
        other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first})
    monkeypatch.setattr(engine_mod, "PING_AFTER_IDLE_SECONDS", 0.0)  # as if idle for long
    calls = _pings(pg, monkeypatch)
    assert _pid(pg) != first  # pinged, found dead, replaced: the caller saw no error
    assert calls == [1]
