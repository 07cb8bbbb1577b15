"""The SQL of the batch replay (:mod:`fidele.loyalty.bulk`): read the log as plain columns,
write every table at once.

PostgreSQL reads the order payloads' fields server-side (``->>`` per field for the orders, a
third faster than ``jsonb_to_record``; ``jsonb_to_recordset`` for the lines: no JSON decoding in
Python) with ``COPY ... TO STDOUT``, and writes each table with one COPY of a CSV buffer
built by polars. A table that is empty before the load has its secondary indexes, unique and
foreign-key constraints dropped for the COPY and recreated (and validated) after it, in the same
transaction: one sort per index and one join per foreign key instead of a trigger and an index
insertion per row. SQLite reads the JSON in Python and inserts with executemany."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
import polars as pl
import psycopg
from psycopg import pq
from sqlalchemy import JSON, func, insert, select, text
from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.events.models import Event
from fidele.kit.clock import as_utc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Binary COPY: signature, flags, header extension length; a field count of -1 ends the rows.
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_BINARY_TRAILER = b"\xff\xff"
US = 1_000_000

EVENT_SCHEMA = {
    "id": pl.Int64,
    "type": pl.String,
    "merchant_id": pl.Int64,
    "customer_id": pl.Int64,
    "order_id": pl.Int64,
    "received_us": pl.Int64,
    "placed_us": pl.Int64,
    "currency": pl.String,
    "total": pl.Int64,
    "discounts": pl.Int64,
    "shipping": pl.Int64,
    "tax": pl.Int64,
    "channel": pl.String,
    "occurred_us": pl.Int64,
    "refunded_total": pl.Int64,  # of order.refunded
}
LINE_SCHEMA = {
    "id": pl.Int64,
    "n": pl.Int64,
    "quantity": pl.Int64,
    "unit_price": pl.Int64,
    "category": pl.String,
    "product_id": pl.String,
    "type": pl.String,
}

_PG_EVENTS = """
SELECT e.id, e.type, e.merchant_id, e.customer_id, e.order_id,
       (extract(epoch FROM e.received_at) * 1000000)::bigint,
       (extract(epoch FROM (p ->> 'placed_at')::timestamptz) * 1000000)::bigint,
       p ->> 'currency', (p ->> 'total')::bigint, coalesce((p ->> 'discounts')::bigint, 0),
       coalesce((p ->> 'shipping')::bigint, 0), coalesce((p ->> 'tax')::bigint, 0),
       p ->> 'channel', (extract(epoch FROM e.occurred_at) * 1000000)::bigint,
       CASE WHEN e.type = 'order.refunded' THEN (e.payload ->> 'refunded_total')::bigint END
FROM events e, LATERAL (SELECT CASE WHEN e.type = 'order.placed' THEN e.payload END AS p) x
WHERE e.programme_id = {programme}
ORDER BY e.id
"""
_PG_LINES = """
SELECT e.id, x.n, x.quantity, x.unit_price, x.category, x.product_id,
       coalesce(x.type, 'product')
FROM events e
CROSS JOIN LATERAL ROWS FROM (jsonb_to_recordset(e.payload -> 'lines') AS (
    quantity bigint, unit_price bigint, category text, product_id text, type text))
    WITH ORDINALITY AS x(quantity, unit_price, category, product_id, type, n)
WHERE e.programme_id = {programme} AND e.type = 'order.placed'
ORDER BY e.id, x.n
"""


def to_us(at: datetime) -> int:
    d = as_utc(at) - EPOCH
    return (d.days * 86_400 + d.seconds) * US + d.microseconds


def customers(session: Session, programme_id: int) -> dict[int, tuple[int, str | None, bool]]:
    """Customer id -> (merchant id, normalised email, erased)."""
    rows = session.execute(
        select(
            Customer.id, Customer.merchant_id, Customer.email_normalized, Customer.erased_at
        ).where(Customer.programme_id == programme_id)
    )
    return {i: (m, e, erased is not None) for i, m, e, erased in rows}


def max_id(session: Session, model: Any) -> int:
    return int(session.execute(select(func.coalesce(func.max(model.id), 0))).scalar_one())


def events(
    session: Session, programme_id: int, batch: int
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """The programme's log in id order, in batches: one row per event (order fields null for
    other types) and one per order line (``id`` is the event's, ``n`` the line's rank).

    PostgreSQL reads the whole log in two COPYs (one scan each; a few hundred bytes per event
    in memory), SQLite batch by batch."""
    if not _pg(session):
        yield from _sqlite_batches(session, int(programme_id), int(batch))
        return
    read = partial(pl.read_csv, has_header=False)
    query = partial(_copy_out, session, programme=int(programme_id))
    frame = read(query(_PG_EVENTS), schema=EVENT_SCHEMA)
    lines = read(query(_PG_LINES), schema=LINE_SCHEMA)
    ids = lines["id"]
    for start in range(0, frame.height, batch):
        part = frame.slice(start, batch)
        lo, hi = ids.search_sorted(part["id"][0]), ids.search_sorted(part["id"][-1], "right")
        yield part, lines.slice(lo, hi - lo)


def _copy_out(session: Session, query: str, programme: int) -> io.BytesIO:
    """``COPY (query) TO STDOUT`` into a buffer, one blocking libpq call per row: psycopg's
    ``Copy`` iterator runs a generator and a wait loop in Python for each row (several seconds
    for the 2M rows of 1M orders)."""
    raw = session.connection().connection.driver_connection
    buf = io.BytesIO()
    sql = f"COPY ({query.format(programme=programme)}) TO STDOUT (FORMAT csv)"
    with raw.cursor() as cur, cur.copy(sql):
        pgconn = raw.pgconn
        while (got := pgconn.get_copy_data(0))[0] >= 0:  # -1: the rows are over
            buf.write(got[1])
        while (res := pgconn.get_result()) is not None:  # then the COPY's own result
            if res.status != pq.ExecStatus.COMMAND_OK:
                raise psycopg.errors.error_from_result(res, encoding=raw.info.encoding)
    buf.seek(0)
    return buf


def _sqlite_batches(
    session: Session, programme: int, batch: int
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    last = 0
    while found := _sqlite_batch(session, programme, last, batch):
        yield found
        last = int(found[0]["id"][-1])


def _sqlite_batch(
    session: Session, programme: int, after: int, limit: int
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    rows = session.execute(
        select(
            Event.id,
            Event.type,
            Event.merchant_id,
            Event.customer_id,
            Event.order_id,
            Event.received_at,
            Event.payload,
            Event.occurred_at,
        )
        .where(Event.programme_id == programme, Event.id > after)
        .order_by(Event.id)
        .limit(limit)
    ).all()
    if not rows:
        return None
    events_, lines = [], []
    for id_, type_, merchant, customer, order, at, p, occurred in rows:
        head = (id_, type_, merchant, customer, order, to_us(at))
        tail = (to_us(occurred), p.get("refunded_total") if type_ == "order.refunded" else None)
        if type_ != "order.placed":
            events_.append(head + (None,) * 7 + tail)
            continue
        events_.append(
            head
            + (
                to_us(datetime.fromisoformat(p["placed_at"])),
                p["currency"],
                int(p["total"]),
                int(p.get("discounts", 0)),
                int(p.get("shipping", 0)),
                int(p.get("tax", 0)),
                p.get("channel"),
            )
            + tail
        )
        for n, ln in enumerate(p["lines"], start=1):
            lines.append(
                (id_, n, int(ln["quantity"]), int(ln["unit_price"]), ln.get("category"))
                + (ln.get("product_id"), ln.get("type", "product"))
            )
    return (
        pl.DataFrame(events_, schema=EVENT_SCHEMA, orient="row"),
        pl.DataFrame(lines, schema=LINE_SCHEMA, orient="row"),
    )


def _pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


class Writer:
    """Writes whole tables: ``load(table, columns)`` with one array or list per column."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pg = _pg(session)
        self.deferred: list[str] = []
        self.emptied: set[str] = set()  # tables found empty by defer_indexes
        if self.pg:
            self.raw = session.connection().connection.driver_connection
            self._exec("SET LOCAL maintenance_work_mem = '512MB'")  # index builds sort in memory

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.raw.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def defer_indexes(self, tables: Sequence[str]) -> None:
        """Drop the secondary indexes and the unique and foreign-key constraints of those
        ``tables`` that are empty, to recreate them in :meth:`finish` (PostgreSQL only)."""
        if not self.pg:
            return
        for table in tables:
            if self._exec(f"SELECT 1 FROM {table} LIMIT 1"):
                continue
            self.emptied.add(table)
            constraints = self._exec(
                "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                "WHERE c.conrelid = %s::regclass AND (c.contype = 'f' OR (c.contype = 'u' "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint r "  # a unique key an FK uses stays
                "WHERE r.contype = 'f' AND r.conindid = c.conindid))) "
                "ORDER BY c.contype DESC, c.conname",
                (table,),
            )
            indexes = self._exec(
                "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass "
                "AND NOT x.indisprimary AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) "
                "ORDER BY i.relname",
                (table,),
            )
            for name, definition in constraints:
                self._exec(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                self.deferred.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            for name, definition in indexes:
                self._exec(f'DROP INDEX "{name}"')
                self.deferred.insert(0, definition)  # indexes first: they speed up FK checks

    def load(self, table: Any, columns: pl.DataFrame | dict[str, Any]) -> None:
        frame = pl.DataFrame(columns)
        if frame.is_empty():
            return
        if not self.pg:
            self.session.execute(insert(table), _dicts(table, frame))
            return
        buf = io.BytesIO()
        frame.write_csv(buf, include_header=False)
        self._copy(f"COPY {table.name} ({', '.join(frame.columns)}) FROM STDIN (FORMAT csv)", buf)

    def load_ints(self, table: Any, columns: dict[str, np.ndarray]) -> None:
        """Like :meth:`load` for columns of int64 without nulls, in PostgreSQL's binary COPY
        format built by numpy: no text to format here nor to parse on the server."""
        if not self.pg:
            self.load(table, columns)
            return
        n = len(next(iter(columns.values())))
        if not n:
            return
        fields = [("count", ">i2")]
        for k in range(len(columns)):
            fields += [(f"size{k}", ">i4"), (f"value{k}", ">i8")]
        rows = np.empty(n, dtype=fields)
        rows["count"] = len(columns)
        for k, values in enumerate(columns.values()):
            rows[f"size{k}"] = 8
            rows[f"value{k}"] = values
        buf = io.BytesIO()
        buf.write(_BINARY_HEADER)
        buf.write(rows.data)
        buf.write(_BINARY_TRAILER)
        self._copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT binary)", buf)

    def _copy(self, sql: str, buf: io.BytesIO) -> None:
        with self.raw.cursor() as cur, cur.copy(sql) as copy:
            view = buf.getbuffer()
            for start in range(0, len(view), 1 << 20):
                copy.write(view[start : start + (1 << 20)])

    def finish(self, tables: Sequence[str]) -> None:
        """Recreate what :meth:`defer_indexes` dropped and move the id sequences past the
        rows written."""
        for statement in self.deferred:
            self._exec(statement)
        self.deferred.clear()
        if not self.pg:
            return
        for table in tables:
            self.session.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT COALESCE(max(id), 0) + 1 FROM {table}), false)"
                )
            )


def _dicts(table: Any, frame: pl.DataFrame) -> list[dict[str, Any]]:
    json_cols = {c.name for c in table.columns if isinstance(c.type, JSON)}
    rows = frame.to_dicts()
    for row in rows:
        for col in json_cols & row.keys():
            row[col] = json.loads(row[col])
    return rows
