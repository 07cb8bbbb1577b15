"""`fidele segments list|show|preview FILE|export ID|create FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from fidele.kit import cli as k

app = typer.Typer(help="Segments: rules on any criteria, kept up to date.", no_args_is_help=True)
MerchantOpt = typer.Option(..., "--merchant", help="Merchant id")
FORMATS = ("table", "csv", "json")
CUSTOMER_FIELDS = ["id", "email", "first_name", "last_name", "country", "locale"]


def _row(s: Any) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "count": s.member_count,
        "builtin": s.builtin,
        "computed_at": s.computed_at.isoformat() if s.computed_at else None,
    }


def _customer(c: Any) -> dict[str, Any]:
    return {
        "id": c.external_id,
        "email": c.email,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "country": c.country,
        "locale": c.locale,
    }


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        k.console.print(f"[red]error:[/red] --format must be one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    return fmt


def _load(path: Path) -> tuple[dict[str, Any], Any, str]:
    """The rule of a YAML/JSON file (the bare rule, or ``{"name", "rule"}``), its composed
    YAML node (for line numbers) and the path prefix of the rule in the file."""
    import yaml

    try:
        text = path.read_text()
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        k.console.print(f"[red]error:[/red] {path}: {exc}")
        raise typer.Exit(1) from exc
    if isinstance(data, dict) and "rule" in data:
        return data, node, "rule"
    return {"rule": data}, node, ""


def _line(node: Any, field: str, prefix: str) -> int | None:
    """The 1-based line of the node at ``field`` (``rule.all.2.value``) in the file."""
    import yaml

    parts = field.split(".")[1:]  # drop "rule"
    if prefix:
        parts = [prefix, *parts]
    line = node.start_mark.line + 1 if node is not None else None
    for part in parts:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for key, v in node.value if key.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            child = node.value[int(part)]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _parsed(path: Path) -> dict[str, Any]:
    from fidele.segments.domain import RuleError, parse_rule

    doc, node, prefix = _load(path)
    try:
        parse_rule(doc["rule"])
    except RuleError as exc:
        line = _line(node, exc.field, prefix)
        where = f"{path}:{line}: " if line else f"{path}: "
        k.console.print(f"[red]error:[/red] {where}{exc.detail}")
        raise typer.Exit(1) from exc
    return doc


@app.command("list")
def list_segments(merchant: int = MerchantOpt, as_json: bool = k.JsonOpt) -> None:
    """The merchant's segments with their member counts."""
    from fidele.segments.repository import SegmentRepository

    with k.unit_of_work() as session:
        rows = [_row(s) for s in SegmentRepository(session).of_merchant(merchant)]
    k.print_json(rows) if as_json else k.print_rows(rows, title="segments")


@app.command("show")
def show(segment_id: int, merchant: int = MerchantOpt, as_json: bool = k.JsonOpt) -> None:
    """One segment: its rule, count and when it was last computed."""
    from fidele.segments import service

    with k.unit_of_work() as session:
        s = service.get(session, merchant, segment_id)
        data = {**_row(s), "depends_on": s.depends.split(","), "rule": s.rule}
    if as_json:
        k.print_json(data)
    else:
        import json

        k.print_rows([{**data, "rule": json.dumps(data["rule"])}], title=s.name)


@app.command("preview")
def preview(
    file: Path = typer.Argument(..., help="YAML or JSON: the rule, or {name, rule}"),
    merchant: int = MerchantOpt,
    sample: int = typer.Option(20, help="How many matching customers to show"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Count and sample the customers a rule file matches now, without saving it."""
    from fidele.segments import service
    from fidele.segments.repository import SegmentRepository

    doc = _parsed(file)
    with k.unit_of_work() as session:
        n, ids = service.preview(session, merchant, doc["rule"], k.clock.now(), sample=sample)
        people = [_customer(c) for c in SegmentRepository(session).customers(merchant, ids)]
    if as_json:
        k.print_json({"count": n, "sample": people})
        return
    k.console.print(f"{n} customers match")
    k.print_rows(people, title="sample")


@app.command("create")
def create(
    file: Path = typer.Argument(..., help="YAML or JSON: {name, rule}"),
    merchant: int = MerchantOpt,
    name: str | None = typer.Option(None, help="Name (overrides the file's)"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Save a segment from a file and compute its members."""
    from fidele.segments import service

    doc = _parsed(file)
    chosen = name or doc.get("name")
    if not isinstance(chosen, str) or not chosen:
        k.console.print("[red]error:[/red] give the segment a name (--name or name: in the file)")
        raise typer.Exit(1)
    with k.unit_of_work() as session:
        s = service.create(session, merchant, name=chosen, rule=doc["rule"], now=k.clock.now())
        data = _row(s)
    k.print_json(data) if as_json else k.print_rows([data], title="segment")


@app.command("export")
def export(
    segment_id: int,
    merchant: int = MerchantOpt,
    fmt: str = typer.Option("csv", "--format", help="csv or json"),
    out: Path | None = typer.Option(None, "--out", help="File to write (default: stdout)"),
) -> None:
    """The segment's members now, as CSV or JSON."""
    import sys

    from fidele.segments import service

    if fmt not in ("csv", "json"):
        _format("bad")
    rows: list[dict[str, Any]] = []
    with k.unit_of_work() as session:
        service.get(session, merchant, segment_id)
        after = 0
        while True:
            page = service.members(session, merchant, segment_id, after_id=after, limit=5000)
            rows += [_customer(c) for c in page]
            if len(page) < 5000:
                break
            after = page[-1].id
    if out is None:
        _write(sys.stdout, rows, fmt)
        return
    with out.open("w", newline="") as fh:
        _write(fh, rows, fmt)
    print(f"{len(rows)} customers written to {out}", file=sys.stderr)


def _write(fh: Any, rows: list[dict[str, Any]], fmt: str) -> None:
    import csv
    import json

    if fmt == "json":
        fh.write(json.dumps(rows) + "\n")
        return
    writer = csv.DictWriter(fh, fieldnames=CUSTOMER_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="segments")
