"""Helpers shared by every domain's CLI: the database, the clock, and output as table/CSV/JSON."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from fidele.errors import FideleError
from fidele.kit.clock import SystemClock

if TYPE_CHECKING:  # the database stack is imported only by commands that use it
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

console = Console(stderr=True)
clock = SystemClock()
JsonOpt = typer.Option(False, "--json", help="Print the result as JSON")


def engine() -> Engine:
    """The configured database, migrated to the latest schema."""
    from fidele.db.engine import make_engine
    from fidele.db.migrate import upgrade
    from fidele.settings import get_settings

    settings = get_settings()
    eng = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    upgrade(eng)
    return eng


def factory() -> sessionmaker[Session]:
    from fidele.db.session import make_sessionmaker

    return make_sessionmaker(engine())


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction for a CLI command; domain errors exit with code 1 and a message."""
    from fidele.db.session import transaction

    try:
        with transaction(factory()) as session:
            yield session
    except FideleError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, indent=None) + "\n")


def print_rows(
    rows: Sequence[dict[str, Any]], fmt: str = "table", title: str | None = None
) -> None:
    """Print rows as a rich table, CSV or JSON lines."""
    if fmt == "json":
        print_json(list(rows))
        return
    if fmt == "csv":
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        sys.stdout.write(out.getvalue())
        return
    from rich.table import Table

    table = Table(title=title)
    for col in rows[0] if rows else []:
        table.add_column(str(col))
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


def check_port(host: str, port: int) -> None:
    """Exit with a clear message (code 1) when ``host:port`` cannot be listened on.

    uvicorn binds only after the application's startup, so a port already taken (by the demo,
    say) printed "Application startup complete" before failing."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        console.print(f"[red]error:[/red] cannot resolve --host {host!r}: {exc.strerror}")
        raise typer.Exit(1) from exc
    with socket.socket(family, kind, proto) as sock:
        # as uvicorn binds: a port left in TIME_WAIT is usable, one with a listener is not
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            why = (
                "is already in use (by another `fidele serve` or `fidele demo`?): stop that "
                "server or pass another --port"
                if exc.errno == errno.EADDRINUSE
                else f"cannot be listened on: {exc.strerror}"
            )
            console.print(f"[red]error:[/red] {host}:{port} {why}")
            raise typer.Exit(1) from exc


def serve_api(host: str, port: int, **options: Any) -> None:
    """Serve ``fidele.app:create_app`` with uvicorn, after checking that the port is free."""
    import uvicorn

    check_port(host, port)
    uvicorn.run("fidele.app:create_app", factory=True, host=host, port=port, **options)
