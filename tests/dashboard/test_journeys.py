"""The journeys, messages and newsletters pages, the overview's "what the journeys brought"
card and the 360°'s journeys and messages, through the test client on SQLite and PostgreSQL:
the figures shown are the services' (``campaigns``, ``messaging.stats``, ``messaging``);
switching a journey needs the admin role (as ``/v1/flows``), every change a CSRF token, and
lands in the activity log."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fidele.analytics.repository import AnalyticsRepository
from fidele.campaigns import service as flows
from fidele.campaigns.models import Flow
from fidele.customers.models import Customer
from fidele.dashboard.i18n import formats
from fidele.dashboard.journeys_report import month_start
from fidele.dashboard.journeys_repository import JourneyCounts
from fidele.dashboard.models import DashboardActivity
from fidele.demo.service import DemoShop
from fidele.kit.clock import FrozenClock
from fidele.loyalty import reports
from fidele.messaging import broadcasts, consent, delivery, stats, tracking
from fidele.messaging import service as messaging
from fidele.messaging.measure_models import Broadcast
from fidele.messaging.models import MessageSend, MessageTemplate
from fidele.segments import service as segments
from fidele.tenancy.service import Caller
from tests.dashboard.conftest import HTML, login, make_user, post
from tests.dashboard.test_pages import text_of
from tests.fixtures.factories import Tenant
from tests.messaging.shop import place

FMT = formats("en", None, "EUR", None)


def caller(shop: DemoShop) -> Caller:
    return Caller(shop.merchant_id, shop.programme_id, None, frozenset({"admin"}))


def welcome(session: Session, shop: DemoShop) -> Flow:
    return session.scalars(
        select(Flow).where(Flow.merchant_id == shop.merchant_id, Flow.name == "welcome")
    ).one()


def customers_with_email(session: Session, shop: DemoShop, n: int) -> list[Customer]:
    return list(
        session.scalars(
            select(Customer)
            .where(Customer.merchant_id == shop.merchant_id, Customer.email.is_not(None))
            .order_by(Customer.id)
            .limit(n)
        )
    )


@pytest.fixture
def measured(session: Session, shop: DemoShop, clock: FrozenClock) -> dict[str, object]:
    """The welcome journey's message decided for 12 customers this month, every third held
    out; one treated customer clicks, treated and held-out customers order after it."""
    now = clock.now()
    flow = welcome(session, shop)
    tpl = session.scalars(
        select(MessageTemplate).where(
            MessageTemplate.merchant_id == shop.merchant_id, MessageTemplate.name == "flow_welcome"
        )
    ).one()
    people = customers_with_email(session, shop, 12)
    for i, c in enumerate(people):
        consent.set_consent(
            session,
            merchant_id=shop.merchant_id,
            customer_id=c.id,
            topic=tpl.topic,
            channel="email",
            granted=True,
            source="test",
            now=now,
        )
        messaging.send(
            session,
            merchant_id=shop.merchant_id,
            customer_id=c.id,
            template=tpl.name,
            topic=tpl.topic,
            key=f"test:welcome:{c.id}",
            now=now,
            source={"flow_id": flow.id, "flow_version": 1, "step": "welcome"},
            hold_out=i % 3 == 0,
        )
    sends = {s.customer_id: s for s in session.scalars(select(MessageSend))}
    clicker = people[1]
    mark = tracking.Mark("click", shop.merchant_id, clicker.id, sends[clicker.id].id, "https://x/")
    tracking.record(session, mark, now + timedelta(hours=1))
    tenant = SimpleNamespace(caller=caller(shop))
    for n, c in enumerate([people[1], people[2], people[0]]):
        place(session, tenant, f"dj-{n}", c.external_id, at=now + timedelta(days=1), amount=4000)  # type: ignore[arg-type]
    session.commit()
    return {"flow": flow, "people": people, "clicker": clicker}


def test_journeys_list_and_switch_on_off(
    admin: TestClient, session: Session, shop: DemoShop
) -> None:
    page = admin.get("/journeys", headers=HTML)
    assert page.status_code == 200
    listed = flows.out(session, flows.listing(session, caller(shop)))
    assert listed
    for f in listed:
        assert text_of(page.text, f"status-{f.id}") == f.status
    flow = welcome(session, shop)
    assert flow.status == "active"
    off = post(admin, f"/journeys/{flow.id}/status", "/journeys", {"status": "paused"})
    assert off.status_code == 303
    session.expire_all()
    assert welcome(session, shop).status == "paused"
    page = admin.get("/journeys").text
    assert "Journey switched off." in page and text_of(page, f"status-{flow.id}") == "paused"
    on = post(admin, f"/journeys/{flow.id}/status", f"/journeys/{flow.id}", {"status": "active"})
    assert on.status_code == 303
    session.expire_all()
    assert welcome(session, shop).status == "active"
    actions = session.scalars(
        select(DashboardActivity.action).where(DashboardActivity.merchant_id == shop.merchant_id)
    ).all()
    assert {"journey.paused", "journey.activated"} <= set(actions)


def test_only_admins_switch_journeys(
    reader: TestClient, app: object, factory: sessionmaker[Session], session: Session,
    shop: DemoShop, clock: FrozenClock,
) -> None:  # fmt: skip
    flow = welcome(session, shop)
    page = reader.get("/journeys").text
    assert f'id="switch-{flow.id}"' not in page
    assert (
        post(reader, f"/journeys/{flow.id}/status", "/journeys", {"status": "paused"}).status_code
        == 403
    )
    with TestClient(app) as marketer:  # type: ignore[arg-type]
        login(
            marketer, make_user(factory, shop.merchant_id, "marketer", clock.now(), "m@shop.test")
        )
        refused = post(marketer, f"/journeys/{flow.id}/status", "/journeys", {"status": "paused"})
        assert refused.status_code == 403
    # without its CSRF token, an admin's POST is refused too
    session.expire_all()
    assert welcome(session, shop).status == "active"


def test_a_journey_s_steps_and_lift_are_the_services(
    admin: TestClient, session: Session, shop: DemoShop, measured: dict[str, object]
) -> None:
    flow = measured["flow"]
    page = admin.get(f"/journeys/{flow.id}").text  # type: ignore[attr-defined]
    got = stats.flow_stats(session, shop.merchant_id, flow.id)  # type: ignore[attr-defined]
    counts = JourneyCounts(session)
    assert text_of(page, "flow-entered").endswith(
        FMT.number(counts.entered(shop.merchant_id, flow.id))
    )  # type: ignore[attr-defined]
    assert text_of(page, "flow-sent").endswith(FMT.number(got["totals"]["sent"]))
    assert text_of(page, "flow-clicked").endswith(FMT.number(got["totals"]["clicked"]))
    assert got["totals"]["clicked"] == 1
    step = next(s for s in got["steps"] if s["step"] == "welcome")
    row = text_of(page, "step-welcome")
    assert FMT.number(step["held_out"]) in row and step["held_out"] == 4
    lift = got["holdout"]
    assert lift is not None
    shown = text_of(page, "lift")
    assert FMT.money(lift["incremental_revenue_per_customer"]) in shown
    assert FMT.percent(lift["treated"]["conversion_rate"]) in shown


def test_the_overview_shows_what_the_journeys_brought(
    admin: TestClient, session: Session, factory: sessionmaker[Session], shop: DemoShop,
    clock: FrozenClock,
    measured: dict[str, object],
) -> None:  # fmt: skip
    listed = [(f.id, f.name) for f in flows.listing(session, caller(shop))]
    expected = stats.journeys_lift(session, shop.merchant_id, listed, month_start(clock.now()))
    assert expected["incremental_revenue"] is not None
    page = admin.get("/", headers=HTML).text
    assert text_of(page, "journeys-incremental") == FMT.money(expected["incremental_revenue"])
    low, high = expected["incremental_revenue_ci95"]
    assert text_of(page, "journeys-ci") == f"{FMT.money(low)} … {FMT.money(high)}"
    assert text_of(page, "journeys-freshness").startswith("Computed")
    # the stored report (the job's) is read when it is of this month
    from fidele.dashboard import journeys_report, tasks

    assert tasks.journeys_report_job(factory, clock.now()) >= 1
    stored = AnalyticsRepository(session).report(shop.merchant_id, journeys_report.KIND)
    assert stored is not None and stored.payload["incremental_revenue"] == pytest.approx(
        expected["incremental_revenue"]
    )
    again = admin.get("/", headers=HTML).text
    assert text_of(again, "journeys-incremental") == FMT.money(expected["incremental_revenue"])
    # the same job stores the liability and the average CLV: the overview reads them, with
    # their time, while fresh
    liability = reports.liability(session, shop.programme_id, clock.now())
    assert FMT.number(liability["points"]) in text_of(again, "kpi-liability")
    assert text_of(again, "liability-at").startswith("points liability and average CLV as of")
    clock.advance(journeys_report.FRESH + timedelta(minutes=1))
    stale = admin.get("/", headers=HTML).text
    assert 'id="liability-at"' not in stale
    assert FMT.number(liability["points"]) in text_of(stale, "kpi-liability")


def test_a_new_shop_installs_a_ready_made_journey(
    client: TestClient, factory: sessionmaker[Session], session: Session, tenant: Tenant,
    clock: FrozenClock,
) -> None:  # fmt: skip
    login(client, make_user(factory, tenant.merchant_id, "admin", clock.now(), "new@shop.test"))
    page = client.get("/journeys").text
    assert "No journeys yet" in page
    assert "No messages yet" in client.get("/journeys/messages").text
    done = post(client, "/journeys/library/welcome", "/journeys", {})
    assert done.status_code == 303
    made = session.scalars(select(Flow).where(Flow.merchant_id == tenant.merchant_id)).one()
    assert (made.name, made.status) == ("welcome", "draft")
    assert "flow_welcome" in client.get("/journeys/messages").text


def test_edit_a_message_and_preview_it_on_a_customer(
    admin: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    tpl = session.scalars(
        select(MessageTemplate).where(
            MessageTemplate.merchant_id == shop.merchant_id, MessageTemplate.name == "flow_welcome"
        )
    ).one()
    path = f"/journeys/messages/{tpl.id}"
    version, french = tpl.version, dict(tpl.variants["fr"])
    page = admin.get(path).text
    assert tpl.variants["en"]["subject"].replace('"', "&#34;") in page or "Welcome to" in page
    fields = {
        f"{loc}_{p}": (tpl.variants.get(loc) or {}).get(p) or ""
        for loc in ("en", "fr")
        for p in ("subject", "html", "text")
    }
    broken = post(admin, path, path, {**fields, "fr_subject": "Bonjour {{ customer.first_name "})
    assert broken.status_code == 200
    assert "variants.fr.subject" in text_of(broken.text, "message-error")
    unknown = post(admin, path, path, {**fields, "en_text": "Hi {{ nobody_knows }}"})
    assert "variants.en.text" in text_of(unknown.text, "message-error")
    session.expire_all()
    assert session.get(MessageTemplate, tpl.id).version == version  # type: ignore[union-attr]
    saved = post(admin, path, path, {**fields, "en_subject": "Hello {{ customer.first_name }}"})
    assert saved.status_code == 303
    session.expire_all()
    row = session.get(MessageTemplate, tpl.id)
    assert row is not None and row.version == version + 1
    assert row.variants["en"]["subject"] == "Hello {{ customer.first_name }}"
    assert row.variants["fr"] == french
    # preview for a real customer: the delivery's own rendering
    customer = customers_with_email(session, shop, 1)[0]
    shown = admin.get(path, params={"customer": customer.external_id}).text
    expected = delivery.preview(
        session,
        merchant_id=shop.merchant_id,
        template=row.name,
        customer=customer,
        context={},
        now=clock.now(),
    )
    assert text_of(shown, "preview-subject") == expected.subject
    assert text_of(shown, "preview-text") == " ".join(expected.text.split())
    missing = admin.get(path, params={"customer": "nobody-here"}).text
    assert "nobody-here" in text_of(missing, "preview-error")
    actions = session.scalars(select(DashboardActivity.action)).all()
    assert "message.updated" in actions


def test_read_only_users_cannot_edit_messages(
    reader: TestClient, session: Session, shop: DemoShop
) -> None:
    tpl = session.scalars(
        select(MessageTemplate).where(MessageTemplate.merchant_id == shop.merchant_id)
    ).first()
    assert tpl is not None
    path = f"/journeys/messages/{tpl.id}"
    assert 'id="save-message"' not in reader.get(path).text
    assert post(reader, path, path, {"en_subject": "x", "en_text": "y"}).status_code == 403


def test_send_a_newsletter_and_read_its_stats(
    admin: TestClient, reader: TestClient, session: Session, shop: DemoShop, clock: FrozenClock
) -> None:
    assert "No newsletters yet" in admin.get("/newsletters").text
    segment = segments.create(
        session,
        shop.merchant_id,
        name="Everyone FR",
        rule={"all": [{"field": "customer.country", "op": "eq", "value": "FR"}]},
        now=clock.now(),
    )
    tpl = session.scalars(
        select(MessageTemplate).where(
            MessageTemplate.merchant_id == shop.merchant_id,
            MessageTemplate.topic != "transactional",
        )
    ).first()
    assert tpl is not None
    session.commit()
    form = {
        "name": "June news",
        "segment_id": str(segment.id),
        "template_id": str(tpl.id),
        "topic": "newsletter",
        "send_at": "2026-06-20T09:30",
        "holdout": "10",
        "form_id": "123456789",
    }
    assert post(reader, "/newsletters", "/newsletters", form).status_code == 403
    made = post(admin, "/newsletters", "/newsletters", form)
    assert made.status_code == 303
    again = post(admin, "/newsletters", "/newsletters", form)  # the same form: the same one
    assert again.headers["location"] == made.headers["location"]
    row = session.scalars(select(Broadcast).where(Broadcast.merchant_id == shop.merchant_id)).one()
    assert (row.name, row.segment_id, row.holdout_bp, row.status) == (
        "June news", segment.id, 1000, "scheduled",
    )  # fmt: skip
    assert row.send_at.astimezone(FMT.timezone).strftime("%Y-%m-%d %H:%M") == "2026-06-20 09:30"
    page = admin.get(made.headers["location"]).text
    got = broadcasts.broadcast_stats(session, shop.merchant_id, row.id)
    assert text_of(page, "nl-sent").endswith(FMT.number(got["totals"]["sent"]))
    assert text_of(page, "broadcast-status") == "scheduled"
    assert "June news" in admin.get("/newsletters").text
    cancelled = post(admin, f"/newsletters/{row.id}/cancel", made.headers["location"], {})
    assert cancelled.status_code == 303
    session.expire_all()
    assert session.get(Broadcast, row.id).status == "cancelled"  # type: ignore[union-attr]
    bad = post(
        admin, "/newsletters", "/newsletters", {**form, "form_id": "2", "segment_id": "999999"}
    )
    assert bad.status_code == 303 and bad.headers["location"] == "/newsletters"
    assert "segment" in admin.get("/newsletters").text.lower()
    nan = post(admin, "/newsletters", "/newsletters", {**form, "form_id": "3", "holdout": "nan"})
    assert nan.status_code == 303
    shown = admin.get("/newsletters").text
    assert "holdout: Give a number." in shown, re.findall(r"flash[^<]*<", shown)
    assert session.scalars(select(Broadcast)).all() == [row]


def test_the_360_shows_journeys_and_messages(
    admin: TestClient, session: Session, shop: DemoShop, measured: dict[str, object]
) -> None:
    clicker = measured["clicker"]
    page = admin.get(f"/customers/{clicker.id}").text  # type: ignore[attr-defined]
    journeys = flows.journeys(session, caller(shop), clicker.external_id)  # type: ignore[attr-defined]
    for j in journeys:
        assert j.flow in text_of(page, f"journey-{j.id}")
    totals = text_of(page, "message-totals")
    sent = session.scalars(
        select(MessageSend).where(
            MessageSend.customer_id == clicker.id, MessageSend.status == "sent"
        )  # type: ignore[attr-defined]
    ).all()
    assert totals == f"Sent {len(sent)} · Opened 1 · Clicked 1"
    assert "flow_welcome" not in totals
    assert "test" in text_of(page, "consents")
