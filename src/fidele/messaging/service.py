"""Messaging's service: what other domains call (flows, broadcasts, feedback, segments).

``send`` decides a message and writes it to the send ledger in the caller's transaction; the
delivery loop (:mod:`fidele.messaging.delivery`, run by ``fidele worker`` and by the
``messaging.deliver`` job) sends it after commit. Consent (``consent_granted``,
``set_consent``) lives in :mod:`fidele.messaging.consent` and is re-exported here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from fidele.customers.models import Customer
from fidele.errors import NotFound
from fidele.messaging import domain, measurement, templates
from fidele.messaging.consent import (
    address_of,
    complaint_open,
    consent_granted,
    consents_of,
    customer_of,
    set_complaint_open,
    set_consent,
    suppression_reason,
    withdraw_all,
)
from fidele.messaging.models import MessageTemplate, MessagingPolicy
from fidele.messaging.repository import (
    BatchRepository,
    ConsentRepository,
    ProfileRepository,
    SendRepository,
    SuppressionRepository,
    TemplateRepository,
)
from fidele.settings import get_settings

__all__ = [
    "SendOutcome",
    "complaint_open",
    "consent_granted",
    "consents_of",
    "ensure_template",
    "get_policy",
    "SendRequest",
    "send",
    "send_many",
    "set_complaint_open",
    "set_consent",
    "withdraw_all",
]

WEBHOOK_CHANNELS = ("sms", "push", "webhook")


@dataclass(frozen=True)
class SendOutcome:
    """What ``send`` decided.

    - ``queued``: written to the ledger, delivered after commit (``send_id``).
    - ``skipped``: written to the ledger as skipped, never sent; ``reason``: ``no_consent``,
      ``suppressed``, ``complaint_open``, ``no_address``, ``erased``, ``no_webhook_url``,
      ``cap`` (over the frequency caps, topic policy "skip") or ``cap_next_step`` (policy
      "move_on": the journey should go on to its next step).
    - ``deferred``: nothing written; call again at ``retry_at`` with the same key. ``reason``:
      ``quiet_hours`` or ``cap`` (topic policy "defer").
    - ``held_out``: written as held out (``hold_out=True``), nothing sent.
    - ``duplicate``: the key was used before; ``send_id`` is that first row, nothing done."""

    status: Literal["queued", "skipped", "deferred", "held_out", "duplicate"]
    reason: str | None
    send_id: int | None
    retry_at: datetime | None = None


# --- policy -----------------------------------------------------------------------------


def get_policy(session: Session, merchant_id: int) -> domain.Policy:
    row = session.get(MessagingPolicy, merchant_id)
    return domain.policy_from(row.document if row else None)


def put_policy(
    session: Session, merchant_id: int, document: Mapping[str, Any], now: datetime
) -> domain.Policy:
    from fidele.messaging.repository import PolicyRepository

    row = PolicyRepository(session).lock_or_create(merchant_id, now)
    row.document, row.updated_at = dict(document), now
    session.flush()
    return domain.policy_from(row.document)


# --- templates --------------------------------------------------------------------------


def create_template(
    session: Session,
    *,
    merchant_id: int,
    name: str,
    topic: str,
    variants: Mapping[str, Mapping[str, str]],
    now: datetime,
    channel: str = "email",
    strict: bool = True,
    variables: list[str] | None = None,
) -> MessageTemplate:
    """Create a template, refused (422 naming the part and line) if it does not compile or
    (strict) uses an unknown name; 409 if the merchant has one of that name."""
    from fidele.errors import StateConflict

    templates.check(variants, strict=strict, variables=variables or ())
    repo = TemplateRepository(session)
    if repo.by_name(merchant_id, name) is not None:
        raise StateConflict(f"a template named {name!r} exists", field="name")
    row = MessageTemplate(
        merchant_id=merchant_id,
        name=name,
        topic=topic,
        channel=channel,
        strict=strict,
        variables=list(variables or []),
        variants={k: dict(v) for k, v in variants.items()},
        version=1,
        created_at=now,
        updated_at=now,
    )
    return repo.add(row)


def update_template(
    session: Session,
    *,
    merchant_id: int,
    template_id: int,
    changes: Mapping[str, Any],
    now: datetime,
) -> MessageTemplate:
    row = get_template(session, merchant_id, template_id)
    # a field left out or sent as null keeps its value
    merged = {
        name: getattr(row, name) if changes.get(name) is None else changes[name]
        for name in ("variants", "strict", "variables")
    }
    templates.check(merged["variants"], strict=merged["strict"], variables=merged["variables"])
    for name in ("topic", "channel", "strict", "variables", "variants"):
        if name in changes and changes[name] is not None:
            setattr(row, name, changes[name])
    row.version += 1
    row.updated_at = now
    session.flush()
    return row


def get_template(session: Session, merchant_id: int, template_id: int) -> MessageTemplate:
    row = TemplateRepository(session).by_id(merchant_id, template_id)
    if row is None:
        raise NotFound(f"template {template_id} not found")
    return row


def ensure_template(
    session: Session,
    *,
    merchant_id: int,
    name: str,
    topic: str,
    variants: Mapping[str, Mapping[str, str]],
    now: datetime,
) -> int:
    """The id of the merchant's template ``name``, created from ``variants`` if it has none
    (an existing one, edited or not, is never overwritten). The names its parts use beyond
    the standard context are declared as its ``variables`` (the caller passes them)."""
    repo = TemplateRepository(session)
    found = repo.by_name(merchant_id, name)
    if found is not None:
        return found.id
    used = templates.undeclared(variants) - templates.CONTEXT_NAMES
    return create_template(
        session,
        merchant_id=merchant_id,
        name=name,
        topic=topic,
        variants=variants,
        now=now,
        variables=sorted(used),
    ).id


# --- sending ----------------------------------------------------------------------------


def links_for(merchant_id: int, customer_id: int, topic: str) -> dict[str, str]:
    """The signed unsubscribe (this topic) and preferences links of a message."""
    settings = get_settings()
    base = settings.public_url.rstrip("/")
    token = domain.unsubscribe_token(settings.secret_key, merchant_id, customer_id, topic)
    return {
        "unsubscribe": f"{base}/v1/messages/unsubscribe/{token}",
        "preferences": f"{base}/v1/messages/unsubscribe/{token}?page=1",
    }


def ineligible(
    session: Session, customer: Customer, topic: str, channel: str, policy: domain.Policy
) -> str | None:
    """Why the message may not go to the customer now (None: it may): see
    ``domain.ineligible_reason``."""
    consent = ConsentRepository(session).find(customer.id, topic, channel)
    return domain.ineligible_reason(
        topic=topic,
        erased=customer.erased_at is not None,
        has_address=address_of(customer, channel) is not None,
        channel_ready=channel not in WEBHOOK_CHANNELS or bool(policy.webhook_url),
        suppression=suppression_reason(session, customer, channel),
        consented=consent is not None and consent.granted,
        complaint_open=ProfileRepository(session).complaint_open(customer.id),
    )


def send(
    session: Session,
    *,
    merchant_id: int,
    customer_id: int,
    template: str,
    topic: str,
    key: str,
    now: datetime,
    channel: str = "email",
    context: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
    hold_out: bool = False,
) -> SendOutcome:
    """Decide one message to a customer and write it to the send ledger, in the caller's
    transaction (see :class:`SendOutcome` for the answers).

    Order of the checks: the key (``duplicate``), the customer and address, suppression,
    consent and the complaint flag (``skipped``), ``hold_out`` (``held_out``), then for
    marketing topics the quiet hours in the customer's zone (``deferred``) and the frequency
    caps, counted from the ledger under a lock on the customer's messaging row so two
    workers cannot both take the last slot. Transactional messages skip quiet hours and caps.
    The template must exist (404 otherwise); it is rendered at delivery."""
    sends = SendRepository(session)
    first = sends.by_key(merchant_id, key)
    if first is not None:
        return SendOutcome("duplicate", None, first.id)
    customer = customer_of(session, merchant_id, customer_id)
    tpl = TemplateRepository(session).by_name(merchant_id, template)
    if tpl is None:
        raise NotFound(f"template {template!r} not found")
    policy = get_policy(session, merchant_id)
    row: dict[str, Any] = _row(
        merchant_id, customer, tpl, topic, key, channel, source, context, now
    )

    def write(status: str, reason: str | None) -> SendOutcome:
        send_id = sends.insert({**row, "status": status, "reason": reason})
        if send_id is None:  # a concurrent call with the same key committed first
            twin = sends.by_key(merchant_id, key)
            return SendOutcome("duplicate", None, twin.id if twin else None)
        return SendOutcome(status, reason, send_id)  # type: ignore[arg-type]

    decided = domain.decide_before_caps(
        topic=topic,
        ineligible=ineligible(session, customer, topic, channel, policy),
        hold_out=hold_out
        or (
            topic != domain.TRANSACTIONAL
            and measurement.programme_held_out(session, merchant_id, customer.id)
        ),
        now=now,
        tz=domain.zone(customer.timezone, policy.timezone),
        quiet_hours=policy.quiet_hours,
    )
    rules = policy.caps.get(channel, ())
    if decided is None and domain.needs_caps(topic, rules):
        ProfileRepository(session).lock(merchant_id, customer.id, now)
        # the lock may have waited for another send to the customer: it may have used
        # this very key
        first = sends.by_key(merchant_id, key)
        if first is not None:
            return SendOutcome("duplicate", None, first.id)
        since = now - domain.longest_window(rules)
        counted = sends.counted_times(customer.id, channel, since)
        decided = domain.decide_caps(rules, counted, now, policy.over_cap_policy(topic))
    decided = decided or domain.QUEUE
    if decided.status == "deferred":
        return SendOutcome("deferred", decided.reason, None, decided.retry_at)
    return write(decided.status, decided.reason)


@dataclass(frozen=True)
class SendRequest:
    """One message for ``send_many``: the arguments of ``send``."""

    merchant_id: int
    customer_id: int
    template: str
    topic: str
    key: str
    channel: str = "email"
    context: Mapping[str, Any] | None = None
    source: Mapping[str, Any] | None = None
    hold_out: bool = False


def send_many(
    session: Session, requests: Sequence[SendRequest], now: datetime
) -> list[SendOutcome]:
    """``send`` for a batch of messages, in a handful of statements instead of ~14 per
    message: the same decisions (the pure rules of ``domain``), the same outcomes as calling
    ``send`` for each request in order, including two requests of the batch to the same
    customer (the second counts the first against the caps) or with the same key (the second
    is a duplicate). The customers the caps concern are locked (their messaging rows, in id
    order) before their ledger is counted, as ``send`` does one at a time. Raises NotFound
    like ``send`` for an unknown customer or template (nothing of the batch is kept by a
    caller that rolls back)."""
    if not requests:
        return []
    batch = BatchRepository(session)
    sends = SendRepository(session)
    merchants = {r.merchant_id for r in requests}
    existing = sends.ids_by_key({(r.merchant_id, r.key) for r in requests})
    fresh = [r for r in requests if (r.merchant_id, r.key) not in existing]
    customers = batch.recipients({r.customer_id for r in fresh}) if fresh else {}
    tpls = batch.templates_by_name(merchants, {r.template for r in fresh}) if fresh else {}
    for r in fresh:
        found = customers.get(r.customer_id)
        if found is None or found.merchant_id != r.merchant_id:
            raise NotFound(f"customer {r.customer_id} not found")
        if (r.merchant_id, r.template) not in tpls:
            raise NotFound(f"template {r.template!r} not found")
    stored = batch.policies(merchants) if fresh else {}
    policies = {
        m: domain.policy_from(stored[m].document if m in stored else None) for m in merchants
    }
    ids = set(customers)
    consents = batch.consents(ids) if ids else set()
    complaints = batch.complaints(ids) if ids else set()
    addresses = {address_of(customers[r.customer_id], r.channel) for r in fresh}
    suppressions = batch.suppressions(merchants, {a for a in addresses if a is not None})

    # the checks before the caps, per request (the same pure rules as ``send``)
    before: dict[int, domain.Decision | None] = {}
    holdouts: dict[int, Callable[[int], bool]] = {}  # the merchants' global holdouts
    for i, r in enumerate(requests):
        if (r.merchant_id, r.key) in existing:
            continue
        customer, policy = customers[r.customer_id], policies[r.merchant_id]
        address = address_of(customer, r.channel)
        reason = domain.ineligible_reason(
            topic=r.topic,
            erased=customer.erased_at is not None,
            has_address=address is not None,
            channel_ready=r.channel not in WEBHOOK_CHANNELS or bool(policy.webhook_url),
            suppression=None
            if address is None
            else suppressions.get((customer.merchant_id, r.channel, address)),
            consented=(customer.id, r.topic, r.channel) in consents,
            complaint_open=customer.id in complaints,
        )
        if r.merchant_id not in holdouts:
            holdouts[r.merchant_id] = measurement.programme_holdout(session, r.merchant_id)
        before[i] = domain.decide_before_caps(
            topic=r.topic,
            ineligible=reason,
            hold_out=r.hold_out
            or (r.topic != domain.TRANSACTIONAL and holdouts[r.merchant_id](customer.id)),
            now=now,
            tz=domain.zone(customer.timezone, policy.timezone),
            quiet_hours=policy.quiet_hours,
        )
    capped = [
        i
        for i, d in before.items()
        if d is None
        and domain.needs_caps(
            requests[i].topic, policies[requests[i].merchant_id].caps.get(requests[i].channel, ())
        )
    ]
    counted: dict[tuple[int, str], list[datetime]] = {}
    if capped:
        ProfileRepository(session).lock_many(
            [(requests[i].merchant_id, requests[i].customer_id) for i in capped], now
        )
        # the locks may have waited for other sends to these customers: they may have used
        # these very keys
        existing.update(
            sends.ids_by_key({(requests[i].merchant_id, requests[i].key) for i in capped})
        )
        longest = max(
            domain.longest_window(policies[requests[i].merchant_id].caps[requests[i].channel])
            for i in capped
        )
        counted = sends.counted_times_many({requests[i].customer_id for i in capped}, now - longest)

    # in order, as ``send`` called for each request would decide
    capped_set = set(capped)
    decided: list[domain.Decision | None] = [None] * len(requests)
    written: dict[tuple[int, str], int] = {}  # key -> index of the request writing it
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(requests):
        k = (r.merchant_id, r.key)
        if k in existing or k in written:
            continue
        d = before[i]
        if i in capped_set:
            policy = policies[r.merchant_id]
            rules = policy.caps[r.channel]
            times = counted.setdefault((r.customer_id, r.channel), [])
            d = domain.decide_caps(rules, times, now, policy.over_cap_policy(r.topic))
            if domain.takes_cap_slot(d):
                times.append(now)
        d = d or domain.QUEUE
        decided[i] = d
        if d.status != "deferred":
            written[k] = i
            row = _row(
                r.merchant_id,
                customers[r.customer_id],
                tpls[(r.merchant_id, r.template)],
                r.topic,
                r.key,
                r.channel,
                r.source,
                r.context,
                now,
            )
            rows.append({**row, "status": d.status, "reason": d.reason})
    inserted = sends.insert_many(rows)
    twins = {k for k in written if k not in inserted}  # a concurrent call committed first
    if twins:
        existing.update(sends.ids_by_key(twins))

    outcomes: list[SendOutcome] = []
    for i, r in enumerate(requests):
        k = (r.merchant_id, r.key)
        d = decided[i]
        if d is None or k in twins:  # the key was used before (or earlier in the batch)
            first = existing.get(k, inserted.get(k))
            outcomes.append(SendOutcome("duplicate", None, first))
        elif d.status == "deferred":
            outcomes.append(SendOutcome("deferred", d.reason, None, d.retry_at))
        else:
            outcomes.append(SendOutcome(d.status, d.reason, inserted[k]))  # type: ignore[arg-type]
    return outcomes


def _row(
    merchant_id: int,
    customer: Customer,
    tpl: MessageTemplate,
    topic: str,
    key: str,
    channel: str,
    source: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    src = dict(source or {})

    def num(name: str) -> int | None:
        value = src.get(name)
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

    variant = src.get("variant")
    step = src.get("step")
    return {
        "merchant_id": merchant_id,
        "customer_id": customer.id,
        "key": key,
        "template_id": tpl.id,
        "topic": topic,
        "channel": channel,
        "flow_id": num("flow_id"),
        "flow_version": num("flow_version"),
        "step": None if step is None else str(step)[:100],
        "enrollment_id": num("enrollment_id"),
        "broadcast_id": num("broadcast_id"),
        "variant": None if variant is None else str(variant)[:50],
        "source": src,
        "context": dict(context or {}),
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


# --- unsubscribe links ------------------------------------------------------------------


def token_subject(session: Session, token: str) -> tuple[domain.TokenSubject, Customer]:
    """The customer and topic of a genuine unsubscribe token; 404 for anything else (a
    forged, edited or foreign token reveals nothing, not even whether the customer exists)."""
    subject = domain.read_token(get_settings().secret_key, token)
    customer = None if subject is None else session.get(Customer, subject.customer_id)
    if subject is None or customer is None or customer.merchant_id != subject.merchant_id:
        raise NotFound("unknown or invalid link")
    return subject, customer


def one_click_unsubscribe(session: Session, token: str, now: datetime) -> str:
    """RFC 8058: withdraw the token's topic by email at once; returns the topic."""
    subject, customer = token_subject(session, token)
    set_consent(
        session,
        merchant_id=subject.merchant_id,
        customer_id=customer.id,
        topic=subject.topic,
        channel="email",
        granted=False,
        source="unsubscribe_link",
        now=now,
    )
    return subject.topic


def preference_topics(session: Session, customer: Customer, topic: str) -> dict[str, bool]:
    """The topics the preference page lists (the customer's, the link's, the built-in
    marketing ones) and whether each is granted by email."""
    granted = {
        c.topic: c.granted
        for c in consents_of(session, customer.merchant_id, customer.id)
        if c.channel == "email"
    }
    names = [t for t in domain.BUILTIN_TOPICS if t != domain.TRANSACTIONAL]
    names += [t for t in (*granted, topic) if t not in names and t != domain.TRANSACTIONAL]
    return {t: granted.get(t, False) for t in names}


def save_preferences(
    session: Session, token: str, chosen: set[str], *, leave_all: bool, now: datetime
) -> dict[str, bool]:
    """The preference page's form: each listed topic granted if ticked, all withdrawn when
    the customer leaves everything. Only changed topics get a new consent time."""
    subject, customer = token_subject(session, token)
    current = preference_topics(session, customer, subject.topic)
    for topic, was in current.items():
        wanted = topic in chosen and not leave_all
        if wanted != was:
            set_consent(
                session,
                merchant_id=subject.merchant_id,
                customer_id=customer.id,
                topic=topic,
                channel="email",
                granted=wanted,
                source="preferences_page",
                now=now,
            )
    return preference_topics(session, customer, subject.topic)


# --- delivery notifications (DSN) -------------------------------------------------------


def record_delivery_events(
    session: Session, merchant_id: int, events: list[Mapping[str, Any]], now: datetime
) -> tuple[int, list[str]]:
    """Apply the provider's notifications: the ledger row named by ``message_id`` gets its
    delivered/bounced/complained time; hard bounces and complaints suppress the address,
    soft bounces count toward the merchant's threshold. Returns (recorded, newly
    suppressed addresses)."""
    from fidele.customers.service import normalise_email
    from fidele.messaging.consent import record_bounce

    policy = get_policy(session, merchant_id)
    sends = SendRepository(session)
    suppressed: list[str] = []
    state: dict[tuple[str, str], bool] = {}  # suppressed before the event, per address
    for ev in events:
        at = ev.get("at") or now
        row = sends.by_message_id(merchant_id, ev["message_id"]) if ev.get("message_id") else None
        kind = ev["type"]
        if row is not None:
            column = {"delivered": "delivered_at", "complaint": "complained_at"}.get(
                kind, "bounced_at"
            )
            if getattr(row, column) is None:
                setattr(row, column, at)
        if kind == "delivered":
            continue
        channel = ev.get("channel", "email")
        address = normalise_email(ev["email"]) or ev["email"]
        if (channel, address) not in state:
            found = SuppressionRepository(session).suppressed(merchant_id, channel, address)
            state[(channel, address)] = found is not None
        after = record_bounce(
            session,
            merchant_id=merchant_id,
            channel=channel,
            address=address,
            kind=kind,
            threshold=policy.soft_bounce_threshold,
            now=at,
        )
        if not state[(channel, address)] and after.suppressed_at is not None:
            suppressed.append(address)
        state[(channel, address)] = after.suppressed_at is not None
    session.flush()
    return len(events), suppressed
