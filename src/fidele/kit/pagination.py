"""Cursor pagination: an opaque cursor over a monotonically increasing integer id."""

from __future__ import annotations

import base64
from typing import Generic, TypeVar

from pydantic import BaseModel

from fidele.errors import InvalidInput

T = TypeVar("T")
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, value = base64.urlsafe_b64decode(padded).decode().split(":", 1)
        if kind != "id":
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not valid", field="cursor") from exc
