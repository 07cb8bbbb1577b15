"""The README's "First steps", played literally in bash as a new user types them: in a folder
holding the project's ``.venv`` (so ``source .venv/bin/activate`` is the real one), on an empty
database and after the demo. Only the port is changed, to a free one: port 8000 may be taken
on a shared machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.console import fidele, free_port, port_open, user_env

README = Path(__file__).resolve().parent.parent / "README.md"
VENV = Path(sys.prefix)


def first_steps() -> list[str]:
    """The commands of the sh block under "## First steps", one per logical line (``\\``
    continuations joined), comment-only and blank lines left out."""
    text = README.read_text()
    section = text[text.index("## First steps") :]
    section = section[: section.index("\n## ", 1)]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "no sh block under ## First steps"
    commands, current = [], ""
    for line in match.group(1).splitlines():
        current += line + "\n"
        if line.endswith("\\"):
            continue
        if current.strip() and not current.lstrip().startswith("#"):
            commands.append(current)
        current = ""
    return commands


def _script(commands: list[str], out: Path) -> str:
    """Each command as typed, its stdout, stderr and exit status kept apart (a brace group runs
    in the same shell, so variables, ``source`` and ``&`` behave as at a prompt)."""
    parts = []
    for i, command in enumerate(commands):
        parts.append(f'{{ {command}}} >"{out}/{i}.out" 2>"{out}/{i}.err"\n')
        parts.append(f'echo $? >"{out}/{i}.rc"\n')
    names = sorted({m for c in commands for m in re.findall(r"^([A-Z_]+)=", c, re.M)})
    parts += [f'printf %s "${name}" >"{out}/var.{name}"\n' for name in names]
    return "".join(parts)


def _wait_closed(port: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_open(port):
            return True
        time.sleep(0.5)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("after", ["empty", "demo"])
def test_first_steps_work_as_typed(after: str, empty_database_url: str, tmp_path: Path) -> None:
    commands = first_steps()
    assert any("--port 8000" in c for c in commands)
    port = free_port()
    commands = [c.replace("8000", str(port)) for c in commands]
    (tmp_path / ".venv").symlink_to(VENV)
    # the SQLite case uses the default database, ./fidele.db in the folder, as a user would
    url = None if empty_database_url.startswith("sqlite") else empty_database_url
    # a user's shell before `source .venv/bin/activate`: the venv's bin is not on PATH
    path = [p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != VENV / "bin"]
    env = user_env(url, PATH=os.pathsep.join(path))
    env.pop("VIRTUAL_ENV", None)
    demo = None
    if after == "demo":
        built = fidele("demo", "--customers", "20", "--no-serve", "--json", env=env, cwd=tmp_path)
        assert built.returncode == 0, built.stderr
        demo = json.loads(built.stdout)

    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "steps.sh").write_text(_script(commands, out))
    shell = subprocess.Popen(
        [shutil.which("bash") or "/bin/bash", "steps.sh"],
        cwd=tmp_path,
        env=env,
        start_new_session=True,  # its own process group: the server it starts is ended with it
    )
    try:
        assert shell.wait(timeout=300) == 0
        stopped = _wait_closed(port)
    finally:
        if shell.poll() is None or port_open(port):
            os.killpg(shell.pid, signal.SIGTERM)
            shell.wait(timeout=60)

    def step(fragment: str) -> tuple[int, str, str]:
        [i] = [i for i, c in enumerate(commands) if fragment in c]
        rc = int((out / f"{i}.rc").read_text())
        return rc, (out / f"{i}.out").read_text(), (out / f"{i}.err").read_text()

    for command in commands:
        rc, stdout, stderr = step(command)
        assert rc == 0, f"{command!r} exited {rc}: {stdout}{stderr}"

    rc, stdout, _ = step("merchant create")
    shop = json.loads(stdout)
    assert set(shop) == {"programme_id", "merchant_id", "webhook_secret"}
    merchant = (out / "var.MERCHANT").read_text()
    assert merchant == str(shop["merchant_id"])
    if demo is not None:
        assert shop["merchant_id"] != demo["merchant_id"]  # the demo's shop is merchant 1
    assert (out / "var.KEY").read_text().startswith("fdl_")

    _, access_log, served = step("fidele serve")
    assert "Application startup complete" in served
    assert "error" not in served.lower()
    assert '"PUT /v1/customers/c1 HTTP/1.1" 201' in access_log
    assert '"GET /v1/customers/c1/loyalty HTTP/1.1" 200' in access_log
    assert json.loads(step("/healthz")[1])["status"] == "ok"
    customer = json.loads(step("-X PUT")[1])
    assert (customer["id"], customer["email"]) == ("c1", "ana@example.com")
    loyalty = json.loads(step("/loyalty")[1])
    assert loyalty["available"] == 0 and loyalty["tier"] is not None
    # `kill $!` stopped the server: its port closes
    assert stopped, "the server still listens after the README's kill"
    if url is None:
        assert (tmp_path / "fidele.db").exists()
