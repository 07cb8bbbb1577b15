from __future__ import annotations

import typer

from fidele.kit import cli as k
from fidele.settings import get_settings
from fidele.storefront import service
from fidele.storefront.schemas import Look, SettingsIn

app = typer.Typer(
    help="The storefront widget: secret, customer tokens, settings.", no_args_is_help=True
)
MerchantOpt = typer.Option(..., "--merchant", help="Merchant id")


@app.command("token")
def token(
    merchant: int = MerchantOpt,
    customer: str = typer.Option(..., "--customer", help="The shop's customer id"),
    minutes: int = typer.Option(10, "--minutes", help="Minutes before the token expires"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Sign a customer token as the shop's backend would (for testing the widget)."""
    with k.unit_of_work() as session:
        made = service.mint_token(
            session,
            merchant,
            customer,
            minutes=minutes,
            server_secret=get_settings().secret_key,
            now=k.clock.now(),
        )
    if as_json:
        k.print_json({"merchant_id": merchant, "customer": customer, "token": made})
    else:
        print(made)


@app.command("secret")
def secret(merchant: int = MerchantOpt, as_json: bool = k.JsonOpt) -> None:
    """Make a new storefront secret and print it once (the previous one stops working)."""
    with k.unit_of_work() as session:
        made = service.rotate_secret(session, merchant, get_settings().secret_key, k.clock.now())
    if as_json:
        k.print_json({"merchant_id": merchant, "secret": made})
    else:
        print(made)


@app.command("settings")
def settings(
    merchant: int = MerchantOpt,
    origin: list[str] = typer.Option(
        None, "--origin", help="A shop origin (repeat); replaces the list"
    ),
    primary: str | None = typer.Option(None, help="Main colour, #rrggbb"),
    text: str | None = typer.Option(None, help="Text colour on the main colour, #rrggbb"),
    launcher_en: str | None = typer.Option(None, help="Launcher text in English"),
    launcher_fr: str | None = typer.Option(None, help="Launcher text in French"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Show the storefront settings; with options, change them first."""
    from pydantic import ValidationError

    with k.unit_of_work() as session:
        current = service.view_settings(session, merchant)
        changes = {
            key: value
            for key, value in (
                ("primary", primary),
                ("text", text),
                ("launcher_en", launcher_en),
                ("launcher_fr", launcher_fr),
            )
            if value is not None
        }
        if origin or changes:
            try:
                data = SettingsIn(
                    origins=list(origin) if origin else current["origins"],
                    look=Look(**{**current["look"].model_dump(), **changes}),
                )
            except ValidationError as exc:
                k.console.print(
                    f"[red]error:[/red] {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
                )
                raise typer.Exit(1) from exc
            current = service.update_settings(session, merchant, data, k.clock.now())
    out = {**current, "look": current["look"].model_dump()}
    if as_json:
        k.print_json(out)
    else:
        k.print_rows([{**out, "origins": " ".join(out["origins"]), "look": str(out["look"])}])


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="storefront")
