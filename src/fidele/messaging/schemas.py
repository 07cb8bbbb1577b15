"""Request and response documents of the messaging API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from fidele.kit.schemas import InputModel, OutputModel

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
