"""The messaging domain's tables: consents, suppressions, templates, the merchant's sending
policy, a per-customer row (lock for caps, the complaint pause flag) and the send ledger.

The send ledger (``message_sends``) is the one record of every message decided: one row per
idempotency key and merchant, written before any attempt. Other domains read it (flows show a
customer's journey from it; broadcasts and stats count it): see :class:`MessageSend`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidele.db.base import Base, IdMixin
from fidele.kit.types import JSONType


class Consent(IdMixin, Base):
    """A customer's yes or no to one topic on one channel, when and from where (``source``:
    "api", "import", "unsubscribe_link", "preferences_page", "email_marketing" for the rows
    migrated from ``customers.email_marketing``...). No row means no consent, except for the
    ``transactional`` topic, which needs none (see ``service.consent_granted``)."""

    __tablename__ = "consents"
    __table_args__ = (
        UniqueConstraint("customer_id", "topic", "channel"),
        Index("ix_consents_merchant_topic", "merchant_id", "topic", "channel"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    topic: Mapped[str] = mapped_column(String(50))
    channel: Mapped[str] = mapped_column(String(20))
    granted: Mapped[bool]
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(100))


class Suppression(IdMixin, Base):
    """An address that must not receive marketing (or anything, after a hard bounce), per
    merchant and channel, from the provider's delivery notifications (DSN webhook). Soft
    bounces are counted; past the merchant's threshold the address is suppressed too.
    ``suppressed_at`` None: only soft bounces below the threshold so far."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("merchant_id", "channel", "address"),)

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(320))  # normalised email
    reason: Mapped[str | None] = mapped_column(
        String(20), default=None
    )  # hard_bounce|complaint|soft_bounce
    soft_bounces: Mapped[int] = mapped_column(default=0)
    suppressed_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime]


class MessageTemplate(IdMixin, Base):
    """A merchant's message: a topic, a channel and locale variants, each
    ``{"subject", "html", "text"}`` in Jinja2 (rendered sandboxed). ``variables`` names the
    extra context keys its callers pass (strict mode refuses any other unknown name)."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("merchant_id", "name"),)

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str] = mapped_column(String(50))
    channel: Mapped[str] = mapped_column(String(20), default="email")
    strict: Mapped[bool] = mapped_column(default=True)
    variables: Mapped[list[str]] = mapped_column(JSONType, default=list)
    variants: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class MessagingPolicy(Base):
    """A merchant's sending policy; no row means the defaults of ``domain.Policy``
    (``document`` holds only what the merchant set, validated by ``schemas.PolicyIn``)."""

    __tablename__ = "messaging_policies"

    merchant_id: Mapped[int] = mapped_column(
        ForeignKey("merchants.id", ondelete="RESTRICT"), primary_key=True
    )
    document: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The merchant's throttle (a token bucket shared by every worker): the next free slot.
    next_slot_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime]


class MessagingProfile(Base):
    """One row per customer who was ever messaged or flagged. It is the row ``send`` locks
    (``SELECT ... FOR UPDATE``) so checking the frequency caps and reserving a slot in the
    ledger are atomic per customer, and it carries the complaint flag:

    ``complaint_open`` True pauses every marketing message to the customer (transactional
    ones still go). The feedback domain sets and clears it with
    ``messaging.service.set_complaint_open``."""

    __tablename__ = "messaging_profiles"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="RESTRICT"), primary_key=True
    )
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    complaint_open: Mapped[bool] = mapped_column(default=False)
    complaint_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime]


SEND_STATUSES = ("queued", "sending", "sent", "failed", "skipped", "held_out", "unknown")


class MessageSend(IdMixin, Base):
    """The send ledger: one row per message decided, UNIQUE ``(merchant_id, key)``.

    - ``key``: the caller's idempotency key (flows: ``flow:{enrollment_id}:{step_id}``;
      broadcasts: ``broadcast:{id}:{customer_id}``); a second ``send`` with it does nothing.
    - ``template_id``/``topic``/``channel``/``locale``: what is sent (locale chosen at render).
    - source: ``flow_id``, ``flow_version``, ``step``, ``enrollment_id`` for a journey;
      ``broadcast_id`` for a newsletter; ``variant`` for an A/B variant; ``source`` keeps the
      caller's whole mapping.
    - ``status``: ``queued`` (waiting for the delivery loop) -> ``sending`` (claimed; committed
      before the transport is called) -> ``sent`` | ``failed`` (permanent refusal, or retries
      exhausted) | ``queued`` again (temporary failure, ``next_attempt_at`` in the future);
      ``skipped`` (never sent: ``reason`` says why: no_consent, suppressed, cap,
      cap_next_step, complaint_open, no_address, template_error...); ``held_out`` (kept
      back by a holdout; nothing sent); ``unknown`` (a worker died after claiming it: the
      transport may or may not have accepted it; never retried blindly, see
      ``service.expire_claims``).
    - ``attempts``, ``next_attempt_at``, ``claimed_until``, ``last_error``: delivery state.
    - ``sent_at``, ``message_id`` (RFC 5322 ``Message-ID``, derived from the row id),
      ``delivered_at``/``bounced_at``/``complained_at`` from the DSN webhook.
    - ``context``: the caller's extra template context (coupon code...), erased with the
      customer; ``to_address`` the address used, erased likewise."""

    __tablename__ = "message_sends"
    __table_args__ = (
        UniqueConstraint("merchant_id", "key"),
        Index("ix_message_sends_due", "status", "next_attempt_at"),
        Index("ix_message_sends_customer", "customer_id", "channel", "created_at"),
        Index("ix_message_sends_flow", "flow_id", "step"),
        Index("ix_message_sends_broadcast", "broadcast_id"),
        Index("ix_message_sends_message_id", "message_id"),
    )

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="RESTRICT"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    key: Mapped[str] = mapped_column(String(255))
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("message_templates.id", ondelete="RESTRICT"), default=None
    )
    topic: Mapped[str] = mapped_column(String(50))
    channel: Mapped[str] = mapped_column(String(20))
    locale: Mapped[str | None] = mapped_column(String(35), default=None)
    flow_id: Mapped[int | None] = mapped_column(default=None)
    flow_version: Mapped[int | None] = mapped_column(default=None)
    step: Mapped[str | None] = mapped_column(String(100), default=None)
    enrollment_id: Mapped[int | None] = mapped_column(default=None)
    broadcast_id: Mapped[int | None] = mapped_column(default=None)
    variant: Mapped[str | None] = mapped_column(String(50), default=None)
    source: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(50), default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    to_address: Mapped[str | None] = mapped_column(String(320), default=None)
    message_id: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    bounced_at: Mapped[datetime | None] = mapped_column(default=None)
    complained_at: Mapped[datetime | None] = mapped_column(default=None)


from fidele.messaging.measure_models import *  # noqa: E402, F403  (measurement tables)
