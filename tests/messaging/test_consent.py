from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from fidele.customers import service as customers
from fidele.customers.schemas import CustomerIn
from fidele.errors import InvalidInput
from fidele.messaging import consent, service
from fidele.messaging.consent import record_bounce
from tests.conftest import T0
from tests.fixtures.factories import Tenant


def _customer(session: Session, tenant: Tenant, ext: str = "c1", **fields):  # type: ignore[no-untyped-def]
    data = CustomerIn.model_validate({"email": f"{ext}@example.com", **fields})
    return customers.upsert(session, tenant.caller, ext, data, T0)[0]


def test_no_row_means_no_consent_and_transactional_needs_none(session, tenant):
    c = _customer(session, tenant)
    kw = {"merchant_id": tenant.merchant_id, "customer_id": c.id, "channel": "email"}
    assert not service.consent_granted(session, topic="newsletter", **kw)
    assert service.consent_granted(session, topic="transactional", **kw)
    row = service.set_consent(
        session, topic="newsletter", granted=True, source="test", now=T0, **kw
    )
    assert (row.granted, row.at, row.source) == (True, T0, "test")
    assert service.consent_granted(session, topic="newsletter", **kw)
    assert not service.consent_granted(session, topic="lifecycle", **kw)
    later = T0 + timedelta(hours=1)
    service.set_consent(session, topic="newsletter", granted=False, source="x", now=later, **kw)
    assert not service.consent_granted(session, topic="newsletter", **kw)
    with pytest.raises(InvalidInput):
        service.set_consent(session, topic="transactional", granted=True, source="x", now=T0, **kw)


def test_hard_bounce_blocks_even_transactional_complaint_only_marketing(session, tenant):
    c = _customer(session, tenant)
    kw = {"merchant_id": tenant.merchant_id, "customer_id": c.id, "channel": "email"}
    service.set_consent(session, topic="newsletter", granted=True, source="t", now=T0, **kw)
    record_bounce(
        session,
        merchant_id=tenant.merchant_id,
        channel="email",
        address=c.email_normalized,
        kind="complaint",
        threshold=3,
        now=T0,
    )
    assert not service.consent_granted(session, topic="newsletter", **kw)
    assert service.consent_granted(session, topic="transactional", **kw)
    record_bounce(
        session,
        merchant_id=tenant.merchant_id,
        channel="email",
        address=c.email_normalized,
        kind="hard_bounce",
        threshold=3,
        now=T0,
    )
    assert not service.consent_granted(session, topic="transactional", **kw)


def test_soft_bounces_suppress_past_the_threshold(session, tenant):
    c = _customer(session, tenant)
    kw = {"merchant_id": tenant.merchant_id, "customer_id": c.id, "channel": "email"}
    service.set_consent(session, topic="lifecycle", granted=True, source="t", now=T0, **kw)
    for i in range(2):
        record_bounce(
            session,
            merchant_id=tenant.merchant_id,
            channel="email",
            address=c.email_normalized,
            kind="soft_bounce",
            threshold=3,
            now=T0,
        )
        assert service.consent_granted(session, topic="lifecycle", **kw), i
    record_bounce(
        session,
        merchant_id=tenant.merchant_id,
        channel="email",
        address=c.email_normalized,
        kind="soft_bounce",
        threshold=3,
        now=T0,
    )
    assert not service.consent_granted(session, topic="lifecycle", **kw)


def test_email_marketing_flag_becomes_newsletter_and_lifecycle(session, tenant):
    c = _customer(session, tenant, consent={"email_marketing": True, "source": "checkout"})
    rows = {(r.topic, r.channel): r for r in consent.consents_of(session, tenant.merchant_id, c.id)}
    assert set(rows) == {("newsletter", "email"), ("lifecycle", "email")}
    assert all(r.granted and r.source == "checkout" for r in rows.values())
    _customer(session, tenant, consent={"email_marketing": False})
    kw = {"merchant_id": tenant.merchant_id, "customer_id": c.id, "channel": "email"}
    assert not service.consent_granted(session, topic="newsletter", **kw)


def test_complaint_flag(session, tenant):
    c = _customer(session, tenant)
    assert not service.complaint_open(session, c.id)
    service.set_complaint_open(
        session, merchant_id=tenant.merchant_id, customer_id=c.id, open=True, now=T0
    )
    assert service.complaint_open(session, c.id)


def test_put_consent_api(api, tenant):
    assert api.put("/v1/customers/c9", json={"email": "c9@example.com"}).status_code == 201
    r = api.put(
        "/v1/customers/c9/consent", json={"topic": "winback", "channel": "email", "granted": True}
    )
    assert r.status_code == 200, r.text
    assert r.json()["granted"] is True and r.json()["source"] == "api"
    listed = api.get("/v1/customers/c9/consent").json()
    assert [(x["topic"], x["granted"]) for x in listed] == [("winback", True)]
    bad = api.put("/v1/customers/c9/consent", json={"topic": "transactional", "granted": True})
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "topic"
    assert (
        api.put("/v1/customers/nobody/consent", json={"topic": "x", "granted": True}).status_code
        == 404
    )
