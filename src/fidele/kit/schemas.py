"""Shared Pydantic building blocks: strict input models, ids, currencies, datetimes with zones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

from fidele.kit.money import is_currency


def _upper_currency(value: str) -> str:
    code = value.upper()
    if not is_currency(code):
        raise ValueError(f"unknown ISO 4217 currency {value!r}")
    return code


Currency = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(_upper_currency)]
ExternalId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\s/]([^/]*[^\s/])?$")]
Minor = Annotated[int, Field(ge=0, le=10**15)]
UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(lambda v: v.astimezone(UTC)),
    PlainSerializer(
        lambda v: v.astimezone(UTC).isoformat().replace("+00:00", "Z"), return_type=str
    ),
]


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class InputModel(BaseModel):
    """Request bodies refuse unknown fields, so a typo is a 422 naming it, not silently lost."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)
