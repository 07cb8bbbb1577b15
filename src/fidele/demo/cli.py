from __future__ import annotations

import typer
from rich.progress import Progress

from fidele.db.session import make_sessionmaker
from fidele.demo import service
from fidele.kit import cli as k
from fidele.settings import get_settings


def demo(
    seed: int = typer.Option(42, help="Same seed, same shop"),
    customers: int = typer.Option(5000, help="How many customers"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the API afterwards"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Build a realistic demo shop on the configured database, then serve the API."""
    if serve:
        k.check_port(host, port)  # now, rather than after minutes of building
    settings = get_settings()
    factory = make_sessionmaker(k.engine())
    with Progress(console=k.console, transient=True) as bar:
        task = bar.add_task("building the demo shop", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        shop = service.build(
            factory,
            seed=seed,
            n_customers=customers,
            now=k.clock.now(),
            server_secret=settings.secret_key,
            progress=advance,
        )
    url = f"http://{host}:{port}"
    info = {
        "url": url,
        "api_key": shop.api_key,
        "programme_id": shop.programme_id,
        "merchant_id": shop.merchant_id,
        "created": shop.created,
        "counts": shop.counts,
    }
    if as_json:
        k.print_json(info)
    else:
        verb = "built" if shop.created else "found"
        k.console.print(f"[green]demo shop {verb}[/green] {shop.counts or ''}")
        k.console.print(f"API:      {url}   (docs: {url}/docs)")
        k.console.print(f"API key:  {shop.api_key}")
        k.console.print(f"try:      curl -H 'Authorization: Bearer {shop.api_key}' {url}/v1/orders")
        if serve:
            k.console.print('stop:     Ctrl-C; then README.md, "First steps", for your own shop')
    if serve:
        k.serve_api(host, port)


def register(root: typer.Typer) -> None:
    root.command("demo")(demo)
