from __future__ import annotations

import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer

from fidele.db.session import make_sessionmaker
from fidele.demo import service
from fidele.kit import cli as k
from fidele.settings import get_settings

PLAIN_EVERY = 3.0  # seconds between two progress lines when the output is not a terminal
READY_WITHIN = 120.0  # seconds the server has to answer its first request


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
    with _progress() as report:
        shop = service.build(
            factory,
            seed=seed,
            n_customers=customers,
            now=k.clock.now(),
            server_secret=settings.secret_key,
            progress=report,
        )
        # the jobs' first round now, before serving: the embedded worker then starts with
        # nothing heavy due, and the first requests do not wait behind it
        report("jobs", 0, 1)
        service.settle(factory, k.clock)
        report("jobs", 1, 1)
    email, password = _dashboard_login(factory, shop.merchant_id, seed)
    info = {
        "url": f"http://{host}:{port}",
        "api_key": shop.api_key,
        "programme_id": shop.programme_id,
        "merchant_id": shop.merchant_id,
        "created": shop.created,
        "counts": shop.counts,
        "dashboard": {"url": f"http://{host}:{port}/login", "email": email, "password": password},
        "storefront": f"http://{host}:{port}/storefront/demo",
    }
    if serve:
        _serve(host, port, shop.api_key, lambda: _announce(info, as_json, serving=True))
    else:
        _announce(info, as_json, serving=False)


def _dashboard_login(factory: Any, merchant_id: int, seed: int) -> tuple[str, str]:
    """The back office's login for the demo shop (a new password each run)."""
    from fidele.dashboard.service import demo_login
    from fidele.db.session import transaction

    with transaction(factory) as session:
        return demo_login(session, merchant_id, seed, k.clock.now())


def try_command(url: str, api_key: str) -> str:
    return f"curl -H 'Authorization: Bearer {api_key}' {url}/v1/orders"


def _announce(info: dict[str, Any], as_json: bool, *, serving: bool) -> None:
    """The shop's coordinates on stdout, as plain unwrapped lines (copy-pastable when the
    output is narrow, wrapped by a terminal or logged)."""
    if as_json:
        k.print_json(info)
        return
    url = info["url"]
    verb = "built" if info["created"] else "found"
    counts = ", ".join(f"{n} {what}" for what, n in info["counts"].items())
    lines = [
        f"demo shop {verb} (programme {info['programme_id']}){': ' + counts if counts else ''}",
        f"API:      {url}   (docs: {url}/docs)",
        f"API key:  {info['api_key']}",
        f"try:      {try_command(url, info['api_key'])}",
        f"dashboard: {url}/login   email: {info['dashboard']['email']}   "
        f"password: {info['dashboard']['password']}",
        f"storefront: {info['storefront']}   (the widget on a fake shop page)",
    ]
    if serving:
        lines.append('ready: the API answers (Ctrl-C to stop; then README.md, "First steps")')
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A bar on a terminal; otherwise a plain line every few seconds and at each new phase."""
    if k.console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            "{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=k.console,
            transient=True,
        ) as bar:
            task = bar.add_task("building the demo shop", total=None)

            def advance(what: str, done: int, total: int) -> None:
                bar.update(task, description=f"demo: {what}", completed=done, total=total)

            yield advance
        return
    yield _plain_lines(sys.stderr)


def _plain_lines(out: Any) -> Callable[[str, int, int], None]:
    start = time.monotonic()
    last = {"what": "", "at": 0.0}

    def advance(what: str, done: int, total: int) -> None:
        now = time.monotonic()
        if what == last["what"] and now - last["at"] < PLAIN_EVERY and done < total:
            return
        last.update(what=what, at=now)
        pct = 100 * done // total if total else 100
        out.write(f"demo: {pct}% {what} {done}/{total} ({now - start:.0f} s)\n")
        out.flush()

    return advance


def _serve(host: str, port: int, api_key: str, ready: Callable[[], None]) -> None:
    """Serve the API; call ``ready`` once it has answered the request the try line shows."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config("fidele.app:create_app", factory=True, host=host, port=port)
    )
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    probe = urllib.request.Request(
        f"http://{local}:{port}/v1/orders?limit=1",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    watcher = threading.Thread(
        target=_when_answering, args=(server, probe, ready), name="demo-ready", daemon=True
    )
    watcher.start()
    server.run()


def _answers(probe: urllib.request.Request) -> bool:
    """Whether the served API answered ``probe`` with a 200 (not yet listening: False)."""
    try:
        with urllib.request.urlopen(probe, timeout=5) as resp:  # noqa: S310 (loopback)
            return bool(resp.status == 200)
    except OSError:
        return False


def _when_answering(server: Any, probe: urllib.request.Request, ready: Callable[[], None]) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline and not server.should_exit:
        if server.started and _answers(probe):
            ready()
            return
        time.sleep(0.05)
    k.console.print("[red]the server did not answer[/red]")


def register(root: typer.Typer) -> None:
    root.command("demo")(demo)
