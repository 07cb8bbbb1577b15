"""The PostgreSQL store of the bulk path: COPY into staging tables, then set-based moves."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session


def _cell(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else value


class CopyStore:
    """Uses the session's own psycopg connection, so everything stays in its transaction."""

    def __init__(self, session: Session) -> None:
        self.conn = session.connection().connection.driver_connection

    def _copy(self, table: str, rows: list[dict[str, Any]]) -> None:
        cols = list(rows[0])
        with (
            self.conn.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row([_cell(v) for v in row.values()])

    def _stage(self, table: Table, rows: list[dict[str, Any]]) -> str:
        """A temporary table shaped like ``table``'s columns of ``rows``, filled by COPY."""
        cols = ", ".join(rows[0])
        stage = f"_import_{table.name}"
        with self.conn.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS "
                f"SELECT {cols} FROM {table.name} WITH NO DATA"
            )
            cur.execute(f"TRUNCATE {stage}")
        self._copy(stage, rows)
        return stage

    def insert_new(self, table: Table, rows: list[dict[str, Any]]) -> dict[str, int]:
        if not rows:
            return {}
        stage = self._stage(table, rows)
        cols = ", ".join(rows[0])
        with self.conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} "
                "ON CONFLICT (merchant_id, external_id) DO NOTHING "
                "RETURNING external_id, id"
            )
            return dict(cur.fetchall())

    def append(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._copy(table.name, rows)

    def lookup(
        self, table: Table, column: str, merchant_id: int, external_ids: list[str]
    ) -> dict[str, Any]:
        with self.conn.cursor() as cur:
            cur.execute(
                f"SELECT external_id, {column} FROM {table.name} "
                "WHERE merchant_id = %s AND external_id = ANY(%s)",
                (merchant_id, external_ids),
            )
            return dict(cur.fetchall())
