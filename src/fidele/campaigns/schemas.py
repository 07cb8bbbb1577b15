from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from fidele.kit.schemas import StrictJsonModel, UtcDatetime


class FlowIn(StrictJsonModel):
    """A flow definition (the same document as a YAML file for ``fidele flows load``): saving
    a name that exists adds a version."""

    definition: dict[str, Any] = Field(
        description="name, trigger, steps, goals, reentry (see the flows documentation)"
    )


class FlowOut(BaseModel):
    id: int
    name: str
    status: str
    active_version: int
    latest_version: int
    trigger: str
    template: str | None
    description: str
    enrollments: dict[str, int] = Field(default_factory=dict)
    definition: dict[str, Any] | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class HistoryOut(BaseModel):
    at: UtcDatetime
    step: str
    kind: str
    outcome: str
    reason: str | None
    detail: dict[str, Any]


class EnrollmentOut(BaseModel):
    id: int
    flow_id: int
    flow: str | None = None
    version: int
    customer_id: str | None = None
    status: str
    step: str
    due_at: UtcDatetime | None
    waiting_for: str | None
    entered_at: UtcDatetime
    ended_at: UtcDatetime | None
    exit_reason: str | None
    history: list[HistoryOut] | None = None


class TemplateOut(BaseModel):
    name: str
    title: str
    description: str
    trigger: str
    steps: int
    installed: bool | None = None


class InstallOut(BaseModel):
    flow: FlowOut
    templates: list[str]


def dt(value: datetime | None) -> datetime | None:
    return value
