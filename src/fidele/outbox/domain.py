"""Retry schedule of the outbox (pure)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

MAX_ATTEMPTS = 12
BASE = timedelta(seconds=30)
CAP = timedelta(hours=6)


def backoff(attempts: int) -> timedelta:
    """Delay before attempt ``attempts + 1``: 30 s, 1 min, 2 min, ... capped at 6 h."""
    return min(BASE * (2 ** max(attempts - 1, 0)), CAP)


# Spendable codes (gift cards, coupons) in an email's payload: once the email is sent the row
# keeps only their last four characters, as the gift card table does (its code is hashed).
SECRET_KEYS = frozenset({"code"})
# Personal data an email carries (its address, the buyer's free-text message): blanked once
# the email is sent; a retried or dead message keeps them, it still has to leave.
PERSONAL_KEYS = frozenset(
    {
        "to",
        "email",
        "message",
        "first_name",
        "last_name",
        "phone",
        "address",
        "shipping_address",
        "billing_address",
    }
)
REDACTED = "[redacted]"


def mask_code(code: object) -> str:
    """``GABC-DEFG-HJKL`` -> ``****HJKL``: enough for support to match a card, not to spend it."""
    text = "".join(ch for ch in str(code) if ch.isalnum())
    return "****" + text[-4:]


def redact(value: Any) -> Any:
    """The payload as it may stay after sending: secret codes masked, personal fields blanked,
    every other value (topics, amounts, ids, dates) kept."""
    if isinstance(value, dict):
        return {k: _redact_item(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _redact_item(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in SECRET_KEYS and isinstance(value, str):
        return mask_code(value)
    if key in PERSONAL_KEYS:
        return REDACTED
    return redact(value)
