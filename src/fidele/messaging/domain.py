"""Pure rules of messaging: the merchant's policy and its defaults, frequency caps, quiet hours,
signed unsubscribe tokens. No I/O: the service passes in what the database holds."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TRANSACTIONAL = "transactional"
BUILTIN_TOPICS = ("transactional", "newsletter", "lifecycle", "winback", "survey")
OverCap = Literal["skip", "defer", "move_on"]
# What a topic does over the cap when the merchant set nothing: a newsletter a day late is
# stale, a journey's message is still right a few hours later.
DEFAULT_OVER_CAP: dict[str, OverCap] = {"newsletter": "skip"}


@dataclass(frozen=True)
class CapRule:
    """At most ``max`` non-transactional messages on a channel within any ``days`` days
    (a rolling window)."""

    max: int
    days: int

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.days)


@dataclass(frozen=True)
class QuietHours:
    start: time = time(21, 0)
    end: time = time(8, 0)
    no_sunday: bool = False


DEFAULT_CAPS: dict[str, tuple[CapRule, ...]] = {
    "email": (CapRule(1, 1), CapRule(3, 7), CapRule(8, 30)),
}


@dataclass(frozen=True)
class Policy:
    """A merchant's sending policy (``GET/PUT /v1/messages/policy``); every field defaults."""

    default_locale: str = "en"
    timezone: str = "UTC"  # for customers without one
    mail_from: str | None = None
    caps: Mapping[str, tuple[CapRule, ...]] = field(default_factory=lambda: dict(DEFAULT_CAPS))
    quiet_hours: QuietHours = QuietHours()
    over_cap: Mapping[str, OverCap] = field(default_factory=dict)
    rate_per_second: float | None = None
    soft_bounce_threshold: int = 3
    webhook_url: str | None = None

    def over_cap_policy(self, topic: str) -> OverCap:
        return self.over_cap.get(topic) or DEFAULT_OVER_CAP.get(topic, "defer")


def policy_from(document: Mapping[str, Any] | None) -> Policy:
    """The policy a stored document (validated by ``schemas.PolicyIn``) describes."""
    doc = dict(document or {})
    kw: dict[str, Any] = {}
    for name in ("default_locale", "timezone", "mail_from", "rate_per_second", "webhook_url"):
        if doc.get(name) is not None:
            kw[name] = doc[name]
    if doc.get("soft_bounce_threshold") is not None:
        kw["soft_bounce_threshold"] = doc["soft_bounce_threshold"]
    if doc.get("caps") is not None:
        kw["caps"] = {
            channel: tuple(CapRule(int(r["max"]), int(r["days"])) for r in rules)
            for channel, rules in doc["caps"].items()
        }
    if doc.get("quiet_hours") is not None:
        q = doc["quiet_hours"]
        kw["quiet_hours"] = QuietHours(
            time.fromisoformat(q.get("start", "21:00")),
            time.fromisoformat(q.get("end", "08:00")),
            bool(q.get("no_sunday", False)),
        )
    if doc.get("over_cap") is not None:
        kw["over_cap"] = dict(doc["over_cap"])
    return Policy(**kw)


def policy_document(policy: Policy) -> dict[str, Any]:
    """The policy as the API shows it (defaults filled in)."""
    q = policy.quiet_hours
    return {
        "default_locale": policy.default_locale,
        "timezone": policy.timezone,
        "mail_from": policy.mail_from,
        "caps": {
            ch: [{"max": r.max, "days": r.days} for r in rules] for ch, rules in policy.caps.items()
        },
        "quiet_hours": {
            "start": q.start.strftime("%H:%M"),
            "end": q.end.strftime("%H:%M"),
            "no_sunday": q.no_sunday,
        },
        "over_cap": dict(policy.over_cap),
        "rate_per_second": policy.rate_per_second,
        "soft_bounce_threshold": policy.soft_bounce_threshold,
        "webhook_url": policy.webhook_url,
    }


# --- frequency caps ---------------------------------------------------------------------


def cap_block(
    rules: Sequence[CapRule], counted: Sequence[datetime], now: datetime
) -> datetime | None:
    """None when one more message fits every rule, given the times of the messages already
    counted (any order); otherwise the earliest moment when all the violated rules allow one
    more (the oldest messages of each full window have aged out of it). The strictest rule
    wins: rules are AND-ed."""
    blocked_until: datetime | None = None
    ordered = sorted(counted, reverse=True)  # newest first
    for rule in rules:
        inside = [t for t in ordered if t > now - rule.window]
        if len(inside) < rule.max:
            continue
        # the window has room again when the max-th newest message leaves it
        free_at = inside[rule.max - 1] + rule.window
        blocked_until = free_at if blocked_until is None else max(blocked_until, free_at)
    return blocked_until


def longest_window(rules: Sequence[CapRule]) -> timedelta:
    return max((r.window for r in rules), default=timedelta(0))


# --- quiet hours ------------------------------------------------------------------------


def zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    for candidate in (name, fallback, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _quiet(t: time, q: QuietHours) -> bool:
    if q.start == q.end:
        return False
    if q.start < q.end:
        return q.start <= t < q.end
    return t >= q.start or t < q.end  # crosses midnight (21:00-08:00)


def next_allowed(now: datetime, tz: ZoneInfo, q: QuietHours) -> datetime | None:
    """None when ``now`` is outside the quiet hours (and not a Sunday the merchant keeps free)
    in the customer's zone; otherwise the next moment (UTC) a marketing message may go."""
    local = now.astimezone(tz)
    moved = False
    for _ in range(8):  # at most a Sunday and a quiet night to step over
        if q.no_sunday and local.weekday() == 6:
            local = datetime.combine(local.date() + timedelta(days=1), time(0), tz)
            moved = True
            continue
        if _quiet(local.timetz().replace(tzinfo=None), q):
            day = local.date() if local.time() < q.end else local.date() + timedelta(days=1)
            local = datetime.combine(day, q.end, tz)
            moved = True
            continue
        break
    return local.astimezone(UTC) if moved else None


# --- unsubscribe tokens -----------------------------------------------------------------


def _signature(secret: str, merchant_id: int, customer_id: int, topic: str) -> str:
    msg = f"unsubscribe:{merchant_id}:{customer_id}:{topic}".encode()
    digest = hmac.new(secret.encode(), msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")


def unsubscribe_token(secret: str, merchant_id: int, customer_id: int, topic: str) -> str:
    """``{merchant}.{customer}.{topic}.{signature}``: the HMAC binds the three, so a token
    cannot be edited to reach another customer or topic, nor made without the server secret."""
    return (
        f"{merchant_id}.{customer_id}.{topic}.{_signature(secret, merchant_id, customer_id, topic)}"
    )


@dataclass(frozen=True)
class TokenSubject:
    merchant_id: int
    customer_id: int
    topic: str


def read_token(secret: str, token: str) -> TokenSubject | None:
    """The subject of a genuine token; None for anything forged, edited or malformed."""
    parts = token.split(".")
    if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    merchant_id, customer_id, topic, sig = int(parts[0]), int(parts[1]), parts[2], parts[3]
    if not topic or len(topic) > 50:
        return None
    expected = _signature(secret, merchant_id, customer_id, topic)
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        return None
    return TokenSubject(merchant_id, customer_id, topic)


# --- retries ----------------------------------------------------------------------------

MAX_ATTEMPTS = 8


def backoff(attempts: int) -> timedelta:
    """Wait before retry number ``attempts`` (1-based) after a temporary failure: 1, 2, 4 ...
    minutes, at most 2 hours."""
    return timedelta(minutes=min(2 ** (attempts - 1), 120))


def message_id(send_id: int, merchant_id: int, domain: str) -> str:
    """The RFC 5322 Message-ID of a ledger row: the same on every attempt of the row, so a
    receiving system can tell a resend from a new message."""
    return f"<fidele.{merchant_id}.{send_id}@{domain}>"


# --- eligibility ------------------------------------------------------------------------


def ineligible_reason(
    *,
    topic: str,
    erased: bool,
    has_address: bool,
    channel_ready: bool,
    suppression: str | None,
    consented: bool,
    complaint_open: bool,
) -> str | None:
    """Why a message may not go (None: it may). The one rule, applied when ``send`` decides a
    message and again by the delivery loop just before it goes: transactional messages need
    no consent and ignore complaints, but never go to an address that hard-bounced."""
    if erased:
        return "erased"
    if not has_address:
        return "no_address"
    if not channel_ready:
        return "no_webhook_url"
    if topic == TRANSACTIONAL:
        return "suppressed" if suppression == "hard_bounce" else None
    if suppression is not None:
        return "suppressed"
    if not consented:
        return "no_consent"
    if complaint_open:
        return "complaint_open"
    return None


# --- the decision of one message ----------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """What ``send`` (and ``send_many``) decide for one message, before any row is written:
    ``queued``/``skipped``/``held_out`` write a ledger row, ``deferred`` writes nothing."""

    status: Literal["queued", "skipped", "deferred", "held_out"]
    reason: str | None = None
    retry_at: datetime | None = None


QUEUE = Decision("queued")


def decide_before_caps(
    *,
    topic: str,
    ineligible: str | None,
    hold_out: bool,
    now: datetime,
    tz: ZoneInfo,
    quiet_hours: QuietHours,
) -> Decision | None:
    """The checks before the frequency caps, in their order: eligibility (``skipped``),
    ``hold_out``, then for marketing topics the quiet hours in the customer's zone
    (``deferred``). None: the message goes on to the caps (marketing) or is queued
    (transactional, see ``needs_caps``)."""
    if ineligible is not None:
        return Decision("skipped", ineligible)
    if hold_out:
        return Decision("held_out")
    if topic != TRANSACTIONAL:
        quiet_until = next_allowed(now, tz, quiet_hours)
        if quiet_until is not None:
            return Decision("deferred", "quiet_hours", quiet_until)
    return None


def needs_caps(topic: str, rules: Sequence[CapRule]) -> bool:
    """Whether the message is counted against the caps (under the customer's lock)."""
    return topic != TRANSACTIONAL and bool(rules)


def decide_caps(
    rules: Sequence[CapRule], counted: Sequence[datetime], now: datetime, over: OverCap
) -> Decision:
    """Queued if one more message fits every cap rule, given the times of the customer's
    messages already counted; otherwise what the topic's over-cap policy says."""
    blocked = cap_block(rules, counted, now)
    if blocked is None:
        return QUEUE
    if over == "defer":
        return Decision("deferred", "cap", blocked)
    return Decision("skipped", "cap" if over == "skip" else "cap_next_step")


def takes_cap_slot(decision: Decision) -> bool:
    """Whether the written row counts toward the caps (``repository.COUNTED`` statuses)."""
    return decision.status == "queued"
