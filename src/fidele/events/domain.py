"""Pure helpers of ingestion: canonical payload hashing for idempotency."""

from __future__ import annotations

import hashlib
import json
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


def payload_hash(payload: Any) -> str:
    """SHA-256 of the canonical JSON of ``payload`` (sorted keys, no spaces)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
