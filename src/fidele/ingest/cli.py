"""``fidele import``, ``fidele sync prestashop`` and ``fidele merchant connector-secret``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fidele.errors import FideleError, InvalidInput
from fidele.ingest.connectors import signing
from fidele.ingest.importers import runner
from fidele.kit import cli as k
from fidele.settings import get_settings
from fidele.tenancy import service as tenancy
from fidele.tenancy.cli import merchant_app
from fidele.tenancy.service import Caller

import_app = typer.Typer(
    help="Bulk import customers or orders from CSV or Parquet (see README for the columns).",
    no_args_is_help=True,
)
sync_app = typer.Typer(help="Pull data from shops without webhooks.", no_args_is_help=True)

MerchantOpt = typer.Option(None, "--merchant", help="Merchant id (default: the only merchant)")


def caller_for(merchant_id: int | None) -> Caller:
    """The merchant an import or sync writes for; without ``--merchant`` the only one."""
    with k.unit_of_work() as session:
        if merchant_id is None:
            found = tenancy.list_merchants(session)
            if len(found) != 1:
                raise InvalidInput(
                    "several merchants (or none): pass --merchant ID", field="merchant"
                )
            merchant = found[0]
        else:
            merchant = tenancy.get_merchant(session, merchant_id)
        return Caller(merchant.id, merchant.programme_id, None, frozenset({"write"}))


def _run_import(
    kind: str,
    file: Path,
    merchant: int | None,
    fmt: str,
    batch_size: int,
    rejects: Path | None,
    timezone: str | None,
    as_json: bool,
) -> None:
    opts = runner.Options(kind, fmt, batch_size, rejects, timezone)
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    try:
        caller = caller_for(merchant)
        with Progress(*columns, console=k.console, disable=as_json) as bar:
            task = bar.add_task(f"importing {kind}", total=None)
            summary = runner.run(
                k.factory(), caller, file, opts, k.clock, progress=lambda n: bar.advance(task, n)
            )
    except FideleError as exc:
        k.console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    data = {
        "file": str(file),
        **summary.as_dict(),
        "rejects_file": str(rejects) if rejects and summary.rejected else None,
    }
    if as_json:
        k.print_json(data)
    else:
        k.print_rows([data], title=f"{kind} import")
    if summary.rejected:
        # Everything valid landed; 2 tells a script that some rows are in the rejects file.
        raise typer.Exit(2)


def _command(kind: str):  # type: ignore[no-untyped-def]
    def command(
        file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or Parquet"),
        merchant: int | None = MerchantOpt,
        fmt: str = typer.Option(
            "auto", "--format", help="auto, fidele, shopify or woocommerce (orders)"
        ),
        batch_size: int = typer.Option(1000, "--batch-size", min=1, help="Records per commit"),
        rejects: Path | None = typer.Option(
            None, "--rejects", help="Write refused rows here with the reason"
        ),
        timezone: str | None = typer.Option(
            None, "--timezone", help="Zone of times without one (shop exports), e.g. Europe/Paris"
        ),
        as_json: bool = k.JsonOpt,
    ) -> None:
        _run_import(kind, file, merchant, fmt, batch_size, rejects, timezone, as_json)

    command.__doc__ = (
        f"Import {kind}: idempotent, resumable (run it again after a crash), "
        "one transaction per batch; prints read/created/updated/rejected."
    )
    return command


import_app.command("customers")(_command("customers"))
import_app.command("orders")(_command("orders"))


@merchant_app.command("connector-secret")
def connector_secret(
    merchant: int = typer.Option(..., "--merchant", help="Merchant id"),
    platform: str = typer.Option(..., "--platform", help="shopify or woocommerce"),
    secret: str = typer.Option(..., "--secret", help="The platform's signing secret"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Accept webhooks signed with the platform's own secret (Shopify: the app's secret).
    Stored encrypted with a key derived from FIDELE_SECRET_KEY."""
    with k.unit_of_work() as session:
        row = tenancy.get_merchant(session, merchant)
        signing.set_platform_secret(
            session,
            row,
            platform,
            secret,
            server_secret=get_settings().secret_key,
            now=k.clock.now(),
        )
    data = {"merchant_id": merchant, "platform": platform, "status": "saved"}
    k.print_json(data) if as_json else k.console.print(f"{platform} secret saved")


def register(root: typer.Typer) -> None:
    root.add_typer(import_app, name="import")
    root.add_typer(sync_app, name="sync")


@sync_app.command("prestashop")
def sync_prestashop(
    url: str = typer.Option(..., "--url", help="The shop's base URL (its /api is queried)"),
    key: str = typer.Option(..., "--key", help="Webservice key (sent as basic-auth user)"),
    merchant: int | None = MerchantOpt,
    timezone: str = typer.Option("UTC", "--timezone", help="The shop's timezone"),
    page: int = typer.Option(100, "--page-size", min=1, help="Records per request and commit"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Pull customers and orders changed since the last sync (incremental, idempotent)."""
    from zoneinfo import ZoneInfo

    from fidele.ingest import prestashop

    client = prestashop.Client(url, key)
    try:
        caller = caller_for(merchant)
        summary = prestashop.sync(
            k.factory(), caller, client, k.clock, tz=ZoneInfo(timezone), page=page
        )
    except FideleError as exc:
        k.console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc
    finally:
        client.close()
    k.print_json(summary.as_dict()) if as_json else k.print_rows(
        [summary.as_dict()], title="PrestaShop sync"
    )
