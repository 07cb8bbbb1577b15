"""Customer profiles, consent and GDPR export/erase."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fidele.customers import gdpr
from fidele.customers.models import Customer
from fidele.customers.repository import CustomerRepository
from fidele.customers.schemas import CustomerIn, CustomerOut
from fidele.errors import Conflict, NotFound
from fidele.events import domain as ev
from fidele.events import service as events
from fidele.events.repository import EventRepository
from fidele.kit.repository import insert_or_twin
from fidele.kit.schemas import iso
from fidele.tenancy.service import Caller

_PERSONAL = (
    "email",
    "email_normalized",
    "first_name",
    "last_name",
    "birthday",
    "locale",
    "country",
    "timezone",
    "email_marketing_source",
)


def normalise_email(email: str | None) -> str | None:
    if not email:
        return None
    local, _, domain = email.strip().lower().partition("@")
    if domain in ("gmail.com", "googlemail.com"):
        local = local.split("+", 1)[0].replace(".", "")
        domain = "gmail.com"
    else:
        local = local.split("+", 1)[0]
    return f"{local}@{domain}"


def get(session: Session, caller: Caller, external_id: str) -> Customer:
    customer = CustomerRepository(session).by_external_id(caller.merchant_id, external_id)
    if customer is None or customer.erased_at is not None:
        raise NotFound(f"customer {external_id!r} not found")
    return customer


def get_or_create(
    session: Session,
    caller: Caller,
    external_id: str,
    now: datetime,
    *,
    source: str,
    email: str | None = None,
) -> Customer:
    """The customer behind an order or event; a new id creates a guest customer."""
    customer = find(session, caller, external_id)
    if customer is not None:
        return customer
    return create_guest(session, caller, external_id, now, source=source, email=email)


def find(session: Session, caller: Caller, external_id: str) -> Customer | None:
    """The caller's customer with this id, erased or not (no 404: get_or_create's lookup)."""
    return CustomerRepository(session).by_external_id(caller.merchant_id, external_id)


def create_guest(
    session: Session,
    caller: Caller,
    external_id: str,
    now: datetime,
    *,
    source: str,
    email: str | None = None,
) -> Customer:
    """Create the guest customer of an id that ``find`` just did not find (no second lookup)."""
    data = CustomerIn(email=email)
    return _save(session, caller, None, external_id, data, now, source=source)[0]


def upsert(
    session: Session,
    caller: Caller,
    external_id: str,
    data: CustomerIn,
    now: datetime,
    *,
    source: str = "api",
) -> tuple[Customer, bool]:
    customer = CustomerRepository(session).by_external_id(caller.merchant_id, external_id)
    return _save(session, caller, customer, external_id, data, now, source=source)


def _save(
    session: Session,
    caller: Caller,
    customer: Customer | None,
    external_id: str,
    data: CustomerIn,
    now: datetime,
    *,
    source: str,
) -> tuple[Customer, bool]:
    """Create (``customer`` None: known not to exist) or update the customer just looked up."""
    created = customer is None
    if customer is None:
        customer = _blank(caller, external_id, now)
        changes = _apply(customer, data, now)
        # In a savepoint: a concurrent request creating the same id (the same first order
        # sent twice at once) committed first; this one then updates that customer instead
        # of failing, and the order goes on to its idempotent replay.
        if not insert_or_twin(session, customer):
            twin = find(session, caller, external_id)
            if twin is None:  # the twin was rolled back after all: nothing to reuse
                raise Conflict(f"customer {external_id!r} was being written concurrently; retry")
            return _save(session, caller, twin, external_id, data, now, source=source)
    elif customer.erased_at is not None:
        raise NotFound(f"customer {external_id!r} was erased")
    else:
        changes = _apply(customer, data, now)
    if not created and not changes:
        return customer, False
    customer.updated_at = now
    session.flush()
    events.record(
        session,
        caller,
        type=ev.CUSTOMER_UPSERTED,
        occurred_at=now,
        now=now,
        source=source,
        payload=_payload(external_id, created, changes),
        customer_id=customer.id,
    )
    return customer, created


def build_new(
    caller: Caller, external_id: str, data: CustomerIn, now: datetime
) -> tuple[Customer, dict[str, Any]]:
    """A new customer as ``upsert`` creates it, not added to any session, and the payload of
    its ``customer.upserted`` event (for batch builds such as the demo's)."""
    customer = _blank(caller, external_id, now)
    changes = _apply(customer, data, now)
    return customer, _payload(external_id, True, changes)


def _blank(caller: Caller, external_id: str, now: datetime) -> Customer:
    return Customer(
        merchant_id=caller.merchant_id,
        programme_id=caller.programme_id,
        external_id=external_id,
        attributes={},
        created_at=now,
        updated_at=now,
    )


def _payload(external_id: str, created: bool, changes: dict[str, Any]) -> dict[str, Any]:
    return {"customer_id": external_id, "created": created, **changes}


def _apply(customer: Customer, data: CustomerIn, now: datetime) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for field in ("email", "first_name", "last_name", "birthday", "locale", "country", "timezone"):
        if field in data.model_fields_set:
            value = getattr(data, field)
            if getattr(customer, field) != value:
                setattr(customer, field, value)
                changes[field] = value.isoformat() if hasattr(value, "isoformat") else value
    if "email" in changes:
        customer.email_normalized = normalise_email(customer.email)
    if data.attributes is not None and data.attributes != customer.attributes:
        customer.attributes = {**(customer.attributes or {}), **data.attributes}
        changes["attributes"] = data.attributes
    if data.consent is not None:
        changes.update(_apply_consent(customer, data, now))
    return changes


def _apply_consent(customer: Customer, data: CustomerIn, now: datetime) -> dict[str, Any]:
    consent = data.consent
    assert consent is not None
    at = consent.at or now
    changes: dict[str, Any] = {}
    if consent.email_marketing is not None and consent.email_marketing != customer.email_marketing:
        customer.email_marketing = consent.email_marketing
        customer.email_marketing_at = at
        customer.email_marketing_source = consent.source
        changes["email_marketing"] = {
            "value": consent.email_marketing,
            "at": iso(at),
            "source": consent.source,
        }
    if consent.sms_marketing is not None and consent.sms_marketing != customer.sms_marketing:
        customer.sms_marketing = consent.sms_marketing
        customer.sms_marketing_at = at
        changes["sms_marketing"] = {"value": consent.sms_marketing, "at": iso(at)}
    return changes


def list_page(
    session: Session,
    caller: Caller,
    *,
    after_id: int,
    limit: int,
    updated_since: datetime | None,
) -> Sequence[Customer]:
    return CustomerRepository(session).page(
        caller.merchant_id, after_id=after_id, limit=limit, updated_since=updated_since
    )


def export(session: Session, caller: Caller, external_id: str, now: datetime) -> dict[str, Any]:
    """Everything fidele holds on the person, as JSON: the profile, each domain's section
    (orders, loyalty, vouchers, coupons, gift cards, referrals, insights, ...) and the events."""
    gdpr.load()
    customer = get(session, caller, external_id)
    data: dict[str, Any] = {"customer": CustomerOut.of(customer).model_dump(mode="json")}
    for section, fn in gdpr.exporters.items():
        data[section] = fn(session, customer, now)
    data["events"] = [
        {
            "type": e.type,
            "occurred_at": iso(e.occurred_at),
            "received_at": iso(e.received_at),
            "source": e.source,
            "payload": e.payload,
        }
        for e in EventRepository(session).for_customer(customer.id)
    ]
    return data


def erase(session: Session, caller: Caller, external_id: str, now: datetime) -> None:
    """Blank personal data here and in every domain's copy (each registered eraser); keep
    anonymised rows so totals, ledgers and analytics stay right.

    The event log is append-only, yet erasure rewrites this person's event payloads in place:
    personal keys are blanked and the old id replaced, while amounts and ids stay, so a replay
    of the log still gives the same totals."""
    gdpr.load()
    customer = get(session, caller, external_id)
    erasure_of = _blank_profile(customer, now)
    replace = {erasure_of.old_external_id: customer.external_id}
    replace |= dict.fromkeys(erasure_of.emails, gdpr.ERASED)
    for e in EventRepository(session).for_customer(customer.id):
        e.payload = gdpr.scrub(e.payload, _SCRUB_KEYS, replace)
    for fn in gdpr.erasers:
        fn(session, erasure_of)
    session.flush()
    events.record(
        session,
        caller,
        type=ev.CUSTOMER_ERASED,
        occurred_at=now,
        now=now,
        source="api",
        payload={},
        customer_id=customer.id,
    )


def _blank_profile(customer: Customer, now: datetime) -> gdpr.Erasure:
    erasure_of = gdpr.Erasure(
        customer=customer,
        old_external_id=customer.external_id,
        old_email=customer.email,
        old_email_normalized=customer.email_normalized,
        now=now,
    )
    for field in _PERSONAL:
        setattr(customer, field, None)
    customer.email_marketing = customer.sms_marketing = False
    customer.attributes = {}
    token = hashlib.sha256(f"{customer.merchant_id}:{customer.id}:{now}".encode()).hexdigest()
    customer.external_id = f"erased-{token[:24]}"
    customer.erased_at = customer.updated_at = now
    return erasure_of


# Personal keys of event payloads; ``attributes`` (an order's or a profile's) is free-form
# (shipping address, device fingerprint, ...), so it is blanked whole.
_SCRUB_KEYS = frozenset(
    {
        "email",
        "first_name",
        "last_name",
        "birthday",
        "phone",
        "address",
        "billing_address",
        "shipping_address",
        "ip",
        "note",
        "locale",
        "country",
        "timezone",
        "email_marketing",
        "sms_marketing",
        "attributes",
        "device_fingerprint",
        "payment_fingerprint",
        "gift_card_recipient",
        "recipient_email",
        "message",
        "to",
    }
)
