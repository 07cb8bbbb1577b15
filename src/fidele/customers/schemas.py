from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import available_timezones

from pydantic import Field, field_validator

from fidele.kit.schemas import Email, ExternalId, InputModel, IsoDate, OutputModel, UtcDatetime

_TIMEZONES = frozenset(available_timezones())
_LOCALE = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"


class ConsentIn(InputModel):
    email_marketing: bool | None = None
    sms_marketing: bool | None = None
    at: UtcDatetime | None = Field(None, description="When consent was given (default: now)")
    source: str | None = Field(None, max_length=100, description="e.g. checkout, footer_form")


class CustomerIn(InputModel):
    """Every field is optional: a PUT changes the fields it carries and leaves the others."""

    email: Email | None = None
    first_name: str | None = Field(None, max_length=200)
    last_name: str | None = Field(None, max_length=200)
    birthday: IsoDate | None = Field(
        None,
        description="1900-01-01 to 2100-12-31",
        json_schema_extra={"pattern": "^(19|20)[0-9]{2}-|^2100-"},
    )
    locale: str | None = Field(
        None, max_length=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"
    )
    country: str | None = Field(None, min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")
    timezone: str | None = Field(
        None, max_length=64, json_schema_extra={"enum": sorted(_TIMEZONES)}
    )
    consent: ConsentIn | None = None
    attributes: dict[str, Any] | None = None

    @field_validator("country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        return v.upper() if v else v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None and v not in _TIMEZONES:
            raise ValueError("unknown IANA timezone")
        return v

    @field_validator("birthday")
    @classmethod
    def _birthday(cls, v: date | None) -> date | None:
        if v is not None and not (1900 <= v.year <= 2100):
            raise ValueError("birthday out of range")
        return v


class ConsentOut(OutputModel):
    email_marketing: bool
    email_marketing_at: UtcDatetime | None
    email_marketing_source: str | None
    sms_marketing: bool
    sms_marketing_at: UtcDatetime | None


class CustomerOut(OutputModel):
    id: ExternalId
    email: str | None
    first_name: str | None
    last_name: str | None
    birthday: date | None
    locale: str | None
    country: str | None
    timezone: str | None
    consent: ConsentOut
    attributes: dict[str, Any]
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @classmethod
    def of(cls, c: Any) -> CustomerOut:
        return cls(
            id=c.external_id,
            email=c.email,
            first_name=c.first_name,
            last_name=c.last_name,
            birthday=c.birthday,
            locale=c.locale,
            country=c.country,
            timezone=c.timezone,
            consent=ConsentOut.model_validate(c),
            attributes=c.attributes or {},
            created_at=c.created_at,
            updated_at=c.updated_at,
        )
