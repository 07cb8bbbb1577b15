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
    field_validator,
)

from fidele.kit.money import MAX_MINOR, is_currency


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
Minor = Annotated[int, Field(ge=0, le=MAX_MINOR)]
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


def unstorable(value: Any) -> str | None:
    """Where ``value`` holds what no database column can store, a NUL character or an integer
    beyond 64 bits (anywhere: keys, nested lists and dicts), as a dotted path ("" for ``value``
    itself); None when everything fits."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, int) and not isinstance(item, bool):
            if not -INT64 <= item <= INT64:
                return path
        elif isinstance(item, dict):
            for k, v in item.items():
                sub = f"{path}.{k}" if path else str(k)
                stack.extend([(sub, k), (sub, v)])
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(item))
    return None


def has_nul(value: Any) -> bool:
    """True when :func:`unstorable` finds something in ``value``."""
    return unstorable(value) is not None


class InputModel(BaseModel):
    """Request bodies refuse unknown fields, so a typo is a 422 naming it, not silently lost."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        # PostgreSQL text and JSONB cannot store NUL, no column an integer beyond 64 bits:
        # refuse them here, per field so the 422 names it, not with a 500 at the database.
        path = unstorable(value)
        if path is not None:
            where = f" (at {path})" if path else ""
            raise ValueError(
                "text must not contain NUL (\\u0000) characters and integers must fit in 64 "
                f"bits{where}"
            )
        return value


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)
