"""Sessions. Services never commit: the request, the job or the CLI command owns the transaction
and commits at the edge (here)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fidele.db.engine import READONLY

AfterCommit = Callable[[], None]


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def read_only(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """``factory``'s sessions in a transaction that only reads: on SQLite a deferred BEGIN,
    which takes no write lock and waits for no writer (WAL). A factory bound to something else
    than an engine (a test's connection) is returned as it is."""
    bind = factory.kw.get("bind")
    if not isinstance(bind, Engine):
        return factory
    return sessionmaker(**{**factory.kw, "bind": bind.execution_options(**{READONLY: True})})


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error, then run after-commit hooks."""
    session = factory()
    try:
        yield session
        session.commit()
        for hook in session.info.pop("after_commit", []):
            hook()
    except BaseException:
        session.rollback()
        session.info.pop("after_commit", None)
        raise
    finally:
        session.close()


def after_commit(session: Session, hook: AfterCommit) -> None:
    """Run ``hook`` once the surrounding transaction has committed; dropped on rollback."""
    session.info.setdefault("after_commit", []).append(hook)
