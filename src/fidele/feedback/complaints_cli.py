"""`fidele complaints list|show|stats` (--json)."""

from __future__ import annotations

from typing import Any

import typer

from fidele.kit import cli as k

app = typer.Typer(help="Complaints: the queue, one complaint, the figures.", no_args_is_help=True)
MerchantOpt = typer.Option(..., "--merchant", help="Merchant id")
STATUSES = ("open", "in_progress", "resolved", "rejected")


def _caller(session: Any, merchant: int) -> Any:
    from fidele.errors import NotFound
    from fidele.feedback.complaints_service import system_caller
    from fidele.tenancy.repository import MerchantRepository

    row = MerchantRepository(session).get(merchant)
    if row is None:
        raise NotFound(f"merchant {merchant} not found")
    return system_caller(row.id, row.programme_id)


def _row(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": c["id"],
        "customer": c["customer_id"],
        "category": c["category"],
        "status": c["status"],
        "opened_at": c["opened_at"],
        "first_response_due": c["first_response_due"],
        "resolution_due": c["resolution_due"],
        "breached": "yes" if c["first_response_breached"] or c["resolution_breached"] else "",
    }


@app.command("list")
def list_complaints(
    merchant: int = MerchantOpt,
    status: str | None = typer.Option(None, "--status", help=", ".join(STATUSES)),
    limit: int = typer.Option(500, "--limit", min=1, max=10_000),
    as_json: bool = k.JsonOpt,
) -> None:
    """The merchant's complaints (oldest first), with their SLA due times and breach flags."""
    from fidele.feedback.complaints_api import outs
    from fidele.feedback.complaints_repository import ComplaintRepository

    if status is not None and status not in STATUSES:
        k.console.print(f"[red]error:[/red] --status must be one of {', '.join(STATUSES)}")
        raise typer.Exit(2)
    now = k.clock.now()
    with k.unit_of_work() as session:
        caller = _caller(session, merchant)
        rows = ComplaintRepository(session).listing(
            caller.merchant_id, status=status, after_id=0, limit=limit
        )
        data = [o.model_dump(mode="json", exclude={"notes"}) for o in outs(session, rows, now)]
    if as_json:
        k.print_json(data)
    else:
        k.print_rows([_row(c) for c in data], title="complaints")


@app.command("show")
def show(complaint_id: int, merchant: int = MerchantOpt, as_json: bool = k.JsonOpt) -> None:
    """One complaint with its notes."""
    from fidele.feedback import complaints_service as service
    from fidele.feedback.complaints_api import outs

    now = k.clock.now()
    with k.unit_of_work() as session:
        row = service.get(session, _caller(session, merchant), complaint_id)
        data = outs(session, [row], now, notes=True)[0].model_dump(mode="json")
    if as_json:
        k.print_json(data)
        return
    notes = data.pop("notes")
    k.print_rows(
        [{key: value for key, value in data.items() if key != "gesture"}], title="complaint"
    )
    if notes:
        k.print_rows(notes, title="notes")


@app.command("stats")
def stats(merchant: int = MerchantOpt, as_json: bool = k.JsonOpt) -> None:
    """Complaint rate per 100 orders, response and resolution times, SLA breaches and the
    retention of complainants against customers without a complaint."""
    from fidele.feedback import complaints_stats

    with k.unit_of_work() as session:
        data = complaints_stats.stats(session, _caller(session, merchant), k.clock.now())
    if as_json:
        k.print_json(data)
        return
    k.print_rows(
        [
            {
                "complaints": data["complaints"],
                "orders": data["orders"],
                "per_100_orders": data["per_100_orders"],
                "first_response_h": data["first_response_hours"]["mean"],
                "resolution_h": data["resolution_hours"]["mean"],
                "breaches_first": data["sla_breaches"]["first_response"],
                "breaches_resolution": data["sla_breaches"]["resolution"],
            }
        ],
        title="complaints",
    )
    retention = []
    for window, figures in data["retention"].items():
        groups = {
            "complainants": figures["complainants"],
            "without complaint": figures["without_complaint"],
        }
        groups.update({f"gesture {g}": v for g, v in figures["by_gesture"].items()})
        groups.update({f"resolved in {b}": v for b, v in figures["by_resolution_time"].items()})
        retention += [{"window": window, "group": g, **v} for g, v in groups.items()]
    k.print_rows(retention, title="repeat purchase after resolution")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="complaints")
