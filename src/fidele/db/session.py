"""Sessions. Services never commit: the request, the job or the CLI command owns the transaction
and commits at the edge (here)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

AfterCommit = Callable[[], None]


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


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
