"""``fidele demo`` in a real process: plain progress when piped, the shop's lines only once the
served API answers, and a ``try:`` line that is a complete command however narrow the output."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Engine

# The full command tree: ``fidele demo`` through the console script trips on its lazy loading
# (another branch fixes it); this runs the same Typer app in a separate process.
FIDELE = [sys.executable, "-c", "from fidele.cli import app; app()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, key: str) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback)
        return int(resp.status)


def test_served_demo_answers_its_try_line_at_once(committed_engine: Engine, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "FIDELE_DATABASE_URL": committed_engine.url.render_as_string(hide_password=False),
        "FIDELE_SECRET_KEY": "demo-test-secret",
        "COLUMNS": "40",  # a narrow output must not wrap the try line
    }
    err = (tmp_path / "stderr").open("w+")
    proc = subprocess.Popen(
        [*FIDELE, "demo", "--customers", "200", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:  # ends if the process dies
            lines.append(line.rstrip("\n"))
            if line.startswith("ready:"):
                break
        assert lines and lines[-1].startswith("ready:"), (lines, err.seek(0) or err.read())
        try_line = next(ln for ln in lines if ln.startswith("try:"))
        key = next(ln for ln in lines if ln.startswith("API key:")).split()[-1]
        command = shlex.split(try_line.removeprefix("try:"))
        url = f"http://127.0.0.1:{port}/v1/orders"
        assert command == ["curl", "-H", f"Authorization: Bearer {key}", url]
        started = time.monotonic()
        answer = subprocess.run(
            [*command, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert answer.stdout == "200", answer
        assert time.monotonic() - started < 15  # not queued behind the worker's first round
        # and the next ones, a few at a time, while the embedded worker runs its rounds
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda _: _get(url, key), range(40)))
        assert statuses == [200] * 40
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    err.seek(0)
    progress = [ln for ln in err.read().splitlines() if ln.startswith("demo: ")]
    assert any("% loyalty " in ln for ln in progress), progress  # plain lines, no bar
    assert all("\x1b" not in ln for ln in progress)
