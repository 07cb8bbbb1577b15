"""Each ready-made journey played with a controlled clock on a small shop: who enters, when
each message goes (the send ledger), who exits and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.campaigns import library, triggers
from fidele.customers.models import Customer
from fidele.loyalty import notify
from fidele.loyalty import service as loyalty
from fidele.loyalty.models import Member
from fidele.messaging import service as messaging
from fidele.messaging.models import MessageSend, MessageTemplate
from tests.campaigns.helpers import customer, event, journeys, order, play, run

H = timedelta(hours=1)
D = timedelta(days=1)


@pytest.fixture
def install(api):  # type: ignore[no-untyped-def]
    def install(name: str, **body: object) -> dict:  # type: ignore[type-arg]
        answer = api.post(f"/v1/flows/templates/{name}/install", json={"activate": True, **body})
        assert answer.status_code == 200, answer.text
        return answer.json()

    return install


def sends(session: Session) -> list[tuple[str, str, str, datetime]]:
    """(customer, template, status, when) of every message decided, in order."""
    session.expire_all()
    rows = session.execute(
        select(
            Customer.external_id, MessageTemplate.name, MessageSend.status, MessageSend.created_at
        )
        .join(Customer, Customer.id == MessageSend.customer_id)
        .join(MessageTemplate, MessageTemplate.id == MessageSend.template_id)
        .order_by(MessageSend.id)
    ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def consenting(api, ext: str, **fields: object) -> None:  # type: ignore[no-untyped-def]
    customer(api, ext, consent={"email_marketing": True}, **fields)


def _state(api, ext: str) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    return [(j["status"], j["exit_reason"]) for j in journeys(api, ext)]


def test_install_lists_and_keeps_edits(api, install, session, tenant) -> None:  # type: ignore[no-untyped-def]
    listed = api.get("/v1/flows/templates").json()
    assert [t["name"] for t in listed] == [j.name for j in library.JOURNEYS]
    assert not any(t["installed"] for t in listed)
    answer = api.post("/v1/flows/templates/win_back/install", json={"incentive": "points"})
    made = answer.json()
    assert made["flow"]["status"] == "draft"  # off until activated
    assert made["templates"] == [f"flow_winback_{i}" for i in range(1, 6)]
    flow = api.get(f"/v1/flows/{made['flow']['id']}").json()
    incentive = next(s for s in flow["definition"]["steps"] if s.get("id") == "incentive")
    assert incentive["reward"] == {"points": 500, "reason": "win-back"}
    again = install("win_back")  # installing again keeps the flow and activates it
    assert (again["flow"]["id"], again["flow"]["status"]) == (made["flow"]["id"], "active")
    tpl = session.execute(
        select(MessageTemplate).where(MessageTemplate.name == "flow_winback_2")
    ).scalar_one()
    assert set(tpl.variants) >= {"en", "fr"}
    assert api.post("/v1/flows/templates/nope/install").status_code == 404


def test_welcome(api, install, session, factory, clock) -> None:  # type: ignore[no-untyped-def]
    install("welcome")
    consenting(api, "ann")
    customer(api, "bob")  # no marketing consent
    run(factory, clock)
    assert sends(session) == []  # ten minutes later
    clock.advance(minutes=10)
    run(factory, clock)
    at = clock.now()
    assert sends(session) == [
        ("ann", "flow_welcome", "queued", at),
        ("bob", "flow_welcome", "skipped", at),
    ]
    bob = journeys(api, "bob")[0]["history"]
    assert (bob[-2]["outcome"], bob[-2]["reason"]) == ("skipped", "no_consent")
    event(api, "ann", "newsletter_subscribed", clock.now())  # welcomed once, ever
    assert len(journeys(api, "ann")) == 1


def test_first_order_thanks_and_survey(api, install, session, factory, clock) -> None:  # type: ignore[no-untyped-def]
    install("first_order_thanks")
    install("satisfaction_survey")
    consenting(api, "ann", timezone="Europe/Paris")
    order(api, "ann", "o-1", clock.now())  # 12:00 UTC, 1 June
    order(api, "ann", "o-2", clock.now() + timedelta(minutes=5))  # not a first order
    run(factory, clock)
    clock.advance(H)
    run(factory, clock)
    assert sends(session) == [("ann", "flow_first_order_thanks", "queued", clock.now())]
    # 30 days later (1 July, 14:00 in Paris), then the next 10:00 there (08:00 UTC)
    clock.set(datetime(2026, 7, 2, 7, 59, tzinfo=UTC))
    run(factory, clock)
    assert len(sends(session)) == 1
    clock.set(datetime(2026, 7, 2, 8, 0, tzinfo=UTC))
    run(factory, clock)
    assert sends(session)[-1] == ("ann", "flow_satisfaction_survey", "queued", clock.now())
    assert _state(api, "ann") == [("completed", "end of flow")] * 2


def _review(api, ext: str, order_id: str) -> None:  # type: ignore[no-untyped-def]
    """The customer reviews the order's product through its signed link."""
    link = api.post("/v1/reviews/links", json={"customer_id": ext, "order_id": order_id})
    assert link.status_code == 201, link.text
    url = link.json()["url"].removeprefix("http://127.0.0.1:8000")
    posted = api.post(url, data={"rating_0": "5", "text_0": "Lovely"})
    assert posted.status_code == 200, posted.text


def test_review_request_unless_that_order_was_reviewed(
    api, install, session, factory, clock
) -> None:  # type: ignore[no-untyped-def]
    install("review_request")
    for ext in ("ann", "bob"):
        consenting(api, ext)
        order(api, ext, f"o-{ext}", clock.now() - 3 * D)
    order(api, "ann", "o-ann-before", clock.now() - 40 * D)
    for ext in ("ann", "bob"):
        answer = api.post(f"/v1/orders/o-{ext}/status", json={"status": "delivered"})
        assert answer.status_code == 200, answer.text
    clock.advance(2 * D)
    _review(api, "bob", "o-bob")  # bob reviewed the delivered order itself
    _review(api, "ann", "o-ann-before")  # ann reviewed another of her orders
    clock.set(datetime(2026, 6, 8, 17, 59, tzinfo=UTC))
    run(factory, clock)
    assert sends(session) == []
    clock.set(datetime(2026, 6, 8, 18, 0, tzinfo=UTC))  # 7 days after, 18:00 (UTC customers)
    run(factory, clock)
    assert sends(session) == [("ann", "flow_review_request", "queued", clock.now())]
    assert _state(api, "ann") == [("completed", "end of flow")]
    assert _state(api, "bob") == [("exited", "already_reviewed")]
    history = journeys(api, "bob")[0]["history"]
    step = next(h for h in history if h["kind"] == "condition")
    assert (step["step"], step["outcome"], step["reason"]) == (
        "reviewed",
        "yes",
        "already_reviewed",
    )
    ann = next(h for h in journeys(api, "ann")[0]["history"] if h["kind"] == "condition")
    assert (ann["outcome"], ann["reason"]) == ("no", "not_reviewed")


def test_birthday_with_a_coupon_in_the_customers_zone(
    api, install, session, factory, clock
) -> None:  # type: ignore[no-untyped-def]
    install("birthday")
    consenting(api, "ann", birthday="1990-06-03", timezone="Asia/Tokyo")
    consenting(api, "bob", birthday="1985-12-03")
    play(factory, clock, datetime(2026, 6, 4, 12, tzinfo=UTC), H)
    # 09:00 in Tokyo on 3 June is 00:00 UTC: the hourly run at 00:00 enrolls and sends
    assert sends(session) == [
        ("ann", "flow_birthday", "queued", datetime(2026, 6, 3, 0, tzinfo=UTC))
    ]
    row = session.execute(select(MessageSend)).scalar_one()
    assert row.context["coupon_code"].startswith("C")
    assert (row.context["coupon_kind"], row.context["coupon_value"]) == ("percent_off", 1000)


def test_first_order_anniversary_and_year_end(api, install, session, factory, clock) -> None:  # type: ignore[no-untyped-def]
    install("first_order_anniversary")
    install("year_end")
    consenting(api, "ann", timezone="Europe/Paris")
    consenting(api, "bob", timezone="America/New_York")
    order(api, "ann", "o-1", datetime(2025, 12, 30, 15, tzinfo=UTC))
    clock.set(datetime(2026, 12, 30, 8, tzinfo=UTC))
    play(factory, clock, datetime(2026, 12, 31, 16, tzinfo=UTC), H)
    assert sends(session) == [
        # 10:00 in Paris on 30 December (UTC+1)
        ("ann", "flow_first_order_anniversary", "queued", datetime(2026, 12, 30, 9, tzinfo=UTC)),
        ("ann", "flow_year_end", "queued", datetime(2026, 12, 31, 9, tzinfo=UTC)),
        # 10:00 in New York (UTC-5)
        ("bob", "flow_year_end", "queued", datetime(2026, 12, 31, 15, tzinfo=UTC)),
    ]


def test_abandoned_cart_three_messages_and_exit_on_order(
    api, install, session, factory, clock
) -> None:  # type: ignore[no-untyped-def]
    install("abandoned_cart")
    consenting(api, "ann")
    consenting(api, "bob")
    start = clock.now()
    event(api, "ann", "cart.abandoned", start)
    event(api, "bob", "cart.abandoned", start)
    play(factory, clock, start + 30 * H, 30 * timedelta(minutes=1))
    order(api, "bob", "o-1", clock.now())  # Bob buys after the second reminder
    play(factory, clock, start + 80 * H, timedelta(minutes=30))
    ann = [(t, s, at - start) for e, t, s, at in sends(session) if e == "ann"]
    # at most one marketing email a day (the default cap): the second waits a day after the
    # first, the third 48 h after that, with its coupon
    assert ann == [
        ("flow_cart_1", "queued", 1 * H),
        ("flow_cart_2", "queued", 25 * H),
        ("flow_cart_3", "queued", 73 * H),
    ]
    assert [t for e, t, _, _ in sends(session) if e == "bob"] == ["flow_cart_1", "flow_cart_2"]
    assert _state(api, "ann") == [("completed", "end of flow")]
    assert _state(api, "bob") == [("exited", "goal reached: order.placed")]
    deferred = [h for h in journeys(api, "ann")[0]["history"] if h["outcome"] == "deferred"]
    assert deferred[0]["reason"].startswith("cap until")


def _member(session: Session, ext: str) -> Member:
    session.expire_all()
    c = session.execute(select(Customer).where(Customer.external_id == ext)).scalar_one()
    member = loyalty.member_of(session, c)
    assert member is not None
    return member


def test_points_expiring_and_tier_reached(api, install, session, factory, clock, tenant) -> None:  # type: ignore[no-untyped-def]
    install("points_expiring")
    install("tier_reached")
    for ext in ("ann", "bob"):
        consenting(api, ext)
        order(api, ext, f"o-{ext}", clock.now() - D)
    now = clock.now()
    ann, bob = _member(session, "ann"), _member(session, "bob")
    # what loyalty's jobs emit (its expiry notice, its tier review)
    notify.emit(
        session,
        ann,
        merchant_id=tenant.merchant_id,
        topic="loyalty.points_expiring",
        dedup="lot-1",
        payload={"points": 40, "expires_at": "2026-06-30"},
        now=now,
    )
    notify.emit(
        session,
        ann,
        merchant_id=tenant.merchant_id,
        topic="loyalty.tier_changed",
        dedup="t1",
        payload={"from": "Bronze", "to": "Silver", "reason": "qualified"},
        now=now,
    )
    notify.emit(
        session,
        bob,
        merchant_id=tenant.merchant_id,
        topic="loyalty.tier_changed",
        dedup="t2",
        payload={"from": "Silver", "to": "Bronze", "reason": "review: threshold not met"},
        now=now,
    )
    session.commit()
    run(factory, clock)
    assert sends(session) == [("ann", "flow_tier_reached", "queued", now)]  # not the downgrade
    clock.set(datetime(2026, 6, 2, 10, tzinfo=UTC))  # the notice waits for 10:00...
    run(factory, clock)
    assert len(sends(session)) == 1  # ...then a day after the last email (the daily cap)
    clock.set(datetime(2026, 6, 2, 12, tzinfo=UTC))
    run(factory, clock)
    assert sends(session)[-1] == ("ann", "flow_points_expiring", "queued", clock.now())
    assert journeys(api, "bob") == []


def test_next_order_coupon_reminder_before_its_value_drops(
    api, install, session, factory, clock
) -> None:  # type: ignore[no-untyped-def]
    install("next_order_reminder")
    for ext in ("ann", "bob"):
        consenting(api, ext)
        order(api, ext, f"o-{ext}", clock.now())
        api.post(f"/v1/orders/o-{ext}/status", json={"status": "delivered"})
    start = clock.now()
    run(factory, clock)
    clock.advance(5 * D)
    order(api, "bob", "o-bob-2", clock.now())  # Bob used it: his reminder is off
    play(factory, clock, start + 13 * D, 12 * H)
    # the coupon's first rung lasts 14 days: the reminder goes 2 days before
    assert sends(session) == [("ann", "flow_next_order_reminder", "queued", start + 12 * D)]
    row = session.execute(select(MessageSend)).scalar_one()
    assert row.context["coupon_value"] == 1500
    assert _state(api, "bob") == [("exited", "goal reached: order.placed")]


def _orders_every(api, ext: str, gap: timedelta, count: int, last: datetime) -> None:  # type: ignore[no-untyped-def]
    for i in range(count):
        order(api, ext, f"{ext}-{i}", last - (count - 1 - i) * gap)


def test_win_back_timed_on_each_customers_cadence(
    api, install, session, factory, clock, tenant
) -> None:  # type: ignore[no-untyped-def]
    install("win_back")
    last = clock.now() - 10 * D
    consenting(api, "weekly3")  # buys every 3 weeks
    _orders_every(api, "weekly3", 21 * D, 8, last)
    consenting(api, "quarterly")  # buys every 3 months
    _orders_every(api, "quarterly", 91 * D, 8, last)
    consenting(api, "once")  # one order: the shop's median gap
    order(api, "once", "once-0", last)
    consenting(api, "back")  # the rhythm of weekly3, but comes back after the first message
    _orders_every(api, "back", 21 * D, 8, last)
    start = clock.now().replace(hour=0)
    ids = dict(session.execute(select(Customer.external_id, Customer.id)).all())
    frame = triggers.cadences(session, tenant.merchant_id, start)
    gap = {
        e: g
        for c, g in frame.select("customer_id", "expected_gap").iter_rows()
        for e, i in ids.items()
        if i == c
    }
    assert gap["quarterly"] > 3 * gap["weekly3"]
    assert gap["once"] == pytest.approx(21, abs=0.5)  # the shop's median gap
    clock.set(start)
    play(factory, clock, start + 16 * D, 12 * H)
    order(api, "back", "back-8", clock.now())
    play(factory, clock, start + 170 * D, 12 * H)
    by: dict[str, list[tuple[str, datetime]]] = {}
    for ext, tpl, status, at in sends(session):
        assert status == "queued"
        by.setdefault(ext, []).append((tpl, at))
    for ext in ("weekly3", "quarterly", "once"):
        got = by[ext]
        assert [t for t, _ in got] == [f"flow_winback_{i}" for i in range(1, 6)], ext
        first_day = (got[0][1] - last).total_seconds() / 86400
        assert abs(first_day - gap[ext]) <= 1, (ext, first_day, gap[ext])
        spacing = [
            (b - a).total_seconds() / 86400 for (_, a), (_, b) in zip(got, got[1:], strict=False)
        ]
        for days in spacing[:3]:  # a quarter of the customer's own gap, then the next 10:00
            assert 0.25 * gap[ext] <= days <= 0.25 * gap[ext] + 1.5, (ext, spacing)
        assert 7 <= spacing[3] <= 8.5  # a week's notice before the goodbye
        assert _state(api, ext)[0] == ("completed", "end of flow")
        for topic in ("newsletter", "lifecycle"):  # the goodbye really withdraws consent
            assert not messaging.consent_granted(
                session,
                merchant_id=tenant.merchant_id,
                customer_id=ids[ext],
                topic=topic,
                channel="email",
            )
    assert [t for t, _ in by["back"]][:1] == ["flow_winback_1"]
    assert _state(api, "back")[0] == ("exited", "goal reached: order.placed")


def test_a_holdout_group_is_recorded_not_sent(api, install, session, factory, clock) -> None:  # type: ignore[no-untyped-def]
    install("welcome")
    api.post("/v1/flows/templates/welcome/install")  # its template, reused below
    flow = {
        "name": "measured",
        "trigger": {"event": "cart.abandoned"},
        "holdout": 50,
        "steps": [{"send": {"template": "flow_welcome"}}],
    }
    assert api.post("/v1/flows", json={"definition": flow}).status_code == 201
    fid = next(f["id"] for f in api.get("/v1/flows").json()["items"] if f["name"] == "measured")
    api.post(f"/v1/flows/{fid}/activate")
    for i in range(20):
        consenting(api, f"c{i}")
        event(api, f"c{i}", "cart.abandoned", clock.now())
    run(factory, clock)
    # the welcome flow's own messages go ten minutes later: these are the measured flow's
    statuses = [s for _, t, s, _ in sends(session) if t == "flow_welcome"]
    assert len(statuses) == 20
    assert 0 < statuses.count("held_out") < 20
    assert statuses.count("held_out") + statuses.count("queued") == 20


def test_complaint_follow_up_survey_three_days_after_resolution(  # type: ignore[no-untyped-def]
    api, install, session, factory, clock, tmp_path
) -> None:
    import re
    from email import message_from_bytes
    from email.policy import default

    from fidele.feedback.models import SurveyAnswer
    from fidele.messaging import delivery
    from fidele.settings import Settings
    from tests.conftest import SECRET

    install("complaint_follow_up")
    for ext in ("ann", "bob"):
        consenting(api, ext, locale="en")
    opened = api.post(
        "/v1/complaints",
        json={"customer_id": "ann", "category": "damaged", "message": "broken", "channel": "email"},
    )
    assert opened.status_code == 201, opened.text
    complaint = opened.json()["id"]
    for status in ("in_progress", "resolved"):
        moved = api.patch(f"/v1/complaints/{complaint}", json={"status": status})
        assert moved.status_code == 200, moved.text
    # resolved 1 June 12:00 UTC: 3 days later, then the next 10:00 (UTC customer)
    play(factory, clock, datetime(2026, 6, 5, 6, 0, tzinfo=UTC), 6 * H)
    clock.set(datetime(2026, 6, 5, 9, 59, tzinfo=UTC))
    run(factory, clock)
    assert sends(session) == []
    clock.set(datetime(2026, 6, 5, 10, 0, tzinfo=UTC))
    run(factory, clock)
    play(factory, clock, clock.now() + 10 * D, 12 * H)
    assert [(c, t, s) for c, t, s, _ in sends(session)] == [
        ("ann", "flow_complaint_follow_up", "queued")
    ]
    assert _state(api, "ann") == [("completed", "end of flow")]
    assert journeys(api, "bob") == []

    files = Settings(env="test", secret_key=SECRET, messages_dir=str(tmp_path / "mail"))
    assert delivery.deliver_due(factory, clock, settings=files) == 1
    eml = next((tmp_path / "mail").rglob("*.eml"))
    text = message_from_bytes(eml.read_bytes(), policy=default).get_body(("plain",))
    found = re.search(r"http://127\.0\.0\.1:8000(/s/[A-Za-z0-9_.-]+)", text.get_content())
    assert found is not None, text.get_content()
    link = found.group(1)
    page = api.get(link)
    assert page.status_code == 200, page.text
    assert api.post(link, data={"q_score": "2", "q_comment": "slow"}).status_code == 200
    assert api.post(link, data={"q_score": "4"}).status_code == 200  # changes the same answer
    session.expire_all()
    rows = session.execute(select(SurveyAnswer)).scalars().all()
    assert [(r.occasion, r.score) for r in rows] == [(f"complaint:{complaint}", 4)]
