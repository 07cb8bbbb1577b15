"""Shared Pydantic building blocks: strict input models, ids, currencies, datetimes with zones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from fidele.kit.money import is_currency


def _upper_currency(value: str) -> str:
    code = value.upper()
    if not is_currency(code):
        raise ValueError(f"unknown ISO 4217 currency {value!r}")
    return code


Currency = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(_upper_currency)]
# No NUL: PostgreSQL text cannot hold it (found by the OpenAPI fuzz test).
ExternalId = Annotated[
    str, Field(min_length=1, max_length=255, pattern=r"^[^\s/\x00]([^/\x00]*[^\s/\x00])?$")
]
Minor = Annotated[int, Field(ge=0, le=10**15)]
UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(lambda v: v.astimezone(UTC)),
    PlainSerializer(
        lambda v: v.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        return_type=str,
        when_used="json",  # model_dump() in Python mode keeps datetimes
    ),
]


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


INT64 = 2**63 - 1


def has_nul(value: Any) -> bool:
    """True when ``value`` holds what no database column can store: a NUL character or an
    integer beyond 64 bits (anywhere: keys, nested lists and dicts)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, int) and not isinstance(item, bool):
            if not -INT64 <= item <= INT64:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


class InputModel(BaseModel):
    """Request bodies refuse unknown fields, so a typo is a 422 naming it, not silently lost."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        # PostgreSQL text and JSONB cannot store NUL: refuse it here (422), not with a 500 there.
        if has_nul(data):
            raise ValueError(
                "text must not contain NUL (\\u0000) characters and integers must fit in 64 bits"
            )
        return data


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)
