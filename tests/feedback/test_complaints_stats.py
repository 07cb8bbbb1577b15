"""``GET /v1/complaints/stats`` on a constructed shop, against a hand count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import T0
from tests.feedback.complaints_shop import complain, customer, move, order


def test_stats_on_a_constructed_shop(api, clock):
    for ext in ("c1", "c2", "c3", "c4", "c5", "c6"):
        customer(api, ext)
        order(api, f"{ext}-first", ext)  # 2026-05-01
    order(api, "c5-again", "c5", placed_at="2026-06-15T10:00:00Z")  # no complaint, repeats
    one = complain(api, "c1")["id"]
    two = complain(api, "c2", category="refund")["id"]
    complain(api, "c3", category="quality")  # stays open
    clock.set(T0 + timedelta(minutes=30))
    move(api, one, "in_progress")
    move(api, two, "in_progress")
    clock.set(T0 + timedelta(hours=1))
    r = move(api, one, "resolved", gesture={"kind": "coupon", "value": 500})
    assert r.status_code == 200, r.text
    clock.set(T0 + timedelta(hours=50))
    assert move(api, two, "resolved").status_code == 200
    order(api, "c1-again", "c1", placed_at="2026-07-01T10:00:00Z")  # 30 days after
    order(api, "c2-again", "c2", placed_at="2026-10-15T10:00:00Z")  # 134 days after
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    s = api.get("/v1/complaints/stats").json()
    assert (s["complaints"], s["orders"], s["per_100_orders"]) == (3, 9, 33.33)
    assert s["by_status"] == {"open": 1, "in_progress": 0, "resolved": 2, "rejected": 0}
    assert s["first_response_hours"] == {"n": 2, "mean": 0.5, "median": 0.5}
    assert s["resolution_hours"] == {"n": 2, "mean": 25.5, "median": 25.5}
    # c3 never answered; c2 resolved after its Wednesday 12:00 due time (refund: 27 h
    # business time -> Thursday 12:00: not breached); c3's resolution is overdue.
    assert s["sla_breaches"] == {"first_response": 1, "resolution": 1}
    r90, r180 = s["retention"]["90d"], s["retention"]["180d"]
    assert r90["complainants"] == {"n": 2, "repeated": 1, "rate": 0.5}
    assert r180["complainants"] == {"n": 2, "repeated": 2, "rate": 1.0}
    # c4, c5, c6 (c3 has a complaint, open: not a customer "without a complaint")
    assert r90["without_complaint"] == {"n": 3, "repeated": 1, "rate": 0.3333}
    assert r90["by_gesture"] == {
        "coupon": {"n": 1, "repeated": 1, "rate": 1.0},
        "none": {"n": 1, "repeated": 0, "rate": 0.0},
    }
    assert r180["by_resolution_time"] == {
        "1-3d": {"n": 1, "repeated": 1, "rate": 1.0},
        "<=1d": {"n": 1, "repeated": 1, "rate": 1.0},
    }
    since = api.get("/v1/complaints/stats", params={"since": "2026-06-02T00:00:00Z"}).json()
    assert since["complaints"] == 0 and since["orders"] == 3
