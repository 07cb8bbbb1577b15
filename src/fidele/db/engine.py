"""Engines for SQLite (WAL, one writer at a time) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError

READONLY = "fidele_readonly"
# A pooled connection idle longer than this is pinged before use (see _ping_when_idle).
PING_AFTER_IDLE_SECONDS = 5.0


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


# Without a bound, a CLI command or job waits this long for SQLite's write lock.
SQLITE_DEFAULT_BUSY_SECONDS = 30.0


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    lock_timeout: float | None = None,
    pool_timeout: float = 30.0,
    connect_timeout: float = 10.0,
) -> Engine:
    """An engine for ``url``. ``lock_timeout`` bounds every wait for a lock (PostgreSQL's
    ``lock_timeout``, SQLite's ``busy_timeout``): the statement then fails, and the HTTP layer
    answers 503 with Retry-After, instead of a request hanging while it holds its connection.
    ``pool_timeout`` bounds the wait for a pooled connection, ``connect_timeout`` for a new one
    (PostgreSQL)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        busy = SQLITE_DEFAULT_BUSY_SECONDS if lock_timeout is None else lock_timeout
        return _sqlite_engine(url, echo=echo, busy_timeout=busy, pool_timeout=pool_timeout)
    options = f"-c lock_timeout={int(lock_timeout * 1000)}" if lock_timeout else None
    connect_args: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
    if options:
        connect_args["options"] = options
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        connect_args=connect_args,
        echo=echo,
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for a connection idle over ``PING_AFTER_IDLE_SECONDS``.

    Pinging every checkout cost one round trip per request. A connection handed back moments
    ago (the busy case) was alive then; if the server dropped it within those seconds, that one
    request fails and SQLAlchemy invalidates the pool, so the next requests reconnect. An idle
    connection (a database restarted overnight, a proxy's idle timeout) is pinged first and
    silently replaced if dead, as with ``pool_pre_ping``."""

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the driver's own error class: the connection is gone
            raise DisconnectionError(str(exc)) from exc
        if not alive:
            raise DisconnectionError("ping failed")


def _sqlite_engine(url: str, *, echo: bool, busy_timeout: float, pool_timeout: float) -> Engine:
    in_memory = url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url
    pool: dict[str, Any] = {} if in_memory else {"pool_timeout": pool_timeout}
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": busy_timeout},
        **pool,
    )
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take control of transactions ourselves (pysqlite's implicit BEGIN breaks SAVEPOINT).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a transaction that reads then writes can never
        # fail mid-way with SQLITE_BUSY on lock upgrade; writers queue on busy_timeout instead.
        # Connections marked read-only take a deferred BEGIN and never wait for writers (WAL).
        readonly = conn.get_execution_options().get(READONLY)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine
