"""`fidele surveys list|create|results|link`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from fidele.kit import cli as k

app = typer.Typer(help="Surveys: NPS, CSAT and short forms by signed link.", no_args_is_help=True)
MerchantOpt = typer.Option(..., "--merchant", help="Merchant id")


def _row(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "code": s.code,
        "kind": s.kind,
        "title": s.title.get("en") or s.title.get("fr"),
        "questions": len(s.questions),
        "link_days": s.link_days,
        "active": s.active,
    }


def _survey(session: Any, merchant: int, survey: str) -> Any:
    """A survey by id or code."""
    from fidele.feedback import service

    if survey.isdigit():
        return service.get_survey(session, merchant, int(survey))
    return service.survey_by_code(session, merchant, survey)


@app.command("list")
def list_surveys(merchant: int = MerchantOpt, as_json: bool = k.JsonOpt) -> None:
    """The merchant's surveys."""
    from fidele.feedback import service

    with k.unit_of_work() as session:
        rows = [_row(s) for s in service.surveys(session, merchant)]
    k.print_json(rows) if as_json else k.print_rows(rows, title="surveys")


@app.command("create")
def create(
    file: Path = typer.Argument(
        ..., help="JSON or YAML as POST /v1/surveys takes: {code, kind, title?, questions?}"
    ),
    merchant: int = MerchantOpt,
    as_json: bool = k.JsonOpt,
) -> None:
    """Define a survey from a file."""
    import yaml
    from pydantic import ValidationError

    from fidele.feedback import service
    from fidele.feedback.schemas import SurveyIn

    try:
        body = SurveyIn.model_validate(yaml.safe_load(file.read_text()))
    except (OSError, yaml.YAMLError) as exc:
        k.console.print(f"[red]error:[/red] {file}: {exc}")
        raise typer.Exit(1) from exc
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            k.console.print(f"[red]error:[/red] {file}: {where}: {err['msg']}")
        raise typer.Exit(1) from exc
    with k.unit_of_work() as session:
        s = service.create_survey(
            session,
            merchant,
            code=body.code,
            kind=body.kind,
            title=body.title.texts() if body.title else None,
            question=body.question.texts() if body.question else None,
            questions=[q.definition() for q in body.questions],
            link_days=body.link_days,
            now=k.clock.now(),
        )
        data = _row(s)
    k.print_json(data) if as_json else k.print_rows([data], title="survey")


@app.command("results")
def results(
    survey: str = typer.Argument(..., help="Survey id or code"),
    merchant: int = MerchantOpt,
    segment: int | None = typer.Option(None, "--segment", help="Only this segment's customers"),
    as_json: bool = k.JsonOpt,
) -> None:
    """NPS or CSAT, the trend by month and the answer counts of a survey."""
    from fidele.feedback import service

    with k.unit_of_work() as session:
        s = _survey(session, merchant, survey)
        data = service.results(session, merchant, s.id, segment_id=segment)
    if as_json:
        k.print_json(data)
        return
    head = {"survey": data["code"], "kind": data["kind"], "answers": data["answers"]}
    if data["nps"]:
        head |= {k_: data["nps"][k_] for k_ in ("nps", "promoters", "passives", "detractors")}
    if data["csat"]:
        head |= {
            "average": data["csat"]["average"],
            "satisfied_%": data["csat"]["satisfied_percent"],
        }
    k.print_rows([head], title="results")
    if data["trend"]:
        k.print_rows(data["trend"], title="by month")
    for q in data["questions"]:
        if q.get("counts"):
            k.print_rows([{"answers": q["answers"], **q["counts"]}], title=q["id"])


@app.command("link")
def link(
    survey: str = typer.Argument(..., help="Survey id or code"),
    customer: str = typer.Option(..., "--customer", help="The customer's id in the shop"),
    occasion: str = typer.Option(..., "--occasion", help="What the answer is about"),
    merchant: int = MerchantOpt,
    days: int | None = typer.Option(None, "--days", help="Validity (the survey's default)"),
    as_json: bool = k.JsonOpt,
) -> None:
    """A signed survey link for one customer and occasion."""
    from fidele.customers.repository import CustomerRepository
    from fidele.errors import NotFound
    from fidele.feedback import service
    from fidele.settings import get_settings

    settings = get_settings()
    with k.unit_of_work() as session:
        s = _survey(session, merchant, survey)
        found = CustomerRepository(session).by_external_id(merchant, customer)
        if found is None or found.erased_at is not None:
            raise NotFound(f"customer {customer!r} not found")
        url, expires = service.survey_link(
            s,
            found,
            occasion,
            k.clock.now(),
            secret=settings.secret_key,
            public_url=settings.public_url,
            days=days,
        )
    data = {"url": url, "expires_at": expires.isoformat()}
    k.print_json(data) if as_json else typer.echo(url)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="surveys")
