"""Segment rules as data: parsing and validation (pure, no I/O).

A rule is a tree: ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": rule}`` or a condition
``{"field": NAME, "op": OP, "value": V}`` (counted fields also take ``"within_days": N``).
:func:`parse_rule` checks every node against the field catalogue below and names the path of
the first problem (``rule.all.2.value``); the compiler (``segments.compiler``) turns a parsed
tree into one SQL query.

Semantics, the same in SQL and in any reference evaluation:

- a comparison (``eq lt lte gt gte in between contains``) on a missing value (no country, no
  order yet for ``orders.last_days``, no insights row) is false; ``ne`` and ``not_in`` are
  exactly ``not eq`` / ``not in``, so a missing value is "not equal";
- counted fields (``orders.count``, ``orders.spent``, ``events.<type>.count``, ...) are never
  missing: no order counts 0;
- ``*_days`` fields are whole days elapsed (24-hour periods) since the instant, the same in
  every timezone; ``customer.birthday_month`` is the month of the stored birth date;
- ``{"all": []}`` matches every customer and ``{"any": []}`` none.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fidele.analytics.rfm import DEFAULT_SEGMENTS
from fidele.errors import InvalidInput

OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "exists", "between")
MAX_DEPTH = 64
MAX_LIST = 1000
MAX_WITHIN_DAYS = 36_600
RFM_NAMES = tuple(s.name for s in DEFAULT_SEGMENTS)
NPS_GROUPS = ("promoter", "passive", "detractor")  # 9-10, 7-8, 0-6 (feedback.domain.nps_group)
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.:-]{0,99}$")

# Value kinds: "str", "int" (also money in minor units and days), "float", "bool", "set" (the
# set of categories/products a customer bought), "attr" (a customer attribute: the value's own
# JSON type decides).
_ORDERED = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "between", "exists")
KIND_OPS: dict[str, tuple[str, ...]] = {
    "str": ("eq", "ne", "in", "not_in", "contains", "exists"),
    "int": _ORDERED,
    "float": _ORDERED,
    "bool": ("eq", "ne", "exists"),
    "set": ("contains", "in", "not_in", "exists"),
    "attr": (*_ORDERED, "contains"),
}


class RuleError(InvalidInput):
    """A rule that does not validate: 422 naming the path in the tree (``rule.all.2.value``)."""

    code = "invalid_rule"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}", field=field)
        self.field = field
        self.reason = detail


@dataclass(frozen=True)
class FieldSpec:
    kind: str
    counted: bool = False  # takes within_days; never missing (0) when it is a count or sum
    nullable: bool = True  # may be missing for a customer
    choices: tuple[str, ...] | None = None
    bounds: tuple[int, int] | None = None  # the values an integer field can take (inclusive)


STATIC_FIELDS: dict[str, FieldSpec] = {
    "customer.country": FieldSpec("str"),
    "customer.locale": FieldSpec("str"),
    "customer.timezone": FieldSpec("str"),
    "customer.age_days": FieldSpec("int", nullable=False),
    "customer.birthday_month": FieldSpec("int"),
    "customer.email": FieldSpec("str"),
    "orders.count": FieldSpec("int", counted=True, nullable=False),
    "orders.spent": FieldSpec("int", counted=True, nullable=False),
    "orders.avg_value": FieldSpec("int", counted=True),
    "orders.last_days": FieldSpec("int"),
    "orders.first_days": FieldSpec("int"),
    "orders.categories": FieldSpec("set", counted=True, nullable=False),
    "orders.products": FieldSpec("set", counted=True, nullable=False),
    "loyalty.member": FieldSpec("bool", nullable=False),
    "loyalty.tier": FieldSpec("str"),
    "loyalty.available": FieldSpec("int", nullable=False),
    "loyalty.expiring_30d": FieldSpec("int", nullable=False),
    "insights.segment": FieldSpec("str", choices=RFM_NAMES),
    "insights.r": FieldSpec("int"),
    "insights.f": FieldSpec("int"),
    "insights.m": FieldSpec("int"),
    "insights.p_alive": FieldSpec("float"),
    "insights.clv": FieldSpec("int"),
    "insights.overdue_ratio": FieldSpec("float"),
    "insights.expected_gap_days": FieldSpec("float"),
    "insights.engagement_status": FieldSpec("str"),
    "insights.engagement_score": FieldSpec("int"),
    # feedback: the latest NPS / CSAT answer with a score (the answer given last: its
    # updated_at), and counts of the customer's answers, reviews and complaints
    "feedback.nps_last": FieldSpec("int", bounds=(0, 10)),
    "feedback.nps_group": FieldSpec("str", choices=NPS_GROUPS),
    "feedback.csat_last": FieldSpec("int", bounds=(1, 5)),
    "feedback.surveys_answered": FieldSpec("int", counted=True, nullable=False),
    "feedback.reviews": FieldSpec("int", counted=True, nullable=False),
    "feedback.complaints": FieldSpec("int", counted=True, nullable=False),
    "feedback.complaints_open": FieldSpec("int", nullable=False),
}
# Fields the catalogue documents (GET /v1/segments/fields, the CLI): static ones and patterns.
PATTERN_FIELDS = {
    "customer.attributes.<key>": "a customer attribute (string, number or boolean)",
    "consent.<topic>.<channel>": "consent granted for a topic on a channel (boolean)",
    "events.<type>.count": "events of that type (takes within_days)",
    "messages.<flow>.received": (
        "received a message of that journey: sent by the transport, not bounced (boolean, "
        "takes within_days on the send time); <flow> is the flow's id, its name or the "
        "ready-made journey it was installed from (win_back, welcome...)"
    ),
    "messages.<flow>.count": "messages of that journey received (takes within_days)",
    "messages.<flow>.opened": (
        "opened a message of that journey (a click proves an open; boolean, takes "
        "within_days on the last open or click)"
    ),
    "messages.<flow>.clicked": "clicked a link in a message of that journey (as opened)",
}
MESSAGE_FIELDS: dict[str, FieldSpec] = {
    "received": FieldSpec("bool", counted=True, nullable=False),
    "count": FieldSpec("int", counted=True, nullable=False),
    "opened": FieldSpec("bool", counted=True, nullable=False),
    "clicked": FieldSpec("bool", counted=True, nullable=False),
}


@dataclass(frozen=True)
class Field:
    name: str  # the full name as written
    source: str  # customer | attr | consent | orders | loyalty | insights | events | messages
    # | feedback
    attr: str  # the attribute within the source (country, count, ...; the key/type/topic)
    spec: FieldSpec
    channel: str | None = None  # consent only
    flow: str | None = None  # messages only: the flow's id, name or template as written


@dataclass(frozen=True)
class Condition:
    field: Field
    op: str
    value: Any
    within_days: int | None
    path: str


@dataclass(frozen=True)
class All:
    children: tuple[Rule, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    child: Rule


Rule = All | AnyOf | Not | Condition


def resolve_field(name: Any, path: str) -> Field:
    if not isinstance(name, str) or not name:
        raise RuleError(path, "must be a field name such as 'orders.count'")
    spec = STATIC_FIELDS.get(name)
    if spec is not None:
        source, _, attr = name.partition(".")
        return Field(name, source, attr, spec)
    parts = name.split(".")
    if name.startswith("customer.attributes.") and len(parts) == 3 and _KEY.match(parts[2]):
        return Field(name, "attr", parts[2], FieldSpec("attr"))
    if parts[0] == "consent" and len(parts) == 3 and all(_KEY.match(p) for p in parts[1:]):
        return Field(name, "consent", parts[1], FieldSpec("bool", nullable=False), parts[2])
    if name.startswith("events.") and name.endswith(".count"):
        event_type = name[len("events.") : -len(".count")]
        if _EVENT_TYPE.match(event_type):
            return Field(name, "events", event_type, FieldSpec("int", counted=True, nullable=False))
    if parts[0] == "messages" and len(parts) == 3 and _KEY.match(parts[1]):
        spec = MESSAGE_FIELDS.get(parts[2])
        if spec is not None:
            return Field(name, "messages", parts[2], spec, flow=parts[1])
    raise RuleError(path, f"unknown field {name!r}")


def parse_rule(rule: Any, *, path: str = "rule") -> Rule:
    """Validate ``rule`` and return its parsed tree; raises :class:`RuleError` naming the path
    of the first problem."""
    return _parse(rule, path, 0)


def _parse(node: Any, path: str, depth: int) -> Rule:
    if depth > MAX_DEPTH:
        raise RuleError(path, f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, Mapping):
        raise RuleError(path, "must be an object: all, any, not or a condition")
    keys = set(node)
    for group, cls in (("all", All), ("any", AnyOf)):
        if group in node:
            if keys != {group}:
                raise RuleError(path, f"{group!r} cannot be combined with {sorted(keys - {group})}")
            items = node[group]
            if not isinstance(items, list):
                raise RuleError(f"{path}.{group}", "must be a list of rules")
            children = tuple(
                _parse(child, f"{path}.{group}.{i}", depth + 1) for i, child in enumerate(items)
            )
            return cls(children)
    if "not" in node:
        if keys != {"not"}:
            raise RuleError(path, f"'not' cannot be combined with {sorted(keys - {'not'})}")
        return Not(_parse(node["not"], f"{path}.not", depth + 1))
    if "field" in node:
        return _condition(node, path)
    raise RuleError(path, "must have one of 'all', 'any', 'not' or 'field'")


def _condition(node: Mapping[str, Any], path: str) -> Condition:
    extra = set(node) - {"field", "op", "value", "within_days"}
    if extra:
        raise RuleError(f"{path}.{sorted(extra)[0]}", "unknown key in a condition")
    field = resolve_field(node["field"], f"{path}.field")
    op = node.get("op")
    if op not in OPS:
        raise RuleError(f"{path}.op", f"must be one of {', '.join(OPS)}")
    if op not in KIND_OPS[field.spec.kind]:
        raise RuleError(
            f"{path}.op", f"{op!r} does not apply to {field.name} ({_kind_label(field.spec)})"
        )
    within = node.get("within_days")
    if within is not None:
        if not field.spec.counted:
            raise RuleError(f"{path}.within_days", f"{field.name} is not a counted field")
        if not _is_int(within) or not 1 <= within <= MAX_WITHIN_DAYS:
            raise RuleError(f"{path}.within_days", f"must be an integer 1..{MAX_WITHIN_DAYS}")
    value = _value(field, op, node, f"{path}.value")
    return Condition(field, op, value, within, path)


def _kind_label(spec: FieldSpec) -> str:
    return {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "a boolean",
        "set": "a set of strings",
        "attr": "an attribute",
    }[spec.kind]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63


def _scalar_ok(spec: FieldSpec, v: Any) -> bool:
    if spec.kind in ("str", "set"):
        return isinstance(v, str) and 0 < len(v) <= 500
    if spec.kind == "int":
        return _is_int(v)
    if spec.kind == "float":
        return (_is_int(v) or isinstance(v, float)) and v == v and abs(v) < 1e300
    if spec.kind == "bool":
        return isinstance(v, bool)
    # attr: a string, a number or a boolean
    return isinstance(v, str | bool) or _scalar_ok(FieldSpec("float"), v)


def _value(field: Field, op: str, node: Mapping[str, Any], path: str) -> Any:
    spec = field.spec
    if op == "exists":
        value = node.get("value", True)
        if not isinstance(value, bool):
            raise RuleError(path, "exists takes true or false (or no value)")
        return value
    if "value" not in node:
        raise RuleError(path, f"{op!r} needs a value")
    value = node["value"]
    expected = _kind_label(spec) if spec.kind != "set" else "a string"
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST:
            raise RuleError(path, f"{op!r} takes a list of 1..{MAX_LIST} values")
        for i, item in enumerate(value):
            _check_scalar(field, op, item, f"{path}.{i}", expected)
        if spec.kind == "attr" and len({_attr_kind(v) for v in value}) > 1:
            raise RuleError(path, "the values of a list must all be of one type")
        return list(value)
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise RuleError(path, "'between' takes [low, high]")
        for i, item in enumerate(value):
            _check_scalar(field, op, item, f"{path}.{i}", expected)
            if isinstance(item, str | bool):
                raise RuleError(f"{path}.{i}", "'between' takes numbers")
        if value[0] > value[1]:
            raise RuleError(path, "low must not exceed high")
        return list(value)
    _check_scalar(field, op, value, path, expected)
    if spec.kind == "attr" and op in ("lt", "lte", "gt", "gte") and isinstance(value, bool):
        raise RuleError(path, f"{op!r} takes a number or a string")
    if spec.kind == "attr" and op == "contains" and not isinstance(value, str):
        raise RuleError(path, "'contains' takes a string")
    return value


def _check_scalar(field: Field, op: str, v: Any, path: str, expected: str) -> None:
    if not _scalar_ok(field.spec, v):
        raise RuleError(path, f"{field.name} {op} takes {expected}, not {v!r}")
    choices = field.spec.choices
    if choices is not None and op != "contains" and v not in choices:
        raise RuleError(path, f"unknown value {v!r}: one of {', '.join(choices)}")
    bounds = field.spec.bounds
    if bounds is not None and not bounds[0] <= v <= bounds[1]:
        raise RuleError(path, f"{field.name} is {bounds[0]}..{bounds[1]}, not {v!r}")


def _attr_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    return "str" if isinstance(v, str) else "num"


def attr_kind(v: Any) -> str:
    """How a customer attribute is compared to ``v``: ``bool``, ``str`` or ``num``."""
    return _attr_kind(v[0] if isinstance(v, list) else v)


def conditions(rule: Rule) -> list[Condition]:
    """Every condition of the tree, depth first."""
    if isinstance(rule, Condition):
        return [rule]
    if isinstance(rule, Not):
        return conditions(rule.child)
    return [c for child in rule.children for c in conditions(child)]


# What can change a customer's membership, per field source: the event types whose arrival
# re-evaluates the segments using that source (clock-only changes are the scheduled pass's).
SOURCE_TRIGGERS: dict[str, tuple[str, ...]] = {
    "customer": ("customer",),
    "attr": ("customer",),
    "consent": ("customer", "consent"),
    "orders": ("order",),
    "loyalty": ("loyalty", "order"),
    "insights": ("insights",),
    "events": ("event",),
    "messages": (),  # no event when a message goes: the scheduled pass ("clock") sees it
    "feedback": ("feedback",),  # a survey answered, a review posted, a complaint opened/closed
}
# Fields whose value moves with the clock alone (checked by the scheduled pass).
# Loyalty balances and tiers also move by jobs (pending points released, expiry, tier review).
CLOCK_FIELDS = frozenset(
    {
        "customer.age_days",
        "orders.last_days",
        "orders.first_days",
        "loyalty.expiring_30d",
        "loyalty.available",
        "loyalty.tier",
    }
)


def depends_on(rule: Rule) -> frozenset[str]:
    """The change kinds (``customer``, ``order``, ``loyalty``, ``insights``, ``event``,
    ``consent``, ``feedback``) that can change a customer's membership of ``rule``; ``clock``
    too when the rule has a clock-driven field or a ``within_days`` window."""
    kinds: set[str] = set()
    for cond in conditions(rule):
        kinds.update(SOURCE_TRIGGERS[cond.field.source])
        clocked = cond.field.name in CLOCK_FIELDS or cond.field.source == "messages"
        if clocked or cond.within_days is not None:
            kinds.add("clock")
    return frozenset(kinds)


def builtin_rules() -> list[tuple[str, dict[str, Any]]]:
    """The built-in segments every merchant has: one per RFM segment name."""
    return [(name, {"field": "insights.segment", "op": "eq", "value": name}) for name in RFM_NAMES]
