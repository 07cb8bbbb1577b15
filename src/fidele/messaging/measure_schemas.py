"""Request and response documents of broadcasts, stats and measurement settings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from fidele.kit.schemas import Id, InputModel, OutputModel, UtcDatetime
from fidele.messaging.schemas import Topic

VariantName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,50}$", examples=["a"])]
Share = Annotated[int, Field(ge=0, le=9000, description="basis points: 1000 = 10%")]


class VariantIn(InputModel):
    name: VariantName
    template_id: Id
    weight: int = Field(1, ge=1, le=10_000)


class BroadcastIn(InputModel):
    segment_id: Id
    template_id: Id = Field(description="The message; with variants, the first variant's")
    send_at: UtcDatetime = Field(description="When to send (now or earlier: at once)")
    topic: Topic = Field(description="Marketing topic whose consent the customers need")
    name: str | None = Field(None, max_length=200)
    local_time: bool = Field(
        False,
        description="Send at send_at's wall-clock time (in the merchant's zone) in each "
        "customer's own time zone",
    )
    holdout_share: Share = Field(0, description="Customers kept back, in basis points")
    variants: list[VariantIn] = Field(
        default_factory=list,
        max_length=10,
        description="A/B variants (2 or more, distinct names); empty: template_id for all",
    )
    test_share: Share = Field(
        0,
        description="With variants: the share (basis points) that gets the split first; the "
        "rest gets the winner once chosen. 0: everyone gets the split",
    )
    winner: Literal["manual", "auto"] = Field(
        "manual",
        description="auto: the winner is chosen as soon as its conversion difference's 95% "
        "interval excludes zero",
    )

    @field_validator("topic")
    @classmethod
    def _marketing(cls, v: str) -> str:
        if v == "transactional":
            raise ValueError("a broadcast is marketing: transactional is not allowed")
        return v

    @field_validator("send_at")
    @classmethod
    def _plausible(cls, v: datetime) -> datetime:
        if not 1970 <= v.year <= 9000:
            raise ValueError("send_at must be between the years 1970 and 9000")
        return v

    @field_validator("variants")
    @classmethod
    def _distinct(cls, v: list[VariantIn]) -> list[VariantIn]:
        if len(v) == 1:
            raise ValueError("give 2 variants or more, or none")
        if len({x.name for x in v}) != len(v):
            raise ValueError("variant names must be distinct")
        return v


class WinnerIn(InputModel):
    variant: VariantName


class Progress(OutputModel):
    recipients: int
    processed: int
    pending: int
    waiting: int
    outcomes: dict[str, int]


class BroadcastOut(OutputModel):
    id: int
    name: str | None
    segment_id: int
    template_id: int
    topic: str
    channel: str
    send_at: datetime
    local_time: bool
    holdout_share: int
    variants: list[dict[str, Any]]
    test_share: int
    winner_mode: str
    winner: str | None
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancelled_at: datetime | None
    progress: Progress


class MeasurementIn(InputModel):
    global_holdout_share: Share = Field(
        0, description="Customers kept back from every marketing message (basis points)"
    )
    click_days: float = Field(
        5.0, ge=0, le=90, strict=True, description="Attribution window after a click"
    )
    open_days: float = Field(
        3.0, ge=0, le=90, strict=True, description="Attribution window after an open"
    )


class MeasurementOut(OutputModel):
    global_holdout_share: int
    click_days: float
    open_days: float
