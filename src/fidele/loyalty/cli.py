from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fidele.kit import cli as k
from fidele.ledger import service as ledger
from fidele.loyalty import audit, config, members, replay, reports

app = typer.Typer(help="Loyalty: rules, ledger checks, settlement, replay.", no_args_is_help=True)
rules_app = typer.Typer(help="The programme's earning scale.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
ProgrammeOpt = typer.Option(..., "--programme", help="Programme id")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="loyalty")


@app.command()
def verify(as_json: bool = k.JsonOpt) -> None:
    """Check every account against its entries and every figure derived from the ledger
    (lifetime earned and spent, lots, rewards issued, budgets and caps) against its source;
    exit 1 on any mismatch."""
    with k.unit_of_work() as session:
        result = ledger.verify(session)
        drifts = audit.verify(session)
    data = {
        "ok": result.ok and not drifts,
        "mismatched_accounts": result.mismatched_accounts,
        "unbalanced_postings": result.unbalanced_postings,
        "nonzero_totals": result.nonzero_totals,
        "drifted_figures": [asdict(d) for d in drifts],
    }
    if as_json:
        k.print_json(data)
    else:
        if result.ok:
            k.console.print("ledger OK")
        else:
            k.console.print(f"[red]ledger mismatch:[/red] {data}")
        for d in drifts:
            k.console.print(
                f"[red]drift:[/red] {d.subject} {d.figure}: stored {d.stored}, "
                f"source gives {d.expected}"
            )
        if not drifts:
            k.console.print("derived figures OK")
    if not data["ok"]:
        raise typer.Exit(1)


@rules_app.command("load")
def rules_load(
    file: Path = typer.Argument(..., exists=True, dir_okay=False), programme: int = ProgrammeOpt
) -> None:
    """Validate a YAML scale and make it the active one; an invalid file changes nothing."""
    try:
        scale = config.parse_yaml(file.read_text())
    except config.ScaleError as exc:
        for line, loc, msg in exc.errors:
            k.console.print(f"[red]{file}:{line or '?'}[/red] {loc}: {msg}")
        raise typer.Exit(1) from exc
    with k.unit_of_work() as session:
        members.set_scale(session, programme, scale, k.clock.now())
    k.console.print(f"rules loaded: {len(scale.rules)} rules, {len(scale.tiers.levels)} tiers")


@rules_app.command("show")
def rules_show(programme: int = ProgrammeOpt) -> None:
    """Print the active scale as JSON."""
    with k.unit_of_work() as session:
        k.print_json(members.scale_at(session, programme).model_dump(mode="json"))


def _date(value: str | None, default: datetime) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else default


@app.command()
def settlement(
    programme: int = ProgrammeOpt,
    start: str | None = typer.Option(None, "--from", help="YYYY-MM-DD"),
    end: str | None = typer.Option(None, "--to", help="YYYY-MM-DD (exclusive)"),
    as_json: bool = k.JsonOpt,
) -> None:
    """What each merchant of a coalition owes or is owed; the lines sum to zero."""
    now = k.clock.now()
    with k.unit_of_work() as session:
        data = reports.settlement(
            session, programme, _date(start, datetime(1970, 1, 1, tzinfo=UTC)), _date(end, now)
        )
    if as_json:
        k.print_json(data)
    else:
        k.print_rows(data["lines"], title=f"settlement ({data['currency']})")


@app.command("replay")
def replay_cmd(programme: int = ProgrammeOpt, as_json: bool = k.JsonOpt) -> None:
    """Rebuild the programme's loyalty state from the event log."""
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with k.unit_of_work() as session, Progress(*columns, console=k.console, disable=as_json) as bar:
        total = replay.event_count(session, programme)
        task = bar.add_task("replaying events, then writing", total=total)
        count = replay.replay(
            session, programme, k.clock.now(), progress=lambda n: bar.advance(task, n)
        )
    if as_json:
        k.print_json({"events": count})
    else:
        k.console.print(f"replayed {count} events")
