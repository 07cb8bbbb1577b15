"""Consent per topic and channel, suppressed addresses and the complaint pause flag: what
``send`` checks when it decides a message and the delivery loop checks again just before
sending it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.errors import InvalidInput, NotFound
from fidele.events.bus import load_handlers
from fidele.messaging.domain import TRANSACTIONAL
from fidele.messaging.models import Consent, MessagingProfile, Suppression
from fidele.messaging.repository import (
    ConsentRepository,
    ProfileRepository,
    SuppressionRepository,
)

SUPPRESSING = ("hard_bounce", "complaint", "soft_bounce")

# (session, merchant id, customer id, now): told of every consent recorded, in its
# transaction (segments re-evaluate the customer's consent rules within seconds).
ConsentListener = Callable[[Session, int, int, datetime], None]
_listeners: list[ConsentListener] = []


def on_consent_changed(fn: ConsentListener) -> ConsentListener:
    """Subscribe to consents being recorded (a domain's ``handlers`` module does it)."""
    if fn not in _listeners:
        _listeners.append(fn)
    return fn


# The topics the profile's ``email_marketing`` flag stands for (email channel).
FLAG_TOPICS = ("newsletter", "lifecycle")


def flag_rows(
    merchant_id: int, customer_id: int, granted: bool, at: datetime, source: str
) -> list[dict[str, object]]:
    """The consent rows the ``email_marketing`` flag stands for, for a bulk writer that
    dispatches no ``customer.upserted`` (the demo's build); the online path is the handler."""
    return [
        {
            "merchant_id": merchant_id,
            "customer_id": customer_id,
            "topic": topic,
            "channel": "email",
            "granted": granted,
            "at": at,
            "source": source[:100],
        }
        for topic in FLAG_TOPICS
    ]


def customer_of(session: Session, merchant_id: int, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None or customer.merchant_id != merchant_id:
        raise NotFound(f"customer {customer_id} not found")
    return customer


def address_of(customer: Customer, channel: str) -> str | None:
    """Where a message on ``channel`` goes: the normalised email for email; the customer's
    own id for the webhook channels (the provider behind the merchant's webhook knows the
    phone or device)."""
    if channel == "email":
        return customer.email_normalized
    return customer.external_id if customer.erased_at is None else None


def suppression_reason(session: Session, customer: Customer, channel: str) -> str | None:
    address = address_of(customer, channel)
    if address is None:
        return None
    return SuppressionRepository(session).suppressed(customer.merchant_id, channel, address)


def consent_granted(
    session: Session, *, merchant_id: int, customer_id: int, topic: str, channel: str
) -> bool:
    """Whether ``topic`` may be sent to the customer on ``channel`` now: a granted consent row
    and an address that is not suppressed. The ``transactional`` topic needs no consent, but
    never goes to an address that hard-bounced."""
    customer = customer_of(session, merchant_id, customer_id)
    if customer.erased_at is not None:
        return False
    reason = suppression_reason(session, customer, channel)
    if topic == TRANSACTIONAL:
        return reason != "hard_bounce"
    if reason is not None:
        return False
    row = ConsentRepository(session).find(customer_id, topic, channel)
    return bool(row is not None and row.granted)


def set_consent(
    session: Session,
    *,
    merchant_id: int,
    customer_id: int,
    topic: str,
    channel: str,
    granted: bool,
    source: str,
    now: datetime,
) -> Consent:
    """Record the customer's yes or no to ``topic`` on ``channel`` (last write wins), with
    its time and source. Effective at once: the delivery loop checks it again before every
    message, so a message queued before a withdrawal is not sent."""
    customer_of(session, merchant_id, customer_id)
    if topic == TRANSACTIONAL:
        raise InvalidInput("transactional messages need no consent", field="topic")
    repo = ConsentRepository(session)
    repo.upsert(
        {
            "merchant_id": merchant_id,
            "customer_id": customer_id,
            "topic": topic,
            "channel": channel,
            "granted": granted,
            "at": now,
            "source": source[:100],
        }
    )
    row = repo.find(customer_id, topic, channel)
    assert row is not None
    session.refresh(row)
    load_handlers()  # the subscribers live in other domains' handlers modules
    for listener in _listeners:
        listener(session, merchant_id, customer_id, now)
    return row


def consents_of(session: Session, merchant_id: int, customer_id: int) -> Sequence[Consent]:
    return ConsentRepository(session).of_customer(merchant_id, customer_id)


def withdraw_all(
    session: Session,
    *,
    merchant_id: int,
    customer_id: int,
    channel: str,
    source: str,
    now: datetime,
) -> list[str]:
    """Withdraw every topic the customer has consented to on ``channel`` ("leave
    everything"); returns the topics withdrawn."""
    withdrawn = []
    for row in consents_of(session, merchant_id, customer_id):
        if row.channel == channel and row.granted:
            set_consent(
                session,
                merchant_id=merchant_id,
                customer_id=customer_id,
                topic=row.topic,
                channel=channel,
                granted=False,
                source=source,
                now=now,
            )
            withdrawn.append(row.topic)
    return withdrawn


def set_complaint_open(
    session: Session, *, merchant_id: int, customer_id: int, open: bool, now: datetime
) -> MessagingProfile:
    """Open or close the customer's complaint flag (the feedback domain calls it): while it is
    open no marketing message goes to the customer; transactional ones still do."""
    customer_of(session, merchant_id, customer_id)
    profile = ProfileRepository(session).lock(merchant_id, customer_id, now)
    profile.complaint_open = open
    profile.complaint_at = now if open else profile.complaint_at
    profile.updated_at = now
    session.flush()
    return profile


def complaint_open(session: Session, customer_id: int) -> bool:
    return ProfileRepository(session).complaint_open(customer_id)


def record_bounce(
    session: Session,
    *,
    merchant_id: int,
    channel: str,
    address: str,
    kind: str,
    threshold: int,
    now: datetime,
) -> Suppression:
    """A hard bounce or a complaint suppresses the address at once; a soft bounce counts, and
    the ``threshold``-th one suppresses it."""
    row = SuppressionRepository(session).lock_or_create(merchant_id, channel, address, now)
    if kind == "soft_bounce":
        row.soft_bounces += 1
        if row.suppressed_at is None and row.soft_bounces >= threshold:
            row.reason, row.suppressed_at = "soft_bounce", now
    elif kind in ("hard_bounce", "complaint"):
        # a hard bounce outranks a complaint: it stops transactional messages too
        if row.reason != "hard_bounce":
            row.reason = kind
        row.suppressed_at = row.suppressed_at or now
    row.updated_at = now
    session.flush()
    return row


def lift_suppression(
    session: Session, *, merchant_id: int, channel: str, address: str, now: datetime
) -> bool:
    row = SuppressionRepository(session).find(merchant_id, channel, address)
    if row is None:
        return False
    row.suppressed_at, row.reason, row.soft_bounces, row.updated_at = None, None, 0, now
    session.flush()
    return True
