"""Cursor pagination: a cursor over a monotonically increasing integer id.

The cursor is the last id seen, in decimal: the schema states its exact form (any string of
up to 19 digits is a valid cursor, one past every id gives an empty page), so a client or a
fuzzer never meets a cursor that matches the schema and is still refused."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from fidele.errors import InvalidInput
from fidele.kit.schemas import INT64

T = TypeVar("T")
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


CURSOR_PATTERN = r"^[0-9]{0,19}$"
Cursor = Annotated[
    str | None,
    Query(
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page; absent for the first page",
    ),
]


def encode_cursor(last_id: int) -> str:
    return str(last_id)


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 19:
        raise InvalidInput("cursor is not valid", field="cursor")
    return min(int(cursor), INT64)
