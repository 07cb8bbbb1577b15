"""Engines for SQLite (WAL, one writer at a time) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError, OperationalError

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


class FairLock:
    """A lock granted in the order it was asked for (first come, first served), with a timeout.

    SQLite lets one writer in at a time, and its busy handler makes the others sleep and retry
    (1, 2, 5 ... 100 ms): while they sleep the lock can sit free, and a transaction that has
    waited long sleeps longest, so newcomers overtake it (a membership round queued behind a
    stream of POSTs waited 10-15 s). Writers of one process queue here instead, and the lock
    passes straight to the next in line; other processes still meet SQLite's busy handler."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Event] = deque()

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held and not self._waiters:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over as the wait ended
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # handed over: still held, by the next in line
            else:
                self._held = False


_write_locks: dict[str, FairLock] = {}
_write_locks_guard = threading.Lock()


def _write_lock_for(database: str) -> FairLock:
    """One lock per database file in this process, whichever engines reach it."""
    key = os.path.realpath(database)
    with _write_locks_guard:
        return _write_locks.setdefault(key, FairLock())


class _QueuedWriterConnection(sqlite3.Connection):
    """A SQLite connection that gives back the process's write lock when its transaction ends
    (commit, rollback, close), whoever ends it: the session, the pool's reset, a disconnect."""

    write_lock: FairLock | None = None
    holding = False

    def _give_back(self) -> None:
        if self.holding:
            self.holding = False
            assert self.write_lock is not None
            self.write_lock.release()

    def commit(self) -> None:
        self._ending(super().commit)

    def rollback(self) -> None:
        self._ending(super().rollback)

    def _ending(self, end: Callable[[], None]) -> None:
        try:
            end()
        finally:
            if not self.in_transaction:
                self._give_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()


def _sqlite_engine(url: str, *, echo: bool, busy_timeout: float, pool_timeout: float) -> Engine:
    in_memory = url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url
    pool: dict[str, Any] = {} if in_memory else {"pool_timeout": pool_timeout}
    connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": busy_timeout}
    if not in_memory:
        connect_args["factory"] = _QueuedWriterConnection
    engine = create_engine(url, echo=echo, connect_args=connect_args, **pool)
    write_lock = None if in_memory else _write_lock_for(engine.url.database or "")
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take control of transactions ourselves (pysqlite's implicit BEGIN breaks SAVEPOINT).
        dbapi_conn.isolation_level = None
        if isinstance(dbapi_conn, _QueuedWriterConnection):
            dbapi_conn.write_lock = write_lock
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
        if readonly:
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_conn = conn.connection.dbapi_connection
        queued = isinstance(dbapi_conn, _QueuedWriterConnection) and not dbapi_conn.holding
        if queued:
            # This process's writers first queue in turn, then meet other processes at SQLite.
            if not dbapi_conn.write_lock.acquire(busy_timeout):
                # As SQLite itself says it when its busy handler gives up, wrapped as SQLAlchemy
                # wraps the driver's errors (callers retry or answer 503 on it).
                locked = sqlite3.OperationalError("database is locked")
                raise OperationalError("BEGIN IMMEDIATE", None, locked)
            dbapi_conn.holding = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if queued:
                dbapi_conn._give_back()
            raise

    return engine
