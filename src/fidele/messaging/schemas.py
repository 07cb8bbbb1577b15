"""Request and response documents of the messaging API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from fidele.kit.schemas import InputModel, OutputModel, UtcDatetime

# A topic is a merchant's word: lower case, digits and underscores.
Topic = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,49}$", examples=["newsletter"])]
Channel = Literal["email", "sms", "push", "webhook"]


class ConsentIn(InputModel):
    topic: Topic = Field(
        description="newsletter, lifecycle, winback, survey or the merchant's own; "
        "transactional needs no consent (422)"
    )
    channel: Channel = "email"
    granted: bool
    source: str = Field("api", min_length=1, max_length=100, description="e.g. checkout")


class ConsentOut(OutputModel):
    topic: str
    channel: str
    granted: bool
    at: datetime
    source: str


LocaleKey = Annotated[str, Field(pattern=r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")]
VarName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,49}$")]


class VariantIn(InputModel):
    subject: str = Field(min_length=1, max_length=1000, description="Jinja2, one line")
    html: str | None = Field(None, max_length=500_000, description="Jinja2, autoescaped")
    text: str | None = Field(None, max_length=200_000, description="Jinja2")


class TemplateIn(InputModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    topic: Topic
    channel: Channel = "email"
    strict: bool = Field(True, description="refuse unknown variables (with their line)")
    variables: list[VarName] = Field(
        default_factory=list, max_length=100, description="extra context keys callers pass"
    )
    variants: dict[LocaleKey, VariantIn] = Field(
        min_length=1, max_length=50, description="per locale; each needs html or text (422)"
    )


class TemplateUpdate(InputModel):
    topic: Topic | None = None
    channel: Channel | None = None
    strict: bool | None = None
    variables: list[VarName] | None = Field(None, max_length=100)
    variants: dict[LocaleKey, VariantIn] | None = Field(None, min_length=1, max_length=50)


class TemplateOut(OutputModel):
    id: int
    name: str
    topic: str
    channel: str
    strict: bool
    variables: list[str]
    variants: dict[str, dict[str, str | None]]
    version: int
    created_at: datetime
    updated_at: datetime


class PreviewIn(InputModel):
    template: str = Field(min_length=1, max_length=100, description="the template's name")
    customer_id: str = Field(min_length=1, max_length=255, description="the shop's own customer id")
    context: dict[str, str | int | bool | None] = Field(
        default_factory=dict, max_length=50, description="the caller's extra context"
    )


class PreviewOut(OutputModel):
    locale: str
    subject: str
    html: str | None
    text: str | None
    headers: dict[str, str]


class CapRuleIn(InputModel):
    max: int = Field(ge=1, le=1000)
    days: int = Field(ge=1, le=365)


class QuietHoursIn(InputModel):
    start: str = Field("21:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    end: str = Field("08:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    no_sunday: bool = False


class PolicyIn(InputModel):
    """Every field optional: absent means fidele's default (``GET`` shows them)."""

    default_locale: LocaleKey | None = None
    timezone: str | None = Field(None, max_length=64, description="IANA zone (422 if unknown)")
    mail_from: str | None = Field(None, max_length=320)
    caps: dict[Channel, list[CapRuleIn]] | None = Field(
        None, description="per channel, rules AND-ed; an empty list: no cap"
    )
    quiet_hours: QuietHoursIn | None = None
    over_cap: dict[Topic, Literal["skip", "defer", "move_on"]] | None = None
    rate_per_second: float | None = Field(None, gt=0, le=100_000)
    soft_bounce_threshold: int | None = Field(None, ge=1, le=100)
    webhook_url: str | None = Field(
        None,
        max_length=2000,
        description="where sms/push/webhook messages are POSTed (422 if unsafe)",
    )


class PolicyOut(OutputModel):
    default_locale: str
    timezone: str
    mail_from: str | None
    caps: dict[str, list[dict[str, int]]]
    quiet_hours: dict[str, str | bool]
    over_cap: dict[str, str]
    rate_per_second: float | None
    soft_bounce_threshold: int
    webhook_url: str | None


class DeliveryEventIn(InputModel):
    """A delivery status notification from the mail provider, mapped to this shape by the
    operator's relay: ``type`` is ``delivered``, ``soft_bounce``, ``hard_bounce`` or
    ``complaint``; ``email`` the recipient; ``message_id`` fidele's ``Message-ID`` header (when
    the provider reports it, the ledger row gets the outcome)."""

    type: Literal["delivered", "soft_bounce", "hard_bounce", "complaint"]
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    channel: Literal["email"] = "email"
    message_id: str | None = Field(None, max_length=255)
    at: UtcDatetime | None = None
    diagnostic: str | None = Field(None, max_length=1000)


class DeliveryEventsIn(InputModel):
    events: list[DeliveryEventIn] = Field(min_length=1, max_length=500)


class DeliveryEventsOut(OutputModel):
    recorded: int
    suppressed: list[str]


class SendOut(OutputModel):
    id: int
    key: str
    customer_id: int
    template_id: int | None
    topic: str
    channel: str
    locale: str | None
    status: str
    reason: str | None
    attempts: int
    flow_id: int | None
    step: str | None
    enrollment_id: int | None
    broadcast_id: int | None
    variant: str | None
    message_id: str | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
