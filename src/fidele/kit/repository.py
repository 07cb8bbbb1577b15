"""Generic repository: all SQL lives in repositories, which hold the session."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fidele.db.base import Base

M = TypeVar("M", bound=Base)


class RepositoryBase(Generic[M]):
    model: type[M]

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, id_: Any) -> M | None:
        return self.session.get(self.model, id_)

    def add(self, obj: M, *, flush: bool = True) -> M:
        self.session.add(obj)
        if flush:
            self.session.flush()
        return obj

    def one_or_none(self, stmt: Select[tuple[M]]) -> M | None:
        return self.session.execute(stmt).scalars().one_or_none()

    def all(self, stmt: Select[tuple[M]]) -> Sequence[M]:
        return self.session.execute(stmt).scalars().all()

    def select(self) -> Select[tuple[M]]:
        return select(self.model)


def dialect_insert(session: Session) -> Any:
    """The dialect's ``insert`` (``on_conflict_do_nothing``/``_do_update`` for the session's
    database: PostgreSQL, or SQLite for any other)."""
    name = session.get_bind().dialect.name
    return postgresql.insert if name == "postgresql" else sqlite.insert


def insert_or_twin(session: Session, obj: object) -> bool:
    """Insert ``obj`` in a savepoint; False when a unique constraint says a concurrent writer
    (or an earlier call) already inserted its twin: the caller then reads that one."""
    try:
        with session.begin_nested():
            session.add(obj)
    except IntegrityError:
        return False
    return True
