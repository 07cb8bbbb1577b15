from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default

import pytest

from fidele.errors import NotFound
from fidele.kit.clock import FrozenClock
from fidele.messaging import delivery, service
from fidele.messaging.models import MessageSend
from fidele.settings import Settings
from tests.conftest import SECRET, T0
from tests.messaging.conftest import make_customer, make_template


@pytest.fixture
def file_settings(tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(env="test", secret_key=SECRET, messages_dir=str(tmp_path / "mail"))


def _send(session, tenant, customer, key="k1", topic="lifecycle", now=T0, **kw):  # type: ignore[no-untyped-def]
    return service.send(
        session,
        merchant_id=tenant.merchant_id,
        customer_id=customer.id,
        template=kw.pop("template", "hello"),
        topic=topic,
        key=key,
        now=now,
        **kw,
    )


def test_queued_then_delivered_to_an_eml_file(session, factory, tenant, file_settings, tmp_path):
    c = make_customer(session, tenant)
    make_template(session, tenant)
    out = _send(
        session, tenant, c, context={"coupon_code": "X"}, source={"flow_id": 3, "step": "s1"}
    )
    assert (out.status, out.reason, out.retry_at) == ("queued", None, None)
    session.commit()
    assert delivery.deliver_due(factory, FrozenClock(T0), settings=file_settings) == 1
    row = session.get(MessageSend, out.send_id)
    session.refresh(row)
    assert (row.status, row.attempts, row.flow_id, row.step) == ("sent", 1, 3, "s1")
    assert row.message_id == f"<fidele.{tenant.merchant_id}.{row.id}@127.0.0.1>"
    eml = tmp_path / "mail" / str(tenant.merchant_id) / f"{row.id}.eml"
    msg = message_from_bytes(eml.read_bytes(), policy=default)
    assert msg["Subject"] == "Hello C1" and msg["To"] == "c1@example.com"
    assert msg["Message-ID"] == row.message_id
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/v1/messages/unsubscribe/")
    html = msg.get_body(("html",)).get_content()
    assert 'class="big" style="color: #333; font-size: 20px"' in html  # CSS inlined
    assert "<style>" not in html
    # sending again does nothing: the row is sent
    assert delivery.deliver_due(factory, FrozenClock(T0), settings=file_settings) == 0


def test_same_key_is_a_duplicate(session, tenant):
    c = make_customer(session, tenant)
    make_template(session, tenant)
    first = _send(session, tenant, c)
    again = _send(session, tenant, c)
    assert (again.status, again.send_id) == ("duplicate", first.send_id)


def test_unknown_template_is_404(session, tenant):
    c = make_customer(session, tenant)
    with pytest.raises(NotFound):
        _send(session, tenant, c, template="nope")


def test_consent_and_transactional(session, tenant):
    c = make_customer(session, tenant, topics=())
    make_template(session, tenant)
    assert _send(session, tenant, c).reason == "no_consent"
    assert _send(session, tenant, c, key="k2", topic="transactional").status == "queued"


def test_consent_withdrawn_between_decision_and_delivery_sends_nothing(
    session, factory, tenant, sink
):
    """Over real SMTP (aiosmtpd on loopback): the other customer's message goes, this one not."""
    c = make_customer(session, tenant)
    other = make_customer(session, tenant, "c2")
    make_template(session, tenant)
    out = _send(session, tenant, c)
    assert out.status == "queued"
    assert _send(session, tenant, other, key="k-other").status == "queued"
    session.commit()
    service.set_consent(
        session,
        merchant_id=tenant.merchant_id,
        customer_id=c.id,
        topic="lifecycle",
        channel="email",
        granted=False,
        source="test",
        now=T0,
    )
    session.commit()
    smtp = Settings(env="test", secret_key=SECRET, smtp_url=sink.url)
    assert delivery.deliver_due(factory, FrozenClock(T0), settings=smtp) == 1
    row = session.get(MessageSend, out.send_id)
    session.refresh(row)
    assert (row.status, row.reason) == ("skipped", "no_consent")
    assert len(sink.messages) == 1 and b"To: c2@example.com" in sink.messages[0]


def test_complaint_pauses_marketing_only(session, tenant):
    c = make_customer(session, tenant)
    make_template(session, tenant)
    service.set_complaint_open(
        session, merchant_id=tenant.merchant_id, customer_id=c.id, open=True, now=T0
    )
    assert _send(session, tenant, c).reason == "complaint_open"
    assert _send(session, tenant, c, key="t", topic="transactional").status == "queued"


def test_quiet_hours_in_two_timezones(session, tenant):
    make_template(session, tenant)
    paris = make_customer(session, tenant, "paris", timezone="Europe/Paris")
    ny = make_customer(session, tenant, "ny", timezone="America/New_York")
    evening = datetime(2026, 6, 1, 20, 30, tzinfo=UTC)  # 22:30 in Paris, 16:30 in New York
    out = _send(session, tenant, paris, now=evening)
    assert (out.status, out.reason, out.send_id) == ("deferred", "quiet_hours", None)
    assert out.retry_at == datetime(2026, 6, 2, 6, 0, tzinfo=UTC)  # 08:00 in Paris
    assert _send(session, tenant, ny, now=evening).status == "queued"
    early = datetime(2026, 6, 2, 10, 0, tzinfo=UTC)  # 12:00 Paris, 06:00 New York
    assert _send(session, tenant, paris, key="k2", now=early).status == "queued"
    out = _send(session, tenant, ny, key="k3", now=early + timedelta(days=1))
    assert (out.status, out.retry_at) == ("deferred", datetime(2026, 6, 3, 12, 0, tzinfo=UTC))
    # transactional ignores quiet hours
    assert (
        _send(session, tenant, paris, key="t", topic="transactional", now=evening).status
        == "queued"
    )


def test_no_sunday(session, tenant):
    make_template(session, tenant)
    service.put_policy(session, tenant.merchant_id, {"quiet_hours": {"no_sunday": True}}, T0)
    c = make_customer(session, tenant, timezone="Europe/Paris")
    sunday_noon = datetime(2026, 6, 7, 10, 0, tzinfo=UTC)
    out = _send(session, tenant, c, now=sunday_noon)
    assert (out.status, out.retry_at) == ("deferred", datetime(2026, 6, 8, 6, 0, tzinfo=UTC))


def test_caps_per_topic_policy(session, tenant):
    make_template(session, tenant)
    c = make_customer(session, tenant, topics=("newsletter", "lifecycle", "winback"))
    service.put_policy(
        session,
        tenant.merchant_id,
        {
            "caps": {"email": [{"max": 1, "days": 1}, {"max": 2, "days": 7}]},
            "over_cap": {"winback": "move_on"},
        },
        T0,
    )
    assert _send(session, tenant, c, key="a").status == "queued"
    later = T0 + timedelta(hours=2)
    out = _send(session, tenant, c, key="b", now=later)
    assert (out.status, out.reason, out.retry_at) == ("deferred", "cap", T0 + timedelta(days=1))
    out = _send(session, tenant, c, key="c", topic="newsletter", now=later)
    assert (out.status, out.reason) == ("skipped", "cap")
    out = _send(session, tenant, c, key="d", topic="winback", now=later)
    assert (out.status, out.reason) == ("skipped", "cap_next_step")
    assert _send(session, tenant, c, key="t", topic="transactional", now=later).status == "queued"
    day2 = T0 + timedelta(days=1, hours=1)
    assert _send(session, tenant, c, key="e", now=day2).status == "queued"
    out = _send(session, tenant, c, key="f", now=T0 + timedelta(days=2, hours=2))
    # the weekly rule (2 in 7 days) is the strictest now: free when the first leaves the week
    assert (out.status, out.retry_at) == ("deferred", T0 + timedelta(days=7))


def test_ensure_template_never_overwrites(session, tenant):
    first = make_template(session, tenant)
    again = service.ensure_template(
        session,
        merchant_id=tenant.merchant_id,
        name="hello",
        topic="lifecycle",
        variants={"en": {"subject": "other", "text": "x"}},
        now=T0,
    )
    assert again == first
    tpl = service.get_template(session, tenant.merchant_id, first)
    assert tpl.variants["en"]["subject"] == "Hello {{ customer.first_name }}"


def test_locale_falls_back_to_the_merchant_default(
    session, factory, tenant, file_settings, tmp_path
):
    make_template(session, tenant)
    service.put_policy(session, tenant.merchant_id, {"default_locale": "fr"}, T0)
    de = make_customer(session, tenant, "de", locale="de-DE")
    gb = make_customer(session, tenant, "gb", locale="en-GB")
    ids = [_send(session, tenant, c, key=c.external_id).send_id for c in (de, gb)]
    session.commit()
    assert delivery.deliver_due(factory, FrozenClock(T0), settings=file_settings) == 2
    subjects = []
    for send_id in ids:
        raw = (tmp_path / "mail" / str(tenant.merchant_id) / f"{send_id}.eml").read_bytes()
        subjects.append(message_from_bytes(raw, policy=default)["Subject"])
    assert subjects == ["Bonjour DE", "Hello GB"]
    rows = [session.get(MessageSend, i) for i in ids]
    for r in rows:
        session.refresh(r)
    assert [r.locale for r in rows] == ["fr", "en"]
