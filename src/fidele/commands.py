"""The core commands of `fidele`: the database schema, the HTTP server and the job worker
(`fidele.cli` registers them only when they can be invoked: `fidele analytics clv` does not
import `fidele.kit.cli` and its rich console)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import typer

from fidele.kit import cli as k


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
    k.check_port(host, port)  # before the migrations too: a taken port fails at once
    k.engine()
    k.serve_api(host, port, workers=workers, log_level="info", access_log=access_log)


def worker(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Run due jobs once and exit"),
    force: bool = typer.Option(False, "--force", help="Run every job now, due or not"),
    interval: float = typer.Option(30.0, help="Seconds between rounds of scheduled jobs"),
    only: str | None = typer.Option(
        None,
        "--only",
        help="Run only these parts, comma-separated: jobs, webhooks, segments, messages, "
        "journeys (default: FIDELE_WORKER_PARTS, or all), e.g. processes of their own for the "
        "journeys and for the deliveries",
    ),
    as_json: bool = k.JsonOpt,
) -> None:
    """Run scheduled jobs and deliver the outbox continuously (safe to run in several processes
    at once on PostgreSQL)."""
    if ctx.invoked_subcommand is not None:
        return
    import logging

    from fidele.kit.plugins import load_everything
    from fidele.settings import get_settings
    from fidele.worker.runner import BackgroundRunner, drain_loops, parse_parts, run_due

    logging.basicConfig(level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per webhook delivered
    load_everything()
    settings = get_settings()
    if once and only:
        raise typer.BadParameter(
            "--only is for the continuous worker, not --once", param_hint="--only"
        )
    try:
        parts = parse_parts(only if only is not None else settings.worker_parts)
    except ValueError as exc:
        hint = "--only" if only is not None else "FIDELE_WORKER_PARTS"
        raise typer.BadParameter(str(exc), param_hint=hint) from None
    factory = k.factory()
    if once:
        runs = run_due(factory, k.clock, force=force) + drain_loops(factory, k.clock)
        _print_runs(runs, as_json)
        return
    if force:
        run_due(factory, k.clock, force=True)
    runner = BackgroundRunner(
        None, k.clock, settings, factory=factory, interval=interval, parts=parts
    )
    runner.start()
    logging.getLogger("fidele.worker").info("running: %s", ", ".join(runner.running()))
    runner.wait()


def worker_run_once(
    now: str | None = typer.Option(
        None, "--now", help="Run as of this instant (ISO 8601 with a zone), not the clock's"
    ),
    as_json: bool = k.JsonOpt,
) -> None:
    """Run every job once as of NOW (each does what is due then: enrollments to advance,
    messages to deliver, dates and predictions to enroll) and exit: for cron, support, and
    playing a year of journeys in a few commands."""
    from fidele.kit.clock import FrozenClock, as_utc
    from fidele.kit.plugins import load_everything
    from fidele.worker.runner import drain_loops, run_due

    clock = k.clock
    if now is not None:
        try:
            clock = FrozenClock(as_utc(datetime.fromisoformat(now)))
        except ValueError as exc:
            raise typer.BadParameter(f"{now!r}: {exc} (e.g. 2026-12-31T09:00:00Z)") from None
    load_everything()
    factory = k.factory()
    # loops first (what was due before the jobs), the jobs (they enroll and deliver), the
    # loops again (the new enrollments' first steps), then the jobs that deliver what they sent
    runs = drain_loops(factory, clock) + run_due(factory, clock, force=True)
    runs += drain_loops(factory, clock)
    delivering = {r.name for r in runs if "deliver" in r.name and r.ran}
    if delivering:
        runs += run_due(factory, clock, force=True, only=delivering)
    _print_runs(runs, as_json)
    if any(r.error for r in runs):
        raise typer.Exit(1)


def _print_runs(runs: list[Any], as_json: bool) -> None:
    rows = [{"job": r.name, "ran": r.ran, "result": r.result, "error": r.error} for r in runs]
    k.print_rows(rows, "json" if as_json else "table")


def register(root: typer.Typer) -> None:
    db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
    db_app.command("upgrade")(db_upgrade)
    db_app.command("revision")(db_revision)
    root.add_typer(db_app, name="db")
    root.command()(serve)
    worker_app = typer.Typer(invoke_without_command=True)
    worker_app.callback()(worker)
    worker_app.command("run-once")(worker_run_once)
    root.add_typer(worker_app, name="worker")
