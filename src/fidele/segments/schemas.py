from __future__ import annotations

from typing import Any

from pydantic import Field

from fidele.customers.schemas import CustomerOut
from fidele.kit.schemas import InputModel, OutputModel, UtcDatetime

RULE_DESCRIPTION = (
    'A rule tree: {"all": [rules]}, {"any": [rules]}, {"not": rule} or a condition '
    '{"field", "op", "value"} (plus "within_days" on counted fields). Ops: eq ne lt lte '
    "gt gte in not_in contains exists between. Fields: GET /v1/segments/fields. A rule that "
    "does not validate is a 422 naming its path (rule.all.2.value)."
)
Rule = dict[str, Any]


class SegmentIn(InputModel):
    name: str = Field(min_length=1, max_length=200)
    rule: Rule = Field(description=RULE_DESCRIPTION)


class PreviewIn(InputModel):
    rule: Rule = Field(description=RULE_DESCRIPTION)
    sample: int = Field(default=20, ge=0, le=100, description="how many customers to show")


class SegmentOut(OutputModel):
    id: int
    name: str
    rule: Rule
    builtin: bool = Field(description="one of the RFM segments every merchant has; read-only")
    depends_on: list[str] = Field(
        description="what can move a customer in or out: customer, order, loyalty, insights, "
        "event, consent, clock"
    )
    count: int = Field(description="members now (kept as customers' events arrive)")
    computed_at: UtcDatetime | None = Field(description="last full evaluation of the base")
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @classmethod
    def of(cls, s: Any) -> SegmentOut:
        return cls(
            id=s.id,
            name=s.name,
            rule=s.rule,
            builtin=s.builtin,
            depends_on=[d for d in s.depends.split(",") if d],
            count=s.member_count,
            computed_at=s.computed_at,
            created_at=s.created_at,
            updated_at=s.updated_at,
        )


class PreviewOut(OutputModel):
    count: int
    sample: list[CustomerOut]


class FieldOut(OutputModel):
    name: str
    type: str
    ops: list[str]
    within_days: bool
    values: list[str] | None = None
    min: int | None = None  # the bounds of an integer field that has some (feedback.nps_last)
    max: int | None = None
