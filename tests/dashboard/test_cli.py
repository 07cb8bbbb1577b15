"""``fidele user create`` through the installed console script: the password from a pipe, or
typed twice at a hidden prompt on a terminal; and the demo's printed login works."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import termios
import time

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from fidele.app import create_app
from fidele.db.engine import make_engine
from fidele.settings import Settings
from tests.dashboard.conftest import login
from tests.fixtures.console import FIDELE, fidele, user_env

PASSWORD = "piped password 123"


def _shop(env: dict[str, str]) -> int:
    assert fidele("db", "upgrade", env=env).returncode == 0
    made = fidele("merchant", "create", "CLI shop", "--json", env=env)
    assert made.returncode == 0, made.stderr
    return int(json.loads(made.stdout)["merchant_id"])


def _can_log_in(url: str, email: str, password: str) -> bool:
    engine = make_engine(url)
    try:
        app = create_app(
            Settings(env="test", database_url=url, secret_key="s", embedded_worker=False),
            engine=engine,
            start_worker=False,
        )
        with TestClient(app) as client:
            login(client, email, password)
            return client.get("/settings", follow_redirects=False).status_code == 200
    finally:
        engine.dispose()


def _echo_off(controller: int, wait: float = 10.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not termios.tcgetattr(controller)[3] & termios.ECHO:
            return True
        time.sleep(0.05)
    return False


def _typed(args: list[str], env: dict[str, str], answers: list[str]) -> tuple[int, str]:
    """Run the console script on a pseudo-terminal, typing each answer at each prompt."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(FIDELE), *args], env=env, stdin=terminal, stdout=terminal, stderr=terminal
    )
    os.close(terminal)
    seen, output, pending = b"", b"", list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            output += chunk
            # answer each prompt once it is shown and echo is off (getpass flushes input
            # typed before)
            if pending and seen.rstrip().endswith(b":") and _echo_off(controller):
                os.write(controller, (pending.pop(0) + "\n").encode())
                seen = b""
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(controller)
    return process.returncode, output.decode(errors="replace")


def test_user_create_reads_the_password_from_a_pipe(empty_database_url: str) -> None:
    env = user_env(empty_database_url)
    merchant = _shop(env)
    args = ["user", "create", "--merchant", str(merchant), "--email", "Boss@Shop.test"]
    made = subprocess.run(
        [str(FIDELE), *args, "--role", "admin", "--json"],
        env=env, input=PASSWORD + "\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout) == {
        "user_id": 1, "merchant_id": merchant, "email": "boss@shop.test", "role": "admin",
    }  # fmt: skip
    assert PASSWORD not in made.stdout + made.stderr
    again = subprocess.run(
        [str(FIDELE), *args], env=env, input=PASSWORD, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 1 and "already exists" in again.stdout + again.stderr
    for role, password, message in (
        ("owner", PASSWORD, "role must be one of"),
        ("marketer", "short", "at least 10 characters"),
    ):
        bad = subprocess.run(
            [str(FIDELE), "user", "create", "--merchant", str(merchant), "--email", "x@y.test",
             "--role", role],
            env=env, input=password, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert bad.returncode == 1 and message in bad.stdout + bad.stderr
    listed = fidele("user", "list", "--merchant", str(merchant), "--json", env=env)
    assert [u["email"] for u in json.loads(listed.stdout)] == ["boss@shop.test"]
    assert _can_log_in(empty_database_url, "boss@shop.test", PASSWORD)


def test_user_create_prompts_twice_on_a_terminal(empty_database_url: str) -> None:
    env = user_env(empty_database_url)
    merchant = _shop(env)
    code, output = _typed(
        ["user", "create", "--merchant", str(merchant), "--email", "t@shop.test", "--role",
         "marketer"],
        env,
        ["typed password 1", "typed password 1"],
    )  # fmt: skip
    assert code == 0, output
    assert "Password" in output and "typed password 1" not in output  # hidden input
    assert _can_log_in(empty_database_url, "t@shop.test", "typed password 1")


def test_the_demo_prints_a_login_that_works(committed_engine: Engine) -> None:
    url = committed_engine.url.render_as_string(hide_password=False)
    env = user_env(url)
    built = fidele("demo", "--customers", "30", "--no-serve", "--json", env=env)
    assert built.returncode == 0, built.stderr
    login_info = json.loads(built.stdout)["dashboard"]
    assert login_info["url"].endswith("/login")
    assert _can_log_in(url, login_info["email"], login_info["password"])
    plain = fidele("demo", "--customers", "30", "--no-serve", env=env)
    line = next(ln for ln in plain.stdout.splitlines() if ln.startswith("dashboard:"))
    password = line.split("password:")[1].strip()
    assert password != login_info["password"]  # a new one each run, the old one no longer works
    assert _can_log_in(url, login_info["email"], password)
    assert not _password_still_works(url, login_info["email"], login_info["password"])


def _password_still_works(url: str, email: str, password: str) -> bool:
    try:
        return _can_log_in(url, email, password)
    except AssertionError:
        return False
