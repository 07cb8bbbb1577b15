from __future__ import annotations

from typing import Any

from pydantic import Field

from fidele.kit.schemas import ExternalId, InputModel, OutputModel, UtcDatetime


class EventIn(InputModel):
    type: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[a-z][a-z0-9_.:-]*$",
        description="newsletter_subscribed, review_posted, product_viewed, cart_updated, "
        "wishlist_added, social_share, survey_answered, complaint_opened, or any custom type",
    )
    customer_id: ExternalId
    occurred_at: UtcDatetime
    properties: dict[str, Any] = Field(default_factory=dict)


class EventOut(OutputModel):
    id: int
    type: str
    customer_id: str
    occurred_at: UtcDatetime
    received_at: UtcDatetime
    source: str
    properties: dict[str, Any]
