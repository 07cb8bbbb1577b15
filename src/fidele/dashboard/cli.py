"""``fidele user``: the dashboard's accounts."""

from __future__ import annotations

import sys

import typer

from fidele.kit import cli as k

user_app = typer.Typer(help="Dashboard users: create, list.", no_args_is_help=True)


def read_password(stdin_is_tty: bool | None = None) -> str:
    """The password: the first line of standard input when it is not a terminal (a pipe, a
    file, a secret manager), else typed twice at a hidden prompt."""
    tty = sys.stdin.isatty() if stdin_is_tty is None else stdin_is_tty
    if not tty:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@user_app.command("create")
def user_create(
    merchant: int = typer.Option(..., "--merchant", help="Merchant id"),
    email: str = typer.Option(..., "--email", help="The address the user signs in with"),
    role: str = typer.Option("admin", "--role", help="admin, marketer or read-only"),
    as_json: bool = k.JsonOpt,
) -> None:
    """Create a dashboard user. The password is read from standard input when it is not a
    terminal (``echo "$PW" | fidele user create ...``), prompted for otherwise."""
    from fidele.dashboard import service

    password = read_password()
    with k.unit_of_work() as session:
        user = service.create_user(
            session,
            merchant_id=merchant,
            email=email,
            password=password,
            role=role,
            now=k.clock.now(),
        )
        data = {"user_id": user.id, "merchant_id": merchant, "email": user.email, "role": role}
    if as_json:
        k.print_json(data)
    else:
        k.print_rows([data], title="dashboard user created")


@user_app.command("list")
def user_list(merchant: int = typer.Option(..., "--merchant"), as_json: bool = k.JsonOpt) -> None:
    """A merchant's dashboard users."""
    from fidele.dashboard import service

    with k.unit_of_work() as session:
        rows = [
            {
                "user_id": u.id,
                "email": u.email,
                "role": u.role,
                "disabled": u.disabled_at is not None,
            }
            for u in service.users_of(session, merchant)
        ]
    k.print_rows(rows, "json" if as_json else "table")


def register(root: typer.Typer) -> None:
    root.add_typer(user_app, name="user")
