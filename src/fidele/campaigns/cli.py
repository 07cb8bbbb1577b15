"""`fidele flows ...`: load a flow definition (YAML or JSON), list flows, install the
ready-made journeys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from fidele.kit import cli as k
from fidele.tenancy.service import Caller, get_merchant

flows_app = typer.Typer(help="Flows (journeys): load, list, ready-made ones.", no_args_is_help=True)
MerchantOpt = typer.Option(..., "--merchant", help="Merchant id")


def _caller(session, merchant_id: int) -> Caller:  # type: ignore[no-untyped-def]
    merchant = get_merchant(session, merchant_id)
    return Caller(merchant.id, merchant.programme_id, None, frozenset({"admin"}))


def _row(flow: Any) -> dict[str, Any]:
    return {
        "id": flow.id,
        "name": flow.name,
        "status": flow.status,
        "version": flow.active_version,
        "trigger": flow.trigger,
        "enrollments": flow.enrollments,
    }


@flows_app.command("load")
def load(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="YAML or JSON file"),
    merchant: int = MerchantOpt,
    activate: bool = typer.Option(False, "--activate", help="Activate it once saved"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Save the flow of FILE (a new version if the merchant has a flow of that name). A file
    that does not validate is refused with each error's line, path and reason; nothing
    changes."""
    from fidele.campaigns import domain, service

    try:
        definition = domain.parse_yaml(file.read_text())
    except domain.FlowDefinitionError as exc:
        for line, loc, msg in exc.errors:
            where = f"{file}:{line}: " if line else f"{file}: "
            k.console.print(f"[red]error:[/red] {where}{loc}: {msg}")
        raise typer.Exit(1) from None
    with k.unit_of_work() as session:
        flow = service.save(session, _caller(session, merchant), definition, k.clock.now())
        if activate:
            flow.status = "active"
        row = _row(service.out(session, [flow])[0])
    k.print_json(row) if as_json else k.print_rows([row], title="flow saved")


@flows_app.command("list")
def list_flows(merchant: int = MerchantOpt, as_json: bool = k.JsonOpt) -> None:
    """The merchant's flows, their status, version and enrollments by status."""
    from fidele.campaigns import service

    with k.unit_of_work() as session:
        caller = _caller(session, merchant)
        rows = [_row(f) for f in service.out(session, service.listing(session, caller))]
    k.print_rows(rows, "json" if as_json else "table", title="flows")


@flows_app.command("templates")
def list_templates(as_json: bool = k.JsonOpt) -> None:
    """The ready-made journeys (install with `fidele flows install NAME`)."""
    from fidele.campaigns import templates

    rows = [t.model_dump(exclude={"installed"}) for t in templates.listing()]
    if not as_json:
        rows = [{k_: v for k_, v in r.items() if k_ != "description"} for r in rows]
    k.print_rows(rows, "json" if as_json else "table", title="ready-made journeys")


@flows_app.command("install")
def install(
    name: str | None = typer.Argument(None, help="A ready-made journey (see `flows templates`)"),
    merchant: int = MerchantOpt,
    all_: bool = typer.Option(False, "--all", help="Install every ready-made journey"),
    activate: bool = typer.Option(False, "--activate", help="Activate them (off otherwise)"),
    incentive: str | None = typer.Option(
        None, help="win_back's incentive: coupon, free_shipping or points"
    ),
    as_json: bool = k.JsonOpt,
) -> None:
    """Install ready-made journeys with their FR/EN messages, off until activated (installing
    again keeps the merchant's edits)."""
    from fidele.campaigns import library, service, templates

    if (name is None) == (not all_):
        k.console.print("[red]error:[/red] give a journey NAME or --all")
        raise typer.Exit(2)
    names = [j.name for j in library.JOURNEYS] if all_ else [name]
    with k.unit_of_work() as session:
        caller = _caller(session, merchant)
        now = k.clock.now()
        flows = [
            templates.install(session, caller, n, now, activate=activate, incentive=incentive)[0]
            for n in names
            if n is not None
        ]
        rows = [_row(f) for f in service.out(session, flows)]
    k.print_rows(rows, "json" if as_json else "table", title="installed")


def register(root: typer.Typer) -> None:
    root.add_typer(flows_app, name="flows")
