from __future__ import annotations

import typer

from fidele.kit import cli as k
from fidele.settings import get_settings
from fidele.tenancy import service

merchant_app = typer.Typer(help="Merchants (shops) and programmes.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)


@merchant_app.command("create")
def merchant_create(
    name: str = typer.Argument(..., help="The shop's name"),
    programme: int | None = typer.Option(
        None, "--programme", help="Join this programme (a coalition); default: a new programme"
    ),
    currency: str = typer.Option("EUR", help="Currency of a new programme"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Create a merchant; prints its programme, id and webhook secret (shown once)."""
    with k.unit_of_work() as session:
        made = service.create_merchant(
            session,
            name=name,
            now=k.clock.now(),
            server_secret=get_settings().secret_key,
            programme_id=programme,
            currency=currency,
        )
    data = {
        "programme_id": made.programme_id,
        "merchant_id": made.merchant_id,
        "webhook_secret": made.webhook_secret,
    }
    if as_json:
        k.print_json(data)
    else:
        k.print_rows([data], title="merchant created")


@merchant_app.command("list")
def merchant_list(as_json: bool = k.JsonOpt) -> None:
    """List merchants."""
    with k.unit_of_work() as session:
        rows = [
            {"merchant_id": m.id, "programme_id": m.programme_id, "name": m.name}
            for m in service.list_merchants(session)
        ]
    k.print_rows(rows, "json" if as_json else "table")


@apikey_app.command("create")
def apikey_create(
    merchant: int = typer.Option(..., "--merchant", help="Merchant id"),
    scopes: str = typer.Option("read,write", help="Comma-separated: read, write, admin"),
    name: str | None = typer.Option(None, help="A label for the key"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Create an API key. The key is printed once and stored only as a hash."""
    with k.unit_of_work() as session:
        row, key = service.create_api_key(
            session, merchant_id=merchant, scopes=scopes, now=k.clock.now(), name=name
        )
        data = {
            "key": key,
            "prefix": row.prefix,
            "merchant_id": merchant,
            "scopes": row.scopes.split(","),
        }
    if as_json:
        k.print_json(data)
    else:
        k.print_rows([data], title="API key (shown once)")


@apikey_app.command("list")
def apikey_list(merchant: int = typer.Option(..., "--merchant"), as_json: bool = k.JsonOpt) -> None:
    """List a merchant's keys (prefix only)."""
    with k.unit_of_work() as session:
        rows = [
            {
                "prefix": r.prefix,
                "scopes": r.scopes,
                "name": r.name,
                "created_at": r.created_at.isoformat(),
                "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
            }
            for r in service.list_api_keys(session, merchant)
        ]
    k.print_rows(rows, "json" if as_json else "table")


@apikey_app.command("revoke")
def apikey_revoke(
    prefix: str = typer.Argument(..., help="The key's prefix (or the whole key)"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Revoke a key; it is refused from the next request on."""
    with k.unit_of_work() as session:
        row = service.revoke_api_key(session, prefix=prefix, now=k.clock.now())
        data = {"prefix": row.prefix, "revoked_at": row.revoked_at}
    if as_json:
        k.print_json(data)
    else:
        k.console.print(f"revoked {row.prefix}")


def register(root: typer.Typer) -> None:
    root.add_typer(merchant_app, name="merchant")
    root.add_typer(apikey_app, name="apikey")
