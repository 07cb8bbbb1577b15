"""The `fidele` command; each domain adds its commands via `fidele.<domain>.cli.register`.

The console script imports only the domain module of the command it runs (``fidele analytics
clv`` never imports the web or database stack); ``fidele --help`` and ``fidele.cli.app`` load
every domain."""

from __future__ import annotations

import pkgutil
import sys
from collections.abc import Iterable
from typing import Any

import typer

from fidele.kit import cli as k
from fidele.kit.plugins import optional_import

# Top-level command -> the module that registers it. A command not listed here (or a plain
# `fidele --help`) loads every domain, so a new domain works before it is listed.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "merchant": ("fidele.tenancy.cli", "fidele.events.cli"),
    "apikey": ("fidele.tenancy.cli",),
    "analytics": ("fidele.analytics.cli",),
    "demo": ("fidele.demo.cli",),
    "loyalty": ("fidele.loyalty.cli",),
    "coupons": ("fidele.promotions.cli",),
    "gift-cards": ("fidele.promotions.cli",),
    "checkout": ("fidele.promotions.cli",),
    "import": ("fidele.events.cli",),
    "sync": ("fidele.events.cli",),
    "db": (),
    "serve": (),
    "worker": (),
}


def db_upgrade(as_json: bool = k.JsonOpt) -> None:
    """Apply every pending migration to the configured database."""
    k.engine()
    if as_json:
        k.print_json({"status": "ok"})
    else:
        k.console.print("database is up to date")


def db_revision(
    message: str = typer.Option(..., "-m", "--message", help="What the migration does"),
) -> None:
    """(Developers) autogenerate a migration from the models against an empty scratch SQLite."""
    import subprocess
    import tempfile
    from pathlib import Path

    from alembic import command

    from fidele.db.engine import make_engine
    from fidele.db.migrate import alembic_config, upgrade

    with tempfile.TemporaryDirectory() as tmp:
        eng = make_engine(f"sqlite:///{Path(tmp) / 'scratch.db'}")
        upgrade(eng)
        with eng.begin() as conn:
            cfg = alembic_config(eng)
            cfg.attributes["connection"] = conn
            script = command.revision(cfg, message=message, autogenerate=True)
    ruff = Path(sys.executable).parent / "ruff"
    for rev in script if isinstance(script, list) else [script]:
        if rev is None:
            continue
        path = Path(rev.path)
        path.write_text(path.read_text().replace("astext_type=Text()", "astext_type=sa.Text()"))
        subprocess.run([str(ruff), "check", "-q", "--fix", str(path)], check=False)
        subprocess.run([str(ruff), "format", "-q", str(path)], check=False)


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind"),
    port: int = typer.Option(8000, help="Port"),
    workers: int = typer.Option(1, help="Worker processes (PostgreSQL only for more than 1)"),
    access_log: bool = typer.Option(True, help="Log every request (costs CPU per request)"),
) -> None:
    """Serve the HTTP API on the configured database (upgrading an empty one first)."""
    import uvicorn

    k.engine()
    uvicorn.run(
        "fidele.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=access_log,
    )


def worker(
    once: bool = typer.Option(False, "--once", help="Run due jobs once and exit"),
    force: bool = typer.Option(False, "--force", help="Run every job now, due or not"),
    interval: float = typer.Option(30.0, help="Seconds between rounds"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Run scheduled jobs (safe to run in several processes at once)."""
    import logging
    import time

    from fidele.worker.runner import run_due

    logging.basicConfig(level=logging.INFO)
    factory = k.factory()
    while True:
        runs = run_due(factory, k.clock, force=force)
        rows = [{"job": r.name, "ran": r.ran, "result": r.result, "error": r.error} for r in runs]
        if once:
            k.print_rows(rows, "json" if as_json else "table")
            return
        time.sleep(interval)


def _all_domain_modules() -> list[str]:
    import fidele

    return [f"fidele.{m.name}.cli" for m in pkgutil.iter_modules(fidele.__path__) if m.ispkg]


def build(modules: Iterable[str] | None = None) -> typer.Typer:
    """The root command with the core commands and the given domains' commands (all if None)."""
    root = typer.Typer(
        help="fidele: loyalty and retention engine for online shops.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
    db_app.command("upgrade")(db_upgrade)
    db_app.command("revision")(db_revision)
    root.add_typer(db_app, name="db")
    root.command()(serve)
    root.command()(worker)
    for name in _all_domain_modules() if modules is None else modules:
        module = optional_import(name)
        if module is not None and hasattr(module, "register"):
            module.register(root)
    return root


def _modules_for(argv: list[str]) -> tuple[str, ...] | None:
    command = next((a for a in argv if not a.startswith("-")), None)
    return COMMAND_MODULES.get(command) if command else None


_app: typer.Typer | None = None


def __getattr__(name: str) -> Any:
    """``fidele.cli.app``: the full command tree (tests, documentation)."""
    global _app
    if name == "app":
        if _app is None:
            _app = build()
        return _app
    raise AttributeError(name)


def main() -> None:
    build(_modules_for(sys.argv[1:]))()
