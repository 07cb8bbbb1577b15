"""Signed survey and review links (``/s/{token}``, ``/r/{token}``).

A token is signed with messaging's tracking signer (HMAC-SHA256 under a key derived from
``FIDELE_SECRET_KEY``, ``messaging.tracking.sign``) and carries its own facts: the kind
(``sv`` survey, ``rv`` review; a tracking token's ``o``/``c`` is never accepted here, nor the
reverse), the merchant, the customer, the survey and occasion (or the order), and its expiry.
Changing any byte (another customer, another occasion, a later expiry) breaks the signature,
so a link only ever answers for the customer, survey and occasion it was made for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fidele.messaging.tracking import sign, verify

SURVEY_PATH = "/s/"
REVIEW_PATH = "/r/"


class LinkRefused(Exception):
    """Why a link is refused: ``invalid`` (forged, altered, not ours: 404) or ``expired``
    (410)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def status(self) -> int:
        return 410 if self.reason == "expired" else 404


@dataclass(frozen=True)
class SurveyLink:
    merchant_id: int
    customer_id: int
    survey_id: int
    occasion: str
    expires_at: datetime


@dataclass(frozen=True)
class ReviewLink:
    merchant_id: int
    customer_id: int
    order_id: int
    expires_at: datetime


def _expiry(now: datetime, days: int) -> int:
    return int((now + timedelta(days=days)).timestamp())


def survey_token(
    secret: str,
    *,
    merchant_id: int,
    customer_id: int,
    survey_id: int,
    occasion: str,
    now: datetime,
    days: int,
) -> str:
    payload = {
        "k": "sv",
        "m": merchant_id,
        "c": customer_id,
        "s": survey_id,
        "o": occasion,
        "e": _expiry(now, days),
    }
    return sign(secret, payload)


def review_token(
    secret: str, *, merchant_id: int, customer_id: int, order_id: int, now: datetime, days: int
) -> str:
    payload = {"k": "rv", "m": merchant_id, "c": customer_id, "r": order_id}
    return sign(secret, {**payload, "e": _expiry(now, days)})


def _payload(secret: str, token: str, kind: str, now: datetime) -> tuple[dict[str, Any], datetime]:
    p = verify(secret, token)
    if p is None or p.get("k") != kind:
        raise LinkRefused("invalid")
    try:
        expires = datetime.fromtimestamp(int(p["e"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        raise LinkRefused("invalid") from None
    if expires <= now:
        raise LinkRefused("expired")
    return p, expires


def read_survey(secret: str, token: str, now: datetime) -> SurveyLink:
    """What a genuine, unexpired survey token says; :class:`LinkRefused` otherwise."""
    p, expires = _payload(secret, token, "sv", now)
    try:
        return SurveyLink(int(p["m"]), int(p["c"]), int(p["s"]), str(p["o"]), expires)
    except (KeyError, TypeError, ValueError):
        raise LinkRefused("invalid") from None


def read_review(secret: str, token: str, now: datetime) -> ReviewLink:
    p, expires = _payload(secret, token, "rv", now)
    try:
        return ReviewLink(int(p["m"]), int(p["c"]), int(p["r"]), expires)
    except (KeyError, TypeError, ValueError):
        raise LinkRefused("invalid") from None


def url(public_url: str, path: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{path}{token}"
