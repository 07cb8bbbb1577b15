"""Generic repository: all SQL lives in repositories, which hold the session."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, String, Table, Text, any_, bindparam, select, text
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


_PREBUILT: dict[tuple[str, str], Any] = {}


def prebuilt(session: Session, name: str, build: Callable[[Any], Any]) -> Any:
    """A statement built once per dialect and executed with parameters: building a Core
    statement and its cache key costs ~0.3-1 ms of CPU per call (an 18-column INSERT with
    ``.values``), which a hot path pays on every request otherwise. ``build`` gets the
    dialect's ``insert`` (see :func:`dialect_insert`) and must use ``bindparam``s or rely
    on the execution's parameters for every value."""
    key = (session.get_bind().dialect.name, name)
    found = _PREBUILT.get(key)
    if found is None:
        found = _PREBUILT[key] = build(dialect_insert(session))
    return found


def insert_unless_exists(
    session: Session, table: Table, unique: Sequence[str], values: dict[str, Any]
) -> int | None:
    """Insert a row unless one with the same ``unique`` columns exists: its new id, or None.
    One statement, no savepoint: a concurrent twin's INSERT waits for this transaction and
    then inserts nothing (``ON CONFLICT DO NOTHING``) instead of failing it."""
    stmt = prebuilt(
        session,
        f"insert_unless_exists:{table.name}:{','.join(unique)}",
        lambda insert: (
            insert(table).on_conflict_do_nothing(index_elements=unique).returning(table.c.id)
        ),
    )
    return session.execute(stmt, values).scalar_one_or_none()


def insert_or_twin(session: Session, obj: object) -> bool:
    """Insert ``obj`` in a savepoint; False when a unique constraint says a concurrent writer
    (or an earlier call) already inserted its twin: the caller then reads that one."""
    try:
        with session.begin_nested():
            session.add(obj)
    except IntegrityError:
        return False
    return True


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a bulk insert")
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_rows(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as one JSON array (aware datetimes in ISO 8601), the parameter of
    ``jsonb_to_recordset``. A batch's rows mostly carry the same few instants (its ``now``):
    each distinct datetime is converted once."""
    seen: dict[datetime, str] = {}

    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            found = seen.get(value)
            if found is None or value.tzinfo is None:
                found = seen[value] = _json_default(value)
            return found
        return _json_default(value)

    return json.dumps(list(rows), default=default)


def bulk_insert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    conflict: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Insert many rows (all with the same keys) in one statement; ``conflict``: the unique
    columns whose clash skips the row (``ON CONFLICT DO NOTHING``); the ``returning`` columns
    of the rows written. PostgreSQL gets the rows as one JSON parameter
    (``jsonb_to_recordset``): a multi-VALUES statement of thousands of placeholders costs the
    driver ~20 ms of parsing per batch; SQLite gets the dialect's batched executemany."""
    if not rows:
        return []
    # the Python-side column defaults the ORM would apply (PostgreSQL gets plain rows); a
    # column whose default is NULL (and has no server default) is left out: NULL anyway
    defaults = {
        c.name: c.default
        for c in table.columns
        if c.name not in rows[0]
        and c.default is not None
        and not c.primary_key
        and not (c.default.is_scalar and c.default.arg is None and c.server_default is None)  # type: ignore[attr-defined]
    }
    if defaults:
        scalars = {n: d.arg for n, d in defaults.items() if d.is_scalar}  # type: ignore[attr-defined]
        calls = {n: d.arg for n, d in defaults.items() if not d.is_scalar}  # type: ignore[attr-defined]
        rows = [{**scalars, **{n: f(None) for n, f in calls.items()}, **r} for r in rows]
    names = list(rows[0])
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        stmt = sqlite.insert(table)
        if conflict:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(conflict))
        if returning:
            stmt = stmt.returning(*(table.c[n] for n in returning))
            return [tuple(r) for r in session.execute(stmt, list(rows))]
        session.execute(stmt, list(rows))
        return []
    quote = dialect.identifier_preparer.quote
    cols = ", ".join(quote(n) for n in names)
    typed = ", ".join(f"{quote(n)} {table.c[n].type.compile(dialect=dialect)}" for n in names)
    sql = (
        f"INSERT INTO {quote(table.name)} ({cols}) SELECT {cols} "
        f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({typed})"
    )
    if conflict:
        sql += f" ON CONFLICT ({', '.join(quote(n) for n in conflict)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(quote(n) for n in returning)}"
    payload = json_rows(rows)
    result = session.execute(text(sql), {"rows": payload})
    return [tuple(r) for r in result] if returning else []


def in_(session: Session, column: Any, values: Iterable[Any]) -> Any:
    """``column IN values`` for long lists: ``= ANY(array)`` on PostgreSQL (one parameter,
    not one placeholder per value for the driver to parse), ``IN (...)`` elsewhere."""
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        # text[] for string columns: a varchar[] parameter is cast to text[] at run time and
        # the planner then cannot use the column's index
        element = Text() if isinstance(column.type, String) else column.type
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(element)))
    return column.in_(values)
