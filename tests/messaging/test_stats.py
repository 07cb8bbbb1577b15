"""flow_stats from ledger rows written by messaging.send with a flow's source, and the
programme's global holdout: counts by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from fidele.kit.clock import FrozenClock
from fidele.messaging import measure, measurement, stats, tracking
from fidele.messaging import service as messaging
from fidele.messaging.models import MessageSend
from tests.fixtures.factories import Tenant, make_tenant
from tests.messaging.conftest import make_customer, make_template
from tests.messaging.shop import place


def send(session: Session, tenant: Tenant, customer_id: int, key: str, now, **kw):  # type: ignore[no-untyped-def]
    return messaging.send(
        session,
        merchant_id=tenant.merchant_id,
        customer_id=customer_id,
        template="hello",
        topic=kw.pop("topic", "lifecycle"),
        key=key,
        now=now,
        **kw,
    )


def test_flow_stats_by_step_variant_and_holdout(
    session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    now = clock.now()
    make_template(session, tenant)
    ids = [make_customer(session, tenant, f"c{i}").id for i in range(6)]
    stranger = make_customer(session, tenant, "nc", topics=()).id
    # enrollment i: step "welcome" for c0..c5 (c4 and c5 held out by the flow), then
    # step "coupon" 2 days later for c0..c3 with variants a/b; the stranger has no consent.
    for i, cid in enumerate(ids):
        src = {"flow_id": 7, "flow_version": 1, "step": "welcome", "enrollment_id": i}
        send(session, tenant, cid, f"flow:{i}:welcome", now, source=src, hold_out=i >= 4)
    send(session, tenant, stranger, "flow:9:welcome", now, source={"flow_id": 7, "step": "welcome"})
    later = now + timedelta(days=2)
    for i, cid in enumerate(ids[:4]):
        src = {
            "flow_id": 7,
            "flow_version": 1,
            "step": "coupon",
            "enrollment_id": i,
            "variant": "ab"[i % 2],
        }
        send(session, tenant, cid, f"flow:{i}:coupon", later, source=src)
    rows = {(r.customer_id, r.step): r for r in session.query(MessageSend).filter_by(flow_id=7)}
    # c1 clicks its coupon message and buys 25.00 the next day (attributed to "coupon");
    # c4 (held out) buys 10.00 a day after its welcome.
    mark = tracking.Mark(
        "click", tenant.merchant_id, ids[1], rows[(ids[1], "coupon")].id, "https://x/"
    )
    tracking.record(session, mark, later + timedelta(hours=1))
    place(session, tenant, "o1", "c1", at=later + timedelta(days=1), amount=2500)
    place(session, tenant, "o4", "c4", at=now + timedelta(days=1), amount=1000)
    got = stats.flow_stats(session, tenant.merchant_id, 7)
    t = got["totals"]
    assert (t["decided"], t["queued"], t["held_out"], t["skipped"]) == (11, 8, 2, {"no_consent": 1})
    assert (t["clicked"], t["opened"], t["conversions"], t["revenue"]) == (1, 1, 1, 2500)
    steps = {s["step"]: s for s in got["steps"]}
    assert set(steps) == {"welcome", "coupon"}
    assert (steps["welcome"]["decided"], steps["welcome"]["held_out"]) == (7, 2)
    assert steps["welcome"]["conversions"] == 0
    assert steps["coupon"]["conversions"] == 1
    assert [(v["variant"], v["decided"], v["clicked"]) for v in steps["coupon"]["variants"]] == [
        ("a", 2, 0),
        ("b", 2, 1),
    ]
    ab = steps["coupon"]["ab"]
    assert ab["leader"] == "b"
    assert ab["variants"]["b"]["converted"] == 1
    assert ab["significant_winner"] is None  # 1 of 2 against 0 of 2 proves nothing
    # welcome step: treated c0..c3 (c1 bought 25.00 three days after: inside the 5 days),
    # held out c4 (10.00), c5 (nothing)
    w = steps["welcome"]["holdout"]
    assert (w["treated"]["customers"], w["treated"]["converted"], w["treated"]["revenue"]) == (
        4,
        1,
        2500,
    )
    assert (w["held_out"]["customers"], w["held_out"]["converted"], w["held_out"]["revenue"]) == (
        2,
        1,
        1000,
    )
    assert w["incremental_conversion_rate"] == pytest.approx(1 / 4 - 1 / 2)
    # flow level, per customer: the same split (c0..c3 treated, c4 c5 held out)
    f = got["holdout"]
    assert (f["treated"]["customers"], f["held_out"]["customers"]) == (4, 2)
    assert got["attribution_days"] == {"click": 5.0, "open": 3.0}
    assert stats.flow_stats(session, tenant.merchant_id, 12345)["totals"]["decided"] == 0


def test_global_holdout_is_never_messaged_and_measured(
    api: TestClient, session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    now = clock.now()
    make_template(session, tenant)
    session.commit()
    r = api.put("/v1/messages/measurement", json={"global_holdout_share": 3000})
    assert r.json() == {"global_holdout_share": 3000, "click_days": 5.0, "open_days": 3.0}
    ids = [
        make_customer(session, tenant, f"c{i}", now=now - timedelta(days=1)).id for i in range(200)
    ]
    salt = measure.holdout_salt(tenant.merchant_id, measurement.PROGRAMME)
    expected = {c for c in ids if measure.is_held_out(salt, c, 3000)}
    assert 30 <= len(expected) <= 90  # 30% of 200: mean 60, sd 6.5
    outcomes = {c: send(session, tenant, c, f"k{c}", now) for c in ids}
    assert {c for c, o in outcomes.items() if o.status == "held_out"} == expected
    assert all(o.status == "queued" for c, o in outcomes.items() if c not in expected)
    # transactional messages are never held back
    tx = send(session, tenant, next(iter(expected)), "tx", now, topic="transactional")
    assert tx.status == "queued"
    # orders: two held-out customers and three others buy 10.00 each
    held, rest = sorted(expected), sorted(set(ids) - expected)
    for c in held[:2] + rest[:3]:
        place(session, tenant, f"o{c}", f"c{ids.index(c)}", at=now + timedelta(days=1))
    session.commit()
    got = api.get("/v1/messages/holdout/stats", params={"since": now.isoformat(), "days": 7}).json()
    n_held = len(held)
    assert got["held_out"]["customers"] == n_held
    assert got["treated"]["customers"] == 200 - n_held
    assert (got["held_out"]["converted"], got["treated"]["converted"]) == (2, 3)
    assert got["incremental_conversion_rate"] == pytest.approx(3 / (200 - n_held) - 2 / n_held)
    assert got["incremental_revenue_per_customer"] == pytest.approx(
        3000 / (200 - n_held) - 2000 / n_held
    )
    low, high = got["incremental_conversion_rate_ci95"]
    assert low < got["incremental_conversion_rate"] < high


def test_flow_stats_endpoint(
    api: TestClient, session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    name = api.get("/v1/flows/templates").json()[0]["name"]
    r = api.post(f"/v1/flows/templates/{name}/install")
    assert r.status_code in (200, 201), r.text
    flow_id = r.json()["flow"]["id"]
    got = api.get(f"/v1/flows/{flow_id}/stats")
    assert got.status_code == 200, got.text
    assert (got.json()["flow_id"], got.json()["totals"]["decided"]) == (flow_id, 0)
    assert api.get("/v1/flows/999999/stats").status_code == 404
    other = make_tenant(session, clock.now(), name="Shop B")
    session.commit()
    api.headers["Authorization"] = f"Bearer {other.key}"
    assert api.get(f"/v1/flows/{flow_id}/stats").status_code == 404  # not its flow
