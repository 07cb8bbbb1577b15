"""`fidele analytics ...`: the analyses on a plain CSV/Parquet file (no database), and
`refresh` on the programme's database. Heavy imports stay inside the commands so that
`fidele` starts fast: this module imports typer only, and the file commands never import the
database stack (`fidele.kit.cli` brings SQLAlchemy and Alembic; only `refresh` and table
output use it)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    help="Customer analytics: summary, RFM, CLV, cohorts, KPIs.", no_args_is_help=True
)


class Fmt(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


class Unit(StrEnum):
    days = "days"
    weeks = "weeks"
    calendar_weeks = "calendar_weeks"


UNIT_HELP = (
    "Time unit of recency, T and the models: days; weeks = days / 7 with purchases merged "
    "per day (Hardie's CDNOW convention, the published results); calendar_weeks = purchases "
    "merged per calendar week (Monday-Sunday) and whole weeks counted, as lifetimes' freq='W'"
)


JsonOpt = typer.Option(False, "--json", help="Print the result as JSON")
OrdersOpt = typer.Option(..., "--orders", help="Orders file (CSV or Parquet)", exists=True)
CustomerOpt = typer.Option("customer_id", "--customer-col", help="Customer column")
DateOpt = typer.Option("date", "--date-col", help="Order date/time column (UTC)")
AmountOpt = typer.Option("amount", "--amount-col", help="Order amount column (net)")
DateFmtOpt = typer.Option(
    None,
    "--date-format",
    help="The format of a text date column, as strftime writes it (e.g. '%m/%d/%Y', "
    "'%d.%m.%Y %H:%M'; times without an offset read as UTC); default: ISO 8601, or the "
    "day-first order the first value shows",
)
SepOpt = typer.Option(
    None,
    "--separator",
    help="A CSV file's separator (one character, or tab); default: read off its header "
    "(comma, semicolon, tab or |). With another one than the comma, amounts written with a "
    "decimal comma (12,50) are read as numbers",
)
CalOpt = typer.Option(None, "--calibration-end", help="Last day of calibration (YYYY-MM-DD)")
ObsOpt = typer.Option(
    None, "--observation-end", help="Last day observed (default: the file's last order day)"
)
UnitOpt = typer.Option(Unit.days, "--time-unit", help=UNIT_HELP)
FmtOpt = typer.Option(Fmt.table, "--format", help="Output format")
OutOpt = typer.Option(None, "--out", help="Write the table to this file")


def _kit() -> Any:
    from fidele.kit import cli

    return cli


def _say(markup: str) -> None:
    """A message on stderr (rich markup)."""
    from rich.console import Console

    Console(stderr=True).print(markup)


def _print_json(data: Any) -> None:
    import json
    import sys

    sys.stdout.write(json.dumps(data, default=str) + "\n")


def _day(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        _say(f"[red]error:[/red] {field} must be YYYY-MM-DD, not {value!r}")
        raise typer.Exit(2) from exc


def _load(
    orders: Path,
    customer: str,
    when: str,
    amount: str | None,
    end: str | None,
    separator: str | None = None,
    date_format: str | None = None,
):
    from fidele.analytics.files import last_day, read_transactions
    from fidele.cli import end_at_once
    from fidele.errors import FideleError

    end_at_once()  # the orders are in memory until the end: no teardown to wait for
    try:
        lf = read_transactions(
            orders,
            customer_col=customer,
            date_col=when,
            amount_col=amount,
            separator=separator,
            date_format=date_format,
        )
        return lf, _day(end, "--observation-end") or last_day(lf, when)
    except FideleError as exc:
        _say(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(2) from exc


def _progress(name: str, seconds: float) -> None:
    _say(f"[dim]{name}: {seconds:.2f} s[/dim]")


def _write(frame: Any, fmt: Fmt, out: Path | None, title: str = "") -> None:
    from fidele.analytics.files import write_frame
    from fidele.errors import FideleError

    try:
        write_frame(frame, fmt.value, out, title=title)
    except FideleError as exc:
        _say(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(2) from exc


@app.command("summary")
def summary_cmd(
    orders: Path = OrdersOpt,
    customer_col: str = CustomerOpt,
    date_col: str = DateOpt,
    amount_col: str = AmountOpt,
    separator: str | None = SepOpt,
    date_format: str | None = DateFmtOpt,
    calibration_end: str | None = CalOpt,
    observation_end: str | None = ObsOpt,
    time_unit: Unit = UnitOpt,
    fmt: Fmt = FmtOpt,
    out: Path | None = OutOpt,
) -> None:
    """Per-customer summary (frequency, recency, T, spend, interpurchase times); with
    --calibration-end, the calibration/holdout split instead."""
    from fidele.analytics.summary import calibration_and_holdout, summary

    lf, end = _load(
        orders, customer_col, date_col, amount_col, observation_end, separator, date_format
    )
    names = dict(customer_col=customer_col, datetime_col=date_col, monetary_col=amount_col)
    cal = _day(calibration_end, "--calibration-end")
    if cal is not None:
        frame = calibration_and_holdout(
            lf, **names, calibration_end=cal, observation_end=end, time_unit=time_unit.value
        )
    else:
        frame = summary(lf, **names, observation_end=end, time_unit=time_unit.value)
    _write(frame, fmt, out, "summary")


@app.command("rfm")
def rfm_cmd(
    orders: Path = OrdersOpt,
    customer_col: str = CustomerOpt,
    date_col: str = DateOpt,
    amount_col: str = AmountOpt,
    separator: str | None = SepOpt,
    date_format: str | None = DateFmtOpt,
    observation_end: str | None = ObsOpt,
    fmt: Fmt = FmtOpt,
    out: Path | None = OutOpt,
) -> None:
    """RFM scores and segments per customer (to --out), segment counts and revenue (table)."""
    from fidele.analytics.rfm import rfm, segment_summary
    from fidele.analytics.summary import summary

    lf, end = _load(
        orders, customer_col, date_col, amount_col, observation_end, separator, date_format
    )
    data = summary(
        lf,
        customer_col=customer_col,
        datetime_col=date_col,
        monetary_col=amount_col,
        observation_end=end,
        interpurchase=False,
    )
    scored = rfm(data, observation_end=end, customer_col=customer_col)
    if fmt is Fmt.table and out is None:
        _write(segment_summary(scored), fmt, None, "RFM segments")
    else:
        _write(scored, fmt, out)


@app.command("clv")
def clv_cmd(
    orders: Path = OrdersOpt,
    customer_col: str = CustomerOpt,
    date_col: str = DateOpt,
    amount_col: str = AmountOpt,
    separator: str | None = SepOpt,
    date_format: str | None = DateFmtOpt,
    calibration_end: str | None = CalOpt,
    observation_end: str | None = ObsOpt,
    time_unit: Unit = typer.Option(Unit.weeks, "--time-unit", help=UNIT_HELP),
    horizon_days: int = typer.Option(90, help="Horizon of expected purchases, in days"),
    months: int = typer.Option(12, help="CLV horizon in months"),
    discount_rate: float = typer.Option(0.01, help="Monthly discount rate"),
    as_json: bool = typer.Option(False, "--json", help="Print the fitted models as JSON"),
    fmt: Fmt = FmtOpt,
    out: Path | None = OutOpt,
) -> None:
    """Fit BG/NBD + Gamma-Gamma; P(alive), expected purchases, spend and CLV per customer."""
    from fidele.analytics.pipeline import ClvOptions, clv_report

    lf, end = _load(
        orders, customer_col, date_col, amount_col, observation_end, separator, date_format
    )
    options = ClvOptions(
        time_unit.value, horizon_days, months, discount_rate, customer_col, date_col, amount_col
    )
    cal = _day(calibration_end, "--calibration-end")
    report, scores = clv_report(
        lf,  # scanned straight into the summary's query: its boundaries are computed per chunk
        observation_end=end,
        calibration_end=cal,
        options=options,
        progress=None if as_json else _progress,
    )
    if as_json:
        _print_json(report)
    else:
        _print_models(report)
    if out is not None:
        _write(scores, fmt if fmt is not Fmt.table else Fmt.csv, out)
    elif not as_json:
        _write(scores, fmt, None, "customers")


def _print_models(report: dict[str, Any]) -> None:
    rows = []
    for model in ("bgnbd", "gamma_gamma"):
        fitted = report.get(model)
        if fitted is None:  # the cadence fallback: no model was fitted
            continue
        for name, value in fitted.items():
            if name in fitted.get("se", {}):
                rows.append(
                    {
                        "model": model,
                        "parameter": name,
                        "value": f"{value:.6g}",
                        "se": f"{fitted['se'][name]:.3g}",
                    }
                )
        rows.append(
            {
                "model": model,
                "parameter": "log_likelihood",
                "value": f"{fitted['log_likelihood']:.6f}",
                "se": "",
            }
        )
    if rows:
        _kit().print_rows(rows, title=f"fitted models ({report.get('method')})")
    else:
        _say(f"method: {report.get('method')}")
    for warning in report.get("warnings") or []:
        _say(f"[yellow]warning:[/yellow] {warning}")


@app.command("cohorts")
def cohorts_cmd(
    orders: Path = OrdersOpt,
    customer_col: str = CustomerOpt,
    date_col: str = DateOpt,
    amount_col: str = AmountOpt,
    separator: str | None = SepOpt,
    date_format: str | None = DateFmtOpt,
    observation_end: str | None = ObsOpt,
    value: str = typer.Option("retention", help="Matrix cell: retention, customers, revenue"),
    long: bool = typer.Option(False, "--long", help="One row per cohort and period"),
    fmt: Fmt = FmtOpt,
    out: Path | None = OutOpt,
) -> None:
    """Monthly cohort matrix (customers, retention or revenue by months since acquisition)."""
    from fidele.analytics.cohorts import cohort_matrix, cohorts

    lf, end = _load(
        orders, customer_col, date_col, amount_col, observation_end, separator, date_format
    )
    table = cohorts(
        lf,
        observation_end=end,
        customer_col=customer_col,
        datetime_col=date_col,
        monetary_col=amount_col,
    )
    _write(table if long else cohort_matrix(table, value=value), fmt, out, f"cohorts: {value}")


@app.command("kpis")
def kpis_cmd(
    orders: Path = OrdersOpt,
    customer_col: str = CustomerOpt,
    date_col: str = DateOpt,
    amount_col: str = AmountOpt,
    separator: str | None = SepOpt,
    date_format: str | None = DateFmtOpt,
    observation_end: str | None = ObsOpt,
    fmt: Fmt = FmtOpt,
    out: Path | None = OutOpt,
) -> None:
    """The shop's KPIs overall (and its stage) and per month."""
    from fidele.analytics.kpis import monthly_kpis, shop_kpis
    from fidele.analytics.summary import summary

    lf, end = _load(
        orders, customer_col, date_col, amount_col, observation_end, separator, date_format
    )
    names = dict(customer_col=customer_col, datetime_col=date_col, monetary_col=amount_col)
    monthly = monthly_kpis(lf, observation_end=end, **names)
    overall = shop_kpis(summary(lf, observation_end=end, interpurchase=False, **names), monthly)
    if fmt is Fmt.json and out is None:
        _print_json({"kpis": overall, "monthly": monthly.to_dicts()})
        return
    if fmt is Fmt.table:
        _kit().print_rows([{"kpi": key, "value": v} for key, v in overall.items()], title="KPIs")
    _write(monthly, fmt, out, "monthly KPIs")


@app.command("refresh")
def refresh_cmd(
    merchant: int | None = typer.Option(None, "--merchant", help="One merchant (default: all)"),
    as_json: bool = JsonOpt,
) -> None:
    """Recompute and store every customer's insights from the database."""
    from fidele.analytics import service

    k = _kit()
    with k.unit_of_work() as session:
        results = service.refresh_all(session, now=k.clock.now(), merchant_id=merchant)
    rows = [r.as_dict() for r in results]
    if as_json:
        _print_json(rows)
    else:
        _kit().print_rows(rows, title="analytics refreshed")


engagement_app = typer.Typer(help="The engagement scale (points per action, statuses).")
app.add_typer(engagement_app, name="engagement")
MerchantOpt = typer.Option(..., "--merchant", help="Merchant id (its programme's scale)")


@engagement_app.command("load")
def engagement_load(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="YAML or JSON file"),
    merchant: int = MerchantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Validate a scale file and make it the programme's; an invalid file changes nothing."""
    from fidele.analytics import service
    from fidele.analytics.schemas import EngagementConfig
    from fidele.kit.documents import DocumentError, validate_yaml

    try:
        config = validate_yaml(EngagementConfig, file.read_text())
    except DocumentError as exc:
        for line, loc, msg in exc.errors:
            _say(f"[red]{file}:{line or '?'}[/red] {loc}: {msg}")
        raise typer.Exit(1) from exc
    k = _kit()
    with k.unit_of_work() as session:
        service.set_engagement(session, _programme_of(session, merchant), config)
    if as_json:
        _print_json(config.model_dump())
    else:
        _say(f"engagement scale loaded: {len(config.scale)} event types")


@engagement_app.command("show")
def engagement_show(merchant: int = MerchantOpt) -> None:
    """Print the scale in force as JSON."""
    from fidele.analytics import service
    from fidele.tenancy.models import Programme

    with _kit().unit_of_work() as session:
        programme = session.get(Programme, _programme_of(session, merchant))
        _print_json(service.engagement_settings(programme).model_dump())


def _programme_of(session: Any, merchant: int) -> int:
    from fidele.errors import NotFound
    from fidele.tenancy.models import Merchant

    found = session.get(Merchant, merchant)
    if found is None:
        raise NotFound(f"merchant {merchant} not found")
    return int(found.programme_id)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="analytics")
