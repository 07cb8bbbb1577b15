from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from fidele.kit.schemas import InputModel, OutputModel, UtcDatetime
from fidele.storefront import domain

COLOUR = r"^#[0-9a-fA-F]{6}$"
TEXT = r"^[^\x00]*$"  # PostgreSQL text (and JSONB) cannot hold NUL
ORIGIN = r"^https?://[^ \t\n\r\f\v/\x00]+/?$"


class Look(InputModel):
    """How the widget looks on the shop: colours (``#rrggbb``), the launcher's text in English
    and French, and where the "join" button of anonymous visitors leads."""

    primary: str = Field("#5b3cc4", pattern=COLOUR)
    text: str = Field("#ffffff", pattern=COLOUR)
    launcher_en: str = Field("Rewards", min_length=1, max_length=40, pattern=TEXT)
    launcher_fr: str = Field("Fidélité", min_length=1, max_length=40, pattern=TEXT)
    signup_url: str | None = Field(None, max_length=500, pattern=r"^https?://[^\x00]*$")


class SettingsIn(InputModel):
    origins: list[Annotated[str, Field(max_length=300, pattern=ORIGIN)]] = Field(
        default_factory=list,
        max_length=20,
        description="Shop origins like https://shop.example (no path; 422 otherwise)",
    )
    look: Look = Field(default_factory=Look)

    @field_validator("origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return sorted({domain.normalise_origin(o) for o in value})


class SettingsOut(OutputModel):
    merchant_id: int
    origins: list[str]
    look: Look
    has_secret: bool


class SecretOut(OutputModel):
    merchant_id: int
    secret: str = Field(description="Shown once: sign customer tokens with it")


class RedeemIn(InputModel):
    reward_id: int = Field(gt=0)


class RewardView(OutputModel):
    id: int
    name: str
    kind: str
    value: int
    points_cost: int
    affordable: bool
    points_to_go: int
    text: str


class RedemptionView(OutputModel):
    id: int
    reward_id: int
    reward: str
    points: int
    code: str | None
    status: str
    created_at: UtcDatetime
    how_to_use: str


class MeOut(OutputModel):
    customer_id: str
    available: int
    pending: int
    currency: str
    point_value: int = Field(description="Money value of 100 points, minor units")
    tier: dict[str, Any] | None
    tier_text: str | None
    tier_percent: int
    expiring: dict[str, Any] | None
    membership: dict[str, Any] | None


class HistoryLine(OutputModel):
    id: int
    at: UtcDatetime
    points: int
    pending: bool
    label: str


class ReferralView(OutputModel):
    code: str
    link: str
    friends_joined: int
    rewards_earned: int
    reward: dict[str, Any]


class Activity(OutputModel):
    kind: str
    label: str
    points: int
    text: str | None = None


class ProgramOut(OutputModel):
    merchant_id: int
    name: str
    currency: str
    look: Look
    earn: list[Activity]
    rewards: list[dict[str, Any]]
    tiers: list[dict[str, Any]]
    signup: str
    signup_url: str | None
