"""Pure helpers of ingestion: canonical payload hashing for idempotency."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

# Event types fidele itself writes to the log (custom action types are free-form strings).
CUSTOMER_UPSERTED = "customer.upserted"
CUSTOMER_ERASED = "customer.erased"
ORDER_PLACED = "order.placed"
ORDER_PAID = "order.paid"
ORDER_STATUS = {
    "shipped": "order.shipped",
    "delivered": "order.delivered",
    "cancelled": "order.cancelled",
}
ORDER_REFUNDED = "order.refunded"
SEGMENT_ENTERED = "segment.entered"
SEGMENT_LEFT = "segment.left"
# Written by feedback (complaints and delivery experience); journeys can start on them.
COMPLAINT_RESOLVED = "complaint.resolved"
COMPLAINT_REJECTED = "complaint.rejected"
ORDER_DELIVERED_LATE = "order.delivered_late"
ACTION_TYPES = (
    "newsletter_subscribed",
    "review_posted",
    "product_viewed",
    "cart_updated",
    "wishlist_added",
    "social_share",
    "survey_answered",
    "complaint_opened",
)
# The one vocabulary of event types: what fidele writes and the actions the API documents.
# Scales (loyalty actions, engagement) name these; custom types stay free-form, but a name
# that only differs from a known one by its separators or a plural is refused where a scale is
# loaded (``newsletter.subscribed`` would silently never match ``newsletter_subscribed``).
EVENT_TYPES = (
    ORDER_PLACED,
    *ORDER_STATUS.values(),
    ORDER_REFUNDED,
    CUSTOMER_UPSERTED,
    SEGMENT_ENTERED,
    SEGMENT_LEFT,
    COMPLAINT_RESOLVED,
    COMPLAINT_REJECTED,
    ORDER_DELIVERED_LATE,
    *ACTION_TYPES,
)
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_.:-]*$"


def _folded(name: str) -> str:
    """``name`` without separators nor an ending's inflection (``social.shared`` and
    ``social_share`` fold alike)."""
    folded = re.sub(r"[_.:-]+", "", name)
    for suffix in ("s", "ed", "d", "e"):
        folded = folded.removesuffix(suffix)
    return folded


_FOLDED = {_folded(t): t for t in EVENT_TYPES}


def event_type_problem(name: str) -> str | None:
    """Why ``name`` cannot be a scale's event type (None if it can): it must fit the events
    API's pattern, and a look-alike of a known type names the known one."""
    if not re.match(EVENT_TYPE_PATTERN, name) or len(name) > 100:
        return f"{name!r} is not an event type (lowercase letters, digits, _ . : -)"
    known = _FOLDED.get(_folded(name))
    if known is not None and known != name:
        return f"unknown event type {name!r}: the API records {known!r}"
    return None


def payload_hash(payload: Any) -> str:
    """SHA-256 of the canonical JSON of ``payload`` (sorted keys, no spaces)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
