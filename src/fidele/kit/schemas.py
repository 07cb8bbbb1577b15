"""Shared Pydantic building blocks: strict input models, ids, currencies, datetimes with zones."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from functools import cache
from types import UnionType
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
)

from fidele.kit.money import CURRENCIES, MAX_MINOR, is_currency


def _iso_currency(value: str) -> str:
    if not is_currency(value):
        raise ValueError(f"unknown ISO 4217 currency {value!r}")
    return value


# The schema lists the codes the code accepts, so a client (and the fuzz test) knows "000" or
# "eur" is refused before sending it.
Currency = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{3}$",
        json_schema_extra={"enum": sorted(CURRENCIES)},
        description="ISO 4217 code, upper case",
    ),
    AfterValidator(_iso_currency),
]
# No NUL: PostgreSQL text cannot hold it (found by the OpenAPI fuzz test). Whitespace is
# spelled out: what ``\s`` covers differs between regex dialects (Python's includes U+0085),
# so the schema and the server would disagree on the same value.
_EDGE = r"[^ \t\n\r\f\v/\x00]"
ExternalId = Annotated[
    str, Field(min_length=1, max_length=255, pattern=rf"^{_EDGE}([^/\x00]*{_EDGE})?$")
]
EMAIL_PATTERN = r"^[^@ \t\n\r\f\v\x00]+@[^@ \t\n\r\f\v\x00]+\.[^@ \t\n\r\f\v\x00]+$"
Email = Annotated[str, Field(max_length=320, pattern=EMAIL_PATTERN)]
Minor = Annotated[int, Field(ge=0, le=MAX_MINOR)]
# Integers of a JSON body are exact only up to 2**53 - 1 (RFC 7493, I-JSON): an integer of a
# request body is refused past it unless its field sets a smaller bound, and the schema says so.
JSON_INT_MAX = 2**53 - 1
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _json_integer(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected an integer, not true/false")
    if isinstance(value, int | float) and abs(value) > JSON_INT_MAX:
        raise ValueError(f"expected an integer within +-{JSON_INT_MAX}")
    return value


def _not_a_number(value: Any) -> Any:
    # Pydantic reads a number (or a numeric string, as every query value is) as a Unix time;
    # the schema says ISO 8601 date-time, so ``updated_since=0.5`` is refused as it says.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("expected an ISO 8601 date or date-time, not a number")
    if isinstance(value, str | bytes) and _NUMBER.fullmatch(str(value)):
        raise ValueError("expected an ISO 8601 date or date-time, not a number")
    return value


# A calendar date as the schema says it: an ISO 8601 string, never a number read as a time.
IsoDate = Annotated[date, BeforeValidator(_not_a_number)]
# An integer that JSON true/false is not (Pydantic reads them as 1/0), for lists and tuples
# of integers, which StrictJsonModel's per-field check does not reach.
Int = Annotated[int, BeforeValidator(_json_integer)]
UtcDatetime = Annotated[
    AwareDatetime,
    BeforeValidator(_not_a_number),
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
# A database id as a path or body value: what a BIGINT column holds.
Id = Annotated[int, Field(ge=1, le=INT64)]
# A count stored in a 32-bit column (stock, usage limits): larger is a 422 naming the field.
INT32 = 2**31 - 1


def unstorable(value: Any, int_max: int = INT64) -> str | None:
    """Where ``value`` holds what no database column can store, a NUL character or an integer
    beyond ``int_max`` (anywhere: keys, nested lists and dicts), as a dotted path ("" for
    ``value`` itself); None when everything fits."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, int) and not isinstance(item, bool):
            if not -int_max <= item <= int_max:
                return path
        elif isinstance(item, dict):
            for k, v in item.items():
                sub = f"{path}.{k}" if path else str(k)
                stack.extend([(sub, k), (sub, v)])
        elif isinstance(item, list | tuple):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(item))
    return None


def has_nul(value: Any, int_max: int = INT64) -> bool:
    """True when :func:`unstorable` finds something in ``value``."""
    return unstorable(value, int_max) is not None


NO_NUL = "^[^\\x00]*$"
# The schema of a free-form JSON value (attributes, properties) as the server takes it; the
# OpenAPI document defines it once (``fidele.app``) since it is recursive.
STORABLE_JSON = "StorableJson"
STORABLE_JSON_SCHEMA: dict[str, Any] = {
    "description": "Any JSON value without NUL characters, integers within +-(2**53 - 1)",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": "integer", "minimum": -JSON_INT_MAX, "maximum": JSON_INT_MAX},
        {"type": "number", "not": {"type": "integer"}},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "array", "items": {"$ref": f"#/components/schemas/{STORABLE_JSON}"}},
        {
            "type": "object",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"$ref": f"#/components/schemas/{STORABLE_JSON}"},
        },
    ],
}


@cache
def _typed_fields(model: type[BaseModel], kind: type) -> frozenset[str]:
    """Names of the fields typed ``kind`` (or ``kind | None``): there a JSON value of another
    type is refused, not converted (Pydantic reads true as 1 and 0 as false)."""
    found = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        args = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
        # ``Minor | None``: the union's members keep their Annotated wrapper
        args = tuple(get_args(a)[0] if get_origin(a) is Annotated else a for a in args)
        if annotation is kind or (kind in args and {int, bool} - {kind} - set(args)):
            found.add(name)
    return frozenset(found)


@cache
def _nested_models(model: type[BaseModel]) -> frozenset[str]:
    """Names of the fields holding strict request models (alone, optional or in a list)."""

    def holds(annotation: Any) -> bool:
        if isinstance(annotation, type) and issubclass(annotation, StrictJsonModel):
            return True
        return any(holds(a) for a in get_args(annotation))

    return frozenset(name for name, f in model.model_fields.items() if holds(f.annotation))


def _wrong_type(cls: type[BaseModel], name: str, value: Any) -> str | None:
    """Why the JSON ``value`` of field ``name`` is not of its declared int or bool type."""
    if name in _typed_fields(cls, int):
        # 1e16 is a JSON integer too (a float here): past the bound it is refused the same.
        if isinstance(value, bool) or (
            isinstance(value, int | float) and abs(value) > JSON_INT_MAX
        ):
            return f"must be an integer within +-{JSON_INT_MAX}"
    if name in _typed_fields(cls, bool) and value is not None and not isinstance(value, bool):
        return "must be true or false"
    return None


def _state_storable(schema: dict[str, Any]) -> None:
    """Write into a field's schema the limits ``StrictJsonModel`` enforces: no NUL in a string,
    no integer past ``JSON_INT_MAX``, free-form values as ``StorableJson``."""
    if schema.get("type") == "string" and not {"enum", "format", "const"} & set(schema):
        if "pattern" not in schema:
            schema["pattern"] = NO_NUL
        elif "x00" not in schema["pattern"]:
            schema.setdefault("allOf", []).append({"pattern": NO_NUL})
    if schema.get("type") == "integer":
        if not {"maximum", "exclusiveMaximum"} & set(schema):
            schema["maximum"] = JSON_INT_MAX
        if not {"minimum", "exclusiveMinimum"} & set(schema):
            schema["minimum"] = -JSON_INT_MAX
    if schema.get("type") == "object" and "properties" not in schema and "$ref" not in schema:
        if schema.get("additionalProperties", True) is True:
            schema["propertyNames"] = {"pattern": NO_NUL}
            schema["additionalProperties"] = {"$ref": f"#/components/schemas/{STORABLE_JSON}"}
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key, ()):
            _state_storable(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _state_storable(schema[key])
    for sub in schema.get("prefixItems", ()):
        _state_storable(sub)


def _strict_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    for prop in schema.get("properties", {}).values():
        _state_storable(prop)
    rules = getattr(model, "schema_rules", ())
    if rules:
        schema["allOf"] = [*schema.get("allOf", ()), *rules]


def when(field: str, value: Any, then: dict[str, Any]) -> dict[str, Any]:
    """A cross-field rule in JSON Schema: when ``field`` is ``value``, ``then`` applies.
    Models list these in ``schema_rules`` next to the validator that enforces them."""
    return {"if": {"properties": {field: {"const": value}}, "required": [field]}, "then": then}


def required_in(field: str, **bounds: Any) -> dict[str, Any]:
    """``field`` must be given (its default does not do) and within ``bounds``."""
    return {"required": [field], "properties": {field: bounds}}


class StrictJsonModel(BaseModel):
    """A request document whose JSON Schema says exactly what is accepted: unknown fields are
    refused (a typo is a 422 naming it), strings are taken as sent (not stripped), a boolean is
    not an integer nor the reverse, and what a database cannot store (NUL, huge integers) is
    refused here with a 422 rather than by PostgreSQL with a 500."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_strict_schema)
    # Cross-field rules of the model's validators, stated in its JSON Schema (``when``).
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = ()

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_unstorable(cls, value: Any, info: ValidationInfo) -> Any:
        # PostgreSQL text and JSONB cannot store NUL, and a JSON integer is exact only up to
        # 2**53 - 1; Pydantic reads true as 1 and 0 as false: refuse them here, per field so
        # the 422 names it, not with a 500 later.
        problem = _wrong_type(cls, info.field_name or "", value)
        if problem:
            raise ValueError(problem)
        if info.field_name in _nested_models(cls):
            return value  # a nested request model checks its own fields, naming them
        path = unstorable(value, JSON_INT_MAX)
        if path is not None:
            where = f" (at {path})" if path else ""
            raise ValueError(
                "text must not contain NUL (\\u0000) characters and integers must be within "
                f"+-{JSON_INT_MAX}{where}"
            )
        return value


class InputModel(StrictJsonModel):
    """A request body (see ``StrictJsonModel``)."""


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)
