from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fidele.ingest.connectors.signing import signature

PAYLOADS = Path(__file__).parent / "payloads"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


def signed(secret: str, payload: dict[str, Any]) -> tuple[bytes, str]:
    body = json.dumps(payload).encode()
    return body, signature(secret, body)


@pytest.fixture
def payload():  # type: ignore[no-untyped-def]
    return load
