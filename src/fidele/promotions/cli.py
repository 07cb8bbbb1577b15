"""`fidele coupons ...` and `fidele gift-cards ...`."""

from __future__ import annotations

import csv
from pathlib import Path

import typer

from fidele.kit import cli as k
from fidele.promotions import coupons, giftcards, service
from fidele.promotions.schemas import BatchIn
from fidele.tenancy.service import Caller, get_merchant

coupons_app = typer.Typer(help="Coupons and batches of single-use codes.", no_args_is_help=True)
gift_app = typer.Typer(help="Gift cards.", no_args_is_help=True)
checkout_app = typer.Typer(help="Checkout sessions.", no_args_is_help=True)
MerchantOpt = typer.Option(..., "--merchant", help="Merchant id")


def _caller(session, merchant_id: int) -> Caller:  # type: ignore[no-untyped-def]
    merchant = get_merchant(session, merchant_id)
    return Caller(merchant.id, merchant.programme_id, None, frozenset({"admin"}))


@coupons_app.command("batch")
def batch(
    count: int = typer.Argument(..., help="How many codes"),
    merchant: int = MerchantOpt,
    kind: str = typer.Option("amount_off", help="amount_off, percent_off, free_shipping"),
    value: int = typer.Option(0, help="Minor units, or basis points for percent_off"),
    usage_limit: int = typer.Option(1, help="Uses of each code"),
    out: Path = typer.Option(..., "--out", help="CSV file to write the codes to"),
) -> None:
    """Create COUNT unique single-use codes and write them to a CSV file."""
    body = BatchIn.model_validate(
        {"count": count, "kind": kind, "value": value, "usage_limit": usage_limit}
    )
    with k.unit_of_work() as session:
        made = coupons.create_batch(session, _caller(session, merchant), body, k.clock.now())
        rows = [(c.display_code, c.batch, c.kind, c.value) for c in made]
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["code", "batch", "kind", "value"])
        writer.writerows(rows)
    k.console.print(f"{len(rows)} codes written to {out}")


@gift_app.command("issue")
def issue(
    amount: int = typer.Argument(..., help="Minor units"),
    merchant: int = MerchantOpt,
    currency: str = typer.Option("EUR"),
    email: str | None = typer.Option(None, help="Recipient (emailed through the outbox)"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Issue a gift card; prints its code (shown once)."""
    with k.unit_of_work() as session:
        caller = _caller(session, merchant)
        made = giftcards.issue(
            session,
            programme_id=caller.programme_id,
            merchant_id=merchant,
            amount=amount,
            currency=currency.upper(),
            now=k.clock.now(),
            recipient_email=email,
        )
        data = {"code": made.code, "amount": amount, "currency": currency.upper()}
    k.print_json(data) if as_json else k.print_rows([data], title="gift card")


@checkout_app.command("expire")
def expire() -> None:
    """Expire unconfirmed sessions past their time now (the job does it every minute)."""
    with k.unit_of_work() as session:
        n = service.expire_due(session, k.clock.now())
    k.console.print(f"{n} sessions expired")


def register(root: typer.Typer) -> None:
    root.add_typer(coupons_app, name="coupons")
    root.add_typer(gift_app, name="gift-cards")
    root.add_typer(checkout_app, name="checkout")
