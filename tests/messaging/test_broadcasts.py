"""Broadcasts: frozen audience, holdout never messaged, variants, local time, cancel, and
their stats against a hand count."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fidele.kit.clock import FrozenClock
from fidele.messaging import broadcasts, delivery, measure, templates, tracking
from fidele.messaging import service as messaging
from fidele.messaging.measure_models import Broadcast, BroadcastRecipient
from fidele.messaging.measure_schemas import BroadcastIn
from fidele.messaging.models import MessageSend
from fidele.orders import service as orders
from fidele.orders.schemas import RefundIn
from fidele.segments import service as segments
from fidele.settings import Settings
from tests.conftest import SECRET
from tests.fixtures.factories import Tenant
from tests.messaging.conftest import make_customer, make_template
from tests.messaging.shop import place

NEWS = {
    "en": {
        "subject": "News for {{ customer.first_name }}",
        "html": "<html><body><p>Hi {{ customer.first_name }}</p>"
        '<a href="https://shop.example/sale">Sale</a></body></html>',
        "text": "Hi {{ customer.first_name }}",
    }
}


@pytest.fixture(autouse=True)
def _fresh_template_cache() -> Iterator[None]:
    """Compiled templates are cached per process by (id, version); a rolled-back test's ids
    are reused on SQLite, so no test may leave its compiled templates to the next."""
    templates._compiled.clear()
    templates._uses.clear()
    yield
    templates._compiled.clear()
    templates._uses.clear()


@pytest.fixture
def file_settings(tmp_path: Path) -> Settings:
    return Settings(env="test", secret_key=SECRET, messages_dir=str(tmp_path / "mail"))


def setup(
    session: Session, tenant: Tenant, n: int, *, no_consent: int = 0, **fields: Any
) -> list[int]:
    ids = [
        make_customer(session, tenant, f"c{i}", topics=("newsletter",), **fields).id
        for i in range(n)
    ]
    ids += [make_customer(session, tenant, f"x{i}", topics=()).id for i in range(no_consent)]
    make_template(session, tenant, "news", topic="newsletter", variants=NEWS)
    return ids


def segment(session: Session, tenant: Tenant, now, rule: dict[str, Any] | None = None) -> int:  # type: ignore[no-untyped-def]
    return segments.create(
        session, tenant.merchant_id, name="all", rule=rule or {"all": []}, now=now
    ).id


def template_id(session: Session, tenant: Tenant, name: str = "news") -> int:
    from fidele.messaging.repository import TemplateRepository

    found = TemplateRepository(session).by_name(tenant.merchant_id, name)
    assert found is not None
    return found.id


def schedule(session: Session, tenant: Tenant, now, **kw: Any) -> Broadcast:  # type: ignore[no-untyped-def]
    body = {
        "segment_id": kw.pop("segment_id"),
        "template_id": kw.pop("template_id", None) or template_id(session, tenant),
        "send_at": kw.pop("send_at", now).isoformat(),
        "topic": "newsletter",
        **kw,
    }
    row, _ = broadcasts.create(session, tenant.merchant_id, BroadcastIn.model_validate(body), now)
    return row


def rows_of(session: Session, broadcast_id: int) -> list[MessageSend]:
    stmt = (
        select(MessageSend).where(MessageSend.broadcast_id == broadcast_id).order_by(MessageSend.id)
    )
    return list(session.scalars(stmt))


def test_holdout_share_in_range_and_never_messaged(
    session: Session,
    factory: sessionmaker[Session],
    tenant: Tenant,
    clock: FrozenClock,
    file_settings: Settings,
    tmp_path: Path,
) -> None:
    now = clock.now()
    ids = setup(session, tenant, 300, no_consent=5)
    b = schedule(session, tenant, now, segment_id=segment(session, tenant, now), holdout_share=2000)
    session.commit()
    assert broadcasts.run(factory, now) >= 305
    session.expire_all()
    row = session.get(Broadcast, b.id)
    assert (row.status, row.recipients, row.processed) == ("sent", 305, 305)
    sends = rows_of(session, b.id)
    assert len(sends) == 305
    held = {s.customer_id for s in sends if s.status == "held_out"}
    # 20% of the 300 eligible: mean 60, sd 6.9; the bounds are 4 sd either side
    assert 32 <= len(held) <= 88
    salt = measure.holdout_salt(tenant.merchant_id, f"broadcast:{b.id}")
    eligible = set(ids[:300])
    assert held == {c for c in eligible if measure.is_held_out(salt, c, 2000)}
    assert {s.reason for s in sends if s.status == "skipped"} == {"no_consent"}
    assert all(s.key == f"broadcast:{b.id}:{s.customer_id}" for s in sends)
    # delivery: one email per queued row, none to a held-out customer
    queued = [s for s in sends if s.status == "queued"]
    assert len(queued) == 300 - len(held)
    clock_ = FrozenClock(now)
    while delivery.deliver_due(factory, clock_, settings=file_settings):
        pass
    mails = list((tmp_path / "mail").rglob("*.eml"))
    assert len(mails) == len(queued)
    sent_to = {message_from_bytes(p.read_bytes(), policy=default)["To"] for p in mails}
    held_emails = {f"c{ids.index(c)}@example.com" for c in held}
    assert not sent_to & held_emails
    # running again changes nothing
    assert broadcasts.run(factory, now + timedelta(minutes=1)) == 0
    assert len(rows_of(session, b.id)) == 305
    stats = broadcasts.broadcast_stats(session, tenant.merchant_id, b.id)
    assert stats["totals"]["held_out"] == len(held)
    assert stats["holdout"]["held_out"]["customers"] == len(held)
    assert stats["holdout"]["treated"]["customers"] == 300 - len(held)


def test_stats_against_a_hand_count(
    session: Session,
    factory: sessionmaker[Session],
    tenant: Tenant,
    clock: FrozenClock,
    file_settings: Settings,
    tmp_path: Path,
) -> None:
    """10 customers: c0..c7 sent, c8 c9 held out (the holdout decided by hand, as the hash
    would); opens, clicks, an unsubscribe and orders placed by hand; every figure of the
    stats is then counted by hand."""
    now = clock.now()
    ids = setup(session, tenant, 10)
    b = schedule(session, tenant, now, segment_id=segment(session, tenant, now))
    session.commit()
    with_holdout = {ids[8], ids[9]}
    broadcasts.start_due(session, now)
    for rec in session.scalars(
        select(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == b.id)
    ):
        rec.held_out = rec.customer_id in with_holdout
    session.commit()
    broadcasts.run(factory, now)
    delivery.deliver_due(factory, FrozenClock(now), settings=file_settings)
    session.expire_all()
    sends = {s.customer_id: s for s in rows_of(session, b.id)}
    assert sorted(s.status for s in sends.values()) == ["held_out"] * 2 + ["sent"] * 8
    # c0 opens by the pixel of its real email, then clicks its real link
    eml = next((tmp_path / "mail").rglob(f"{sends[ids[0]].id}.eml"))
    html = message_from_bytes(eml.read_bytes(), policy=default).get_body(("html",)).get_content()
    pixel = re.search(r'<img src="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    link = re.search(r'href="(http://127.0.0.1:8000/v1/t/c/[^"]+)"', html).group(1)  # type: ignore[union-attr]
    for url, kind in ((pixel, "open"), (link, "click")):
        token = url.rsplit("/", 1)[1]
        mark = tracking.Mark.parse(SECRET, token, kind)
        assert mark is not None
        tracking.record(session, mark, now + timedelta(hours=1))
    mark = tracking.Mark.parse(SECRET, link.rsplit("/", 1)[1], "click")
    assert mark is not None
    assert mark.url == "https://shop.example/sale"
    mark_open = lambda c: tracking.Mark("open", tenant.merchant_id, ids[c], sends[ids[c]].id)  # noqa: E731
    tracking.record(session, mark_open(1), now + timedelta(hours=2))  # c1 opens
    tracking.record(session, mark_open(2), now + timedelta(hours=2))  # c2 opens
    messaging.set_consent(  # c3 unsubscribes through the link
        session,
        merchant_id=tenant.merchant_id,
        customer_id=ids[3],
        topic="newsletter",
        channel="email",
        granted=False,
        source="unsubscribe_link",
        now=now + timedelta(hours=3),
    )
    sends[ids[4]].delivered_at = now + timedelta(minutes=1)
    sends[ids[5]].delivered_at = now + timedelta(minutes=1)
    sends[ids[6]].bounced_at = now + timedelta(minutes=1)
    session.flush()
    # orders: c0 buys 50.00 a day later (after its click: attributed), refunds 10.00;
    # c1 buys 30.00 two days later (after its open: attributed); c2 buys 20.00 four days
    # later (its open is 4 days old: not attributed; inside the 5-day window: counted for the
    # holdout comparison); c4 buys 99.00 six days later (outside every window);
    # c8 (held out) buys 40.00 a day later.
    place(session, tenant, "o0", "c0", at=now + timedelta(days=1), amount=5000)
    orders.refund(
        session, tenant.caller, "o0", RefundIn(id="r0", amount=1000), now + timedelta(days=1)
    )
    place(session, tenant, "o1", "c1", at=now + timedelta(days=2), amount=3000)
    place(session, tenant, "o2", "c2", at=now + timedelta(days=4), amount=2000)
    place(session, tenant, "o4", "c4", at=now + timedelta(days=6), amount=9900)
    place(session, tenant, "o8", "c8", at=now + timedelta(days=1), amount=4000)
    got = broadcasts.broadcast_stats(session, tenant.merchant_id, b.id)
    t = got["totals"]
    assert (t["decided"], t["sent"], t["held_out"], t["delivered"], t["bounced"]) == (
        10,
        8,
        2,
        2,
        1,
    )
    assert (t["opened"], t["clicked"], t["unsubscribed"]) == (3, 1, 1)
    assert (t["conversions"], t["converted"], t["revenue"]) == (2, 2, 4000 + 3000)
    assert t["open_rate"] == 3 / 8
    assert t["conversion_rate"] == 2 / 8
    h = got["holdout"]
    # treated: 8 customers, 3 ordered within 5 days (c0 40.00 net, c1 30.00, c2 20.00);
    # held out: 2 customers, 1 ordered (c8 40.00)
    assert h["treated"] == {**h["treated"], "customers": 8, "converted": 3, "revenue": 9000}
    assert h["held_out"] == {**h["held_out"], "customers": 2, "converted": 1, "revenue": 4000}
    assert h["incremental_conversion_rate"] == pytest.approx(3 / 8 - 1 / 2)
    assert h["incremental_revenue_per_customer"] == pytest.approx(9000 / 8 - 4000 / 2)
    expected = measure.compare(measure.Group.of(8, [4000, 3000, 2000]), measure.Group.of(2, [4000]))
    assert h["incremental_conversion_rate_ci95"] == expected.rate_interval.as_list()  # type: ignore[union-attr]
    assert h["incremental_revenue_per_customer_ci95"] == expected.revenue_interval.as_list()  # type: ignore[union-attr]
    assert got["progress"]["outcomes"] == {"queued": 8, "held_out": 2}


def test_audience_is_frozen_when_it_starts_and_cancel_only_before(
    api: TestClient,
    session: Session,
    factory: sessionmaker[Session],
    tenant: Tenant,
    clock: FrozenClock,
) -> None:
    now = clock.now()
    setup(session, tenant, 3, country="FR")
    seg = segment(session, tenant, now, {"field": "customer.country", "op": "eq", "value": "FR"})
    tid = template_id(session, tenant)
    session.commit()
    body = {
        "segment_id": seg,
        "template_id": tid,
        "send_at": (now + timedelta(hours=1)).isoformat(),
        "topic": "newsletter",
    }
    r = api.post("/v1/broadcasts", json=body, headers={"Idempotency-Key": "nl-1"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["status"], first["progress"]["recipients"]) == ("scheduled", 0)
    again = api.post("/v1/broadcasts", json=body, headers={"Idempotency-Key": "nl-1"})
    assert (again.status_code, again.json()["id"]) == (200, first["id"])
    other = api.post("/v1/broadcasts", json=body).json()
    assert api.post(f"/v1/broadcasts/{other['id']}/cancel").json()["status"] == "cancelled"
    assert broadcasts.run(factory, now) == 0  # not yet due
    assert broadcasts.run(factory, now + timedelta(hours=1)) == 1 + 3
    make_customer(session, tenant, "late", topics=("newsletter",), country="FR")  # joins after
    session.commit()
    broadcasts.run(factory, now + timedelta(hours=2))
    got = api.get(f"/v1/broadcasts/{first['id']}").json()
    assert got["status"] == "sent"
    assert got["progress"] == {
        "recipients": 3,
        "processed": 3,
        "pending": 0,
        "waiting": 0,
        "outcomes": {"queued": 3},
    }
    r = api.post(f"/v1/broadcasts/{first['id']}/cancel")
    assert r.status_code == 409
    assert api.get(f"/v1/broadcasts/{other['id']}").json()["progress"]["recipients"] == 0
    listed = api.get("/v1/broadcasts").json()["items"]
    assert [x["id"] for x in listed] == [first["id"], other["id"]]
    stats = api.get(f"/v1/broadcasts/{first['id']}/stats").json()
    assert stats["totals"]["decided"] == 3
    assert stats["holdout"] is None


def test_bad_references_are_422_naming_the_field(
    api: TestClient, session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    now = clock.now()
    setup(session, tenant, 1)
    seg = segment(session, tenant, now)
    tid = template_id(session, tenant)
    session.commit()
    base = {
        "segment_id": seg,
        "template_id": tid,
        "send_at": now.isoformat(),
        "topic": "newsletter",
    }
    cases = [
        ({**base, "segment_id": 999_999}, "segment_id"),
        ({**base, "template_id": 999_999}, "template_id"),
        ({**base, "topic": "transactional"}, "body.topic"),
        ({**base, "variants": [{"name": "a", "template_id": tid}]}, "body.variants"),
        (
            {
                **base,
                "variants": [
                    {"name": "a", "template_id": tid},
                    {"name": "b", "template_id": 999_999},
                ],
            },
            "variants.1.template_id",
        ),
    ]
    for body, field in cases:
        r = api.post("/v1/broadcasts", json=body)
        assert r.status_code == 422, (body, r.text)
        assert [f["field"] for f in r.json()["fields"]] == [field]
    assert api.get("/v1/broadcasts").json()["items"] == []  # nothing half-written
    assert api.get("/v1/broadcasts/999999").status_code == 404
    assert api.get("/v1/broadcasts/999999/stats").status_code == 404


def test_local_time_in_two_zones(
    session: Session, factory: sessionmaker[Session], tenant: Tenant, clock: FrozenClock
) -> None:
    now = clock.now()  # 2026-06-01 12:00 UTC
    paris = make_customer(session, tenant, "p", topics=("newsletter",), timezone="Europe/Paris").id
    ny = make_customer(session, tenant, "n", topics=("newsletter",), timezone="America/New_York").id
    make_template(session, tenant, "news", topic="newsletter", variants=NEWS)
    send_at = now.replace(day=2, hour=10)  # 10:00 (the merchant's zone is UTC)
    b = schedule(
        session,
        tenant,
        now,
        segment_id=segment(session, tenant, now),
        send_at=send_at,
        local_time=True,
    )
    session.commit()
    # starts when UTC+14 reaches 10:00 on the 2nd: 20:00 UTC on the 1st
    assert broadcasts.run(factory, now.replace(hour=19, minute=59)) == 0
    broadcasts.run(factory, now.replace(hour=20))
    due = {r.customer_id: r.due_at for r in session.scalars(select(BroadcastRecipient))}
    assert due[paris] == send_at - timedelta(hours=2)  # 10:00 CEST = 08:00 UTC
    assert due[ny] == send_at + timedelta(hours=4)  # 10:00 EDT = 14:00 UTC
    assert broadcasts.run(factory, send_at - timedelta(hours=2)) == 1
    assert [s.customer_id for s in rows_of(session, b.id)] == [paris]
    broadcasts.run(factory, send_at + timedelta(hours=4))
    assert [s.customer_id for s in rows_of(session, b.id)] == [paris, ny]


def test_variants_split_then_the_winner_goes_to_the_rest(
    api: TestClient,
    session: Session,
    factory: sessionmaker[Session],
    tenant: Tenant,
    clock: FrozenClock,
) -> None:
    now = clock.now()
    setup(session, tenant, 60)
    other = make_template(session, tenant, "news-b", topic="newsletter", variants=NEWS)
    seg = segment(session, tenant, now)
    tid = template_id(session, tenant)
    session.commit()
    body = {
        "segment_id": seg,
        "template_id": tid,
        "send_at": now.isoformat(),
        "topic": "newsletter",
        "variants": [{"name": "a", "template_id": tid}, {"name": "b", "template_id": other}],
        "test_share": 5000,
    }
    b = api.post("/v1/broadcasts", json=body).json()
    broadcasts.run(factory, now)
    progress = api.get(f"/v1/broadcasts/{b['id']}").json()["progress"]
    tested = progress["outcomes"]["queued"]
    assert tested + progress["waiting"] == 60
    assert 15 <= tested <= 45
    sends = rows_of(session, b["id"])
    assert {s.variant for s in sends} == {"a", "b"}
    assert all(s.template_id == (tid if s.variant == "a" else other) for s in sends)
    assert api.post(f"/v1/broadcasts/{b['id']}/winner", json={"variant": "c"}).status_code == 422
    assert (
        api.post(f"/v1/broadcasts/{b['id']}/winner", json={"variant": "b"}).json()["winner"] == "b"
    )
    assert api.post(f"/v1/broadcasts/{b['id']}/winner", json={"variant": "a"}).status_code == 409
    broadcasts.run(factory, now + timedelta(minutes=1))
    session.expire_all()
    sends = rows_of(session, b["id"])
    assert len(sends) == 60
    rest = sends[tested:]
    assert {(s.variant, s.template_id) for s in rest} == {("b", other)}
    stats = api.get(f"/v1/broadcasts/{b['id']}/stats").json()
    assert stats["ab"]["winner"] == "b"
    assert set(stats["ab"]["variants"]) == {"a", "b"}
    assert stats["status"] == "sent"
