from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from fidele.events.domain import event_type_problem
from fidele.kit.schemas import ExternalId, InputModel, OutputModel, UtcDatetime


def _scale_event_type(name: str) -> str:
    problem = event_type_problem(name)
    if problem is not None:
        raise PydanticCustomError("event_type", problem)
    return name


# An event type named by a scale (loyalty actions, engagement): one of the vocabulary of
# ``fidele.events.domain.EVENT_TYPES`` or a custom type that is not a look-alike of one.
EventType = Annotated[str, AfterValidator(_scale_event_type)]


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
