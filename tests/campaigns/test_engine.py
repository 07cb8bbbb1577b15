"""The flow engine on a small shop: entries, waits, goals, re-entry, versions, conditions,
rewards and updates (sends are in test_journeys)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidele.campaigns import engine
from fidele.customers.models import Customer
from fidele.messaging import service as messaging
from fidele.promotions.models import Coupon
from tests.campaigns.helpers import customer, event, journeys, order, outcomes, run, save


def _tagger(name: str, steps: list[dict], **over: object) -> dict:  # type: ignore[type-arg]
    return {"name": name, "trigger": {"event": "cart.abandoned"}, "steps": steps, **over}


def _tags(session: Session, ext: str) -> list[str]:
    session.expire_all()
    c = session.execute(select(Customer).where(Customer.external_id == ext)).scalar_one()
    return list((c.attributes or {}).get("tags", []))


def test_goal_ends_the_enrollment_mid_wait(api, session, factory, clock) -> None:  # type: ignore[no-untyped-def]
    save(
        api,
        _tagger(
            "cart",
            [{"wait": {"days": 3}}, {"update": {"tag": "reminded"}}],
            goals=["order.placed"],
        ),
    )
    customer(api, "ann")
    customer(api, "bob")
    event(api, "ann", "cart.abandoned", clock.now())
    event(api, "bob", "cart.abandoned", clock.now())
    run(factory, clock)
    clock.advance(days=1)
    order(api, "ann", "o-1", clock.now())  # Ann buys in the middle of the wait
    clock.advance(days=2, minutes=1)
    run(factory, clock)
    ann, bob = journeys(api, "ann")[0], journeys(api, "bob")[0]
    assert (ann["status"], ann["exit_reason"]) == ("exited", "goal reached: order.placed")
    assert ann["step"] == "s1"  # it left from the wait
    assert _tags(session, "ann") == []
    assert bob["status"] == "completed"
    assert _tags(session, "bob") == ["reminded"]
    assert outcomes(bob) == [
        ("trigger", "entered"),
        ("wait", "waiting"),
        ("update", "updated"),
        ("exit", "completed"),
    ]


def test_wait_for_an_event_with_timeout(api, session, factory, clock) -> None:  # type: ignore[no-untyped-def]
    steps = [
        {
            "id": "review",
            "wait": {
                "event": "review_posted",
                "timeout": {"days": 3},
                "on_event": "thanks",
                "on_timeout": "nudge",
            },
        },
        {"id": "nudge", "update": {"tag": "nudged"}, "next": "exit"},
        {"id": "thanks", "update": {"tag": "thanked"}},
    ]
    save(api, _tagger("review", steps))
    for ext in ("ann", "bob"):
        customer(api, ext)
        event(api, ext, "cart.abandoned", clock.now())
    run(factory, clock)
    clock.advance(hours=5)
    event(api, "ann", "review_posted", clock.now())
    run(factory, clock)  # Ann's wait ends at once
    assert _tags(session, "ann") == ["thanked"]
    assert _tags(session, "bob") == []
    clock.advance(days=3)
    run(factory, clock)  # Bob's times out
    assert _tags(session, "bob") == ["nudged"]
    assert ("wait", "event") in outcomes(journeys(api, "ann")[0])
    assert ("wait", "timeout") in outcomes(journeys(api, "bob")[0])


def test_reentry_policies(api, factory, clock) -> None:  # type: ignore[no-untyped-def]
    save(api, _tagger("never", [{"update": {"tag": "a"}}]))
    save(api, _tagger("weekly", [{"update": {"tag": "b"}}], reentry={"days": 7}))
    save(api, _tagger("always", [{"update": {"tag": "c"}}], reentry="always"))
    customer(api, "ann")
    start = clock.now()
    for day in (0, 3, 8):  # carts on day 0, 3 and 8
        clock.set(start + timedelta(days=day))
        event(api, "ann", "cart.abandoned", clock.now())
        run(factory, clock)
    entries: dict[str, int] = {}
    for j in journeys(api, "ann"):
        name = api.get(f"/v1/flows/{j['flow_id']}").json()["name"]
        entries[name] = entries.get(name, 0) + 1
    assert entries == {"never": 1, "weekly": 2, "always": 3}


def test_a_flow_edited_while_customers_are_in_it(api, session, factory, clock) -> None:  # type: ignore[no-untyped-def]
    v1 = _tagger("edited", [{"wait": {"days": 1}}, {"update": {"tag": "v1"}}])
    flow = save(api, v1)
    customer(api, "ann")
    event(api, "ann", "cart.abandoned", clock.now())
    run(factory, clock)
    v2 = _tagger("edited", [{"wait": {"hours": 2}}, {"update": {"tag": "v2"}}])
    edited = api.post("/v1/flows", json={"definition": v2}).json()
    assert (edited["id"], edited["active_version"], edited["status"]) == (flow["id"], 2, "active")
    customer(api, "bob")
    event(api, "bob", "cart.abandoned", clock.now())
    clock.advance(hours=3)
    run(factory, clock)
    assert _tags(session, "bob") == ["v2"]
    assert _tags(session, "ann") == []  # still waiting its day, on version 1
    clock.advance(days=1)
    run(factory, clock)
    assert _tags(session, "ann") == ["v1"]
    versions = {j["version"] for ext in ("ann", "bob") for j in journeys(api, ext)}
    assert versions == {1, 2}


def test_an_invalid_definition_is_refused_and_the_active_version_stays(api, clock) -> None:  # type: ignore[no-untyped-def]
    flow = save(api, _tagger("stays", [{"update": {"tag": "a"}}]))
    bad = _tagger("stays", [{"update": {"tag": "a"}, "condition": {"rule": {"all": []}}}])
    answer = api.post("/v1/flows", json={"definition": bad})
    assert answer.status_code == 422
    assert answer.json()["fields"][0]["field"] == "definition.steps.0"
    bad_rule = {"field": "orders.count", "op": "gte", "value": "x"}
    bad = _tagger("stays", [{"condition": {"rule": bad_rule}}])
    answer = api.post("/v1/flows", json={"definition": bad})
    assert answer.status_code == 422
    assert answer.json()["fields"][0]["field"] == "definition.steps.0.condition.rule.value"
    now = api.get(f"/v1/flows/{flow['id']}").json()
    assert (now["active_version"], now["latest_version"], now["status"]) == (1, 1, "active")


def test_conditions_branch_on_a_segment_rule(api, session, factory, clock) -> None:  # type: ignore[no-untyped-def]
    steps = [
        {
            "condition": {"rule": {"field": "orders.count", "op": "gte", "value": 2}},
            "yes": "loyal",
        },
        {"update": {"tag": "new"}, "next": "exit"},
        {"id": "loyal", "update": {"tag": "loyal"}},
    ]
    save(api, _tagger("cond", steps))
    customer(api, "ann")
    customer(api, "bob")
    order(api, "ann", "o-1", clock.now() - timedelta(days=60))
    order(api, "ann", "o-2", clock.now() - timedelta(days=30))
    for ext in ("ann", "bob"):
        event(api, ext, "cart.abandoned", clock.now())
    run(factory, clock)
    assert _tags(session, "ann") == ["loyal"]
    assert _tags(session, "bob") == ["new"]


def test_rewards_are_issued_once_per_enrollment(api, session, factory, clock) -> None:  # type: ignore[no-untyped-def]
    steps = [
        {"id": "gift", "reward": {"coupon": {"kind": "amount_off", "value": 500, "days": 10}}},
        {"update": {"attributes": {"gifted": True}}},
    ]
    save(api, _tagger("gift", steps))
    customer(api, "ann")
    event(api, "ann", "cart.abandoned", clock.now())
    run(factory, clock)
    # the same enrollment advanced through its reward step again (a crash before commit)
    enr = journeys(api, "ann")[0]
    from fidele.campaigns.models import Enrollment

    row = session.get(Enrollment, enr["id"])
    assert row is not None
    row.status, row.step, row.due_at = "active", "gift", clock.now()
    session.commit()
    run(factory, clock)
    coupons = session.execute(select(Coupon).where(Coupon.origin == "flow")).scalars().all()
    assert len(coupons) == 1
    assert (coupons[0].kind, coupons[0].value) == ("amount_off", 500)
    assert coupons[0].ends_at == clock.now() + timedelta(days=10)


def test_points_reward_and_consent_update(api, session, factory, clock, tenant) -> None:  # type: ignore[no-untyped-def]
    steps = [
        {"reward": {"points": 250, "reason": "sorry"}},
        {"update": {"consent": {"topic": "newsletter", "channel": "email", "granted": False}}},
    ]
    save(api, _tagger("pts", steps))
    customer(api, "ann", consent={"email_marketing": True})
    c = session.execute(select(Customer).where(Customer.external_id == "ann")).scalar_one()
    assert messaging.consent_granted(
        session,
        merchant_id=tenant.merchant_id,
        customer_id=c.id,
        topic="newsletter",
        channel="email",
    )
    event(api, "ann", "cart.abandoned", clock.now())
    run(factory, clock)
    history = outcomes(journeys(api, "ann")[0])
    assert ("reward", "rewarded") in history
    assert ("update", "updated") in history
    session.expire_all()
    assert not messaging.consent_granted(
        session,
        merchant_id=tenant.merchant_id,
        customer_id=c.id,
        topic="newsletter",
        channel="email",
    )
    balance = api.get("/v1/customers/ann/loyalty").json()
    assert balance["available"] == 250


def test_paused_flows_take_nobody_new_but_finish_running_ones(api, session, factory, clock) -> None:  # type: ignore[no-untyped-def]
    flow = save(api, _tagger("paused", [{"wait": {"hours": 1}}, {"update": {"tag": "done"}}]))
    customer(api, "ann")
    customer(api, "bob")
    event(api, "ann", "cart.abandoned", clock.now())
    assert api.post(f"/v1/flows/{flow['id']}/pause").json()["status"] == "paused"
    event(api, "bob", "cart.abandoned", clock.now())
    clock.advance(hours=2)
    run(factory, clock)
    assert _tags(session, "ann") == ["done"]
    assert journeys(api, "bob") == []
    page = api.get(f"/v1/flows/{flow['id']}/enrollments").json()
    assert [(e["customer_id"], e["status"]) for e in page["items"]] == [("ann", "completed")]


def test_first_order_trigger_and_enrollment_counts(api, factory, clock, session) -> None:  # type: ignore[no-untyped-def]
    flow = save(
        api,
        {
            "name": "first",
            "trigger": {"event": "order.placed", "first_order": True},
            "steps": [{"update": {"tag": "first"}}],
        },
    )
    customer(api, "ann")
    order(api, "ann", "o-1", clock.now())
    order(api, "ann", "o-2", clock.now() + timedelta(minutes=1))
    run(factory, clock)
    assert _tags(session, "ann") == ["first"]
    listed = api.get("/v1/flows").json()["items"]
    assert [(f["id"], f["enrollments"]) for f in listed] == [(flow["id"], {"completed": 1})]
    n = session.execute(select(func.count()).select_from(Coupon)).scalar_one()
    assert n == 0


def test_a_failing_step_is_retried_then_fails(api, session, factory, clock, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    save(api, _tagger("boom", [{"update": {"tag": "x"}}]))
    customer(api, "ann")
    event(api, "ann", "cart.abandoned", clock.now())
    from fidele.campaigns import actions

    def explode(*_: object) -> None:
        raise RuntimeError("tag service down")

    monkeypatch.setattr(actions, "update", explode)
    for _ in range(engine.MAX_ATTEMPTS):
        run(factory, clock)
        clock.advance(days=1)
    j = journeys(api, "ann")[0]
    assert j["status"] == "failed"
    assert "tag service down" in j["exit_reason"]
    assert [o for o in outcomes(j) if o[0] == "error"] == [("error", "retry")] * (
        engine.MAX_ATTEMPTS - 1
    )


def test_past_events_arriving_now_enroll_nobody(api, session, factory, clock) -> None:  # type: ignore[no-untyped-def]
    first = {
        "name": "first",
        "trigger": {"event": "order.placed", "first_order": True},
        "steps": [{"update": {"tag": "thanked"}}],
    }
    save(api, first)
    customer(api, "ann")
    order(api, "ann", "o-old", clock.now() - timedelta(days=300))  # an import of history
    run(factory, clock)
    assert journeys(api, "ann") == []
    assert _tags(session, "ann") == []


def test_a_segment_announcing_entries_ends_goals_and_waits_in_one_read(
    api, session, factory, clock, engine
) -> None:  # type: ignore[no-untyped-def]
    """A segment announces its entries in one batch (``events.record_many``): the flows
    read the active enrollments of the batch's customers once, not once per event, and
    every goal and wait on ``segment.entered`` behaves as it does for a single event."""
    from sqlalchemy import event as sa_event

    save(
        api,
        _tagger(
            "goal", [{"wait": {"days": 3}}, {"update": {"tag": "late"}}], goals=["segment.entered"]
        ),
    )
    waiting = {
        "id": "w",
        "wait": {
            "event": "segment.entered",
            "timeout": {"days": 3},
            "on_event": "thanks",
            "on_timeout": "nudge",
        },
    }
    steps = [
        waiting,
        {"id": "nudge", "update": {"tag": "nudged"}, "next": "exit"},
        {"id": "thanks", "update": {"tag": "thanked"}},
    ]
    save(api, _tagger("waiter", steps))
    french = ("ann", "bob", "dan")
    for ext in (*french, "cy"):
        customer(api, ext, country="DE" if ext == "cy" else "FR")
        event(api, ext, "cart.abandoned", clock.now())
    run(factory, clock)

    reads: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        flat = " ".join(statement.split())
        if flat.startswith("SELECT") and "FROM flow_enrollments" in flat:
            reads.append(flat)

    sa_event.listen(engine, "before_cursor_execute", note)
    try:
        rule = {"field": "customer.country", "op": "eq", "value": "FR"}
        answer = api.post("/v1/segments", json={"name": "French", "rule": rule})
    finally:
        sa_event.remove(engine, "before_cursor_execute", note)
    assert answer.status_code == 201, answer.text
    assert answer.json()["count"] == 3
    assert len(reads) == 1, reads  # the batch's customers at once (was one read per event)

    run(factory, clock)  # the ended waits go on at once
    for ext in french:
        goal, waiter = sorted(journeys(api, ext), key=lambda j: j["flow_id"])
        assert (goal["status"], goal["exit_reason"]) == ("exited", "goal reached: segment.entered")
        assert waiter["status"] == "completed"
        assert ("wait", "event") in outcomes(waiter)
        assert _tags(session, ext) == ["thanked"]
    clock.advance(days=3, minutes=1)
    run(factory, clock)
    goal, waiter = sorted(journeys(api, "cy"), key=lambda j: j["flow_id"])
    assert goal["status"] == waiter["status"] == "completed"
    assert _tags(session, "cy") == ["late", "nudged"]
