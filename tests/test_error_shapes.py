"""Errors that are not the input's fault keep the JSON error shape: the database busy or gone
is a 503 with Retry-After (nothing committed: retrying is safe), anything else a 500."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from fidele.app import database_trouble
from fidele.deps import SessionDep

CASES = [
    (OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked")), "busy"),
    (PoolTimeout("QueuePool limit of size 10 overflow 10 reached"), "busy"),
    (OperationalError("SELECT 1", {}, sqlite3.OperationalError("disk I/O error")), "unavailable"),
    (sqlite3.OperationalError("unable to open database file"), "unavailable"),
]


@pytest.mark.parametrize(("error", "kind"), CASES)
def test_database_trouble_is_a_503_with_retry_after(
    app: FastAPI, error: Exception, kind: str
) -> None:
    @app.get("/test/trouble")
    def trouble(session: SessionDep) -> None:
        raise error

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/test/trouble")
    assert r.status_code == 503, r.text
    assert r.json()["error"] == kind and r.json()["detail"]
    assert int(r.headers["retry-after"]) >= 1


def test_other_errors_are_a_json_500(app: FastAPI) -> None:
    @app.get("/test/bug")
    def bug(session: SessionDep) -> None:
        raise RuntimeError("a bug")

    @app.get("/test/sql-bug")
    def sql_bug(session: SessionDep) -> None:
        raise ProgrammingError("SELEC 1", {}, sqlite3.ProgrammingError("syntax"))

    with TestClient(app, raise_server_exceptions=False) as client:
        for path in ("/test/bug", "/test/sql-bug"):
            r = client.get(path)
            assert r.status_code == 500, r.text
            assert r.json()["error"] == "internal_error"
    assert database_trouble(RuntimeError("x")) is None
