"""``/feedback/complaints``: the queue with its SLA timers and handling a complaint from the
dashboard (CSRF, role, activity log), through the test client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fidele.dashboard import service as dashboard
from fidele.dashboard.complaints_pages import timer
from fidele.dashboard.models import DashboardActivity
from tests.conftest import T0
from tests.dashboard.conftest import HTML, PASSWORD, login, post
from tests.feedback.complaints_shop import complain, customer


def test_timer():
    due = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert timer(due, None, due - timedelta(hours=3, minutes=5)) == ("3 h 05 min left", "ok")
    assert timer(due, None, due - timedelta(minutes=30)) == ("30 min left", "soon")
    assert timer(due, None, due + timedelta(days=1, hours=2)) == ("late by 1 d 2 h", "late")
    assert timer(due, due, due) == ("met", "ok")
    assert timer(due, due + timedelta(seconds=1), due) == ("missed", "late")


def test_queue_and_handling(api, client, tenant, session, clock):
    customer(api)
    first = complain(api)["id"]
    second = complain(api, category="quality", message="faded after one wash")["id"]
    for role, email in (("marketer", "m@shop.test"), ("read-only", "r@shop.test")):
        dashboard.create_user(
            session,
            merchant_id=tenant.merchant_id,
            email=email,
            password=PASSWORD,
            role=role,
            now=T0,
        )
    session.commit()
    del client.headers["Authorization"]
    login(client, "m@shop.test")
    clock.set(T0 + timedelta(hours=5))  # the damaged one is 1 h past its first response
    page = client.get("/feedback/complaints", headers=HTML)
    assert page.status_code == 200
    assert "late by 1 h 00 min" in page.text and "18 h 00 min left" in page.text
    assert f'id="complaint-{second}"' in page.text
    detail = f"/feedback/complaints/{first}"
    r = post(client, f"{detail}/notes", detail, {"body": "called back"})
    assert r.status_code == 303
    r = post(client, detail, detail, {"status": "in_progress"})
    assert r.status_code == 303
    shown = api.get(
        f"/v1/complaints/{first}", headers={"Authorization": f"Bearer {tenant.key}"}
    ).json()
    assert shown["status"] == "in_progress" and shown["notes"][0]["author"] == "m@shop.test"
    # a refused change comes back with the service's message, nothing changed
    r = post(
        client,
        detail,
        detail,
        {"status": "resolved", "gesture_kind": "coupon", "gesture_value": "999999"},
    )
    assert r.status_code == 303
    page = client.get(detail, headers=HTML)
    assert "recovery budget" in page.text and "in_progress" in page.text
    r = post(
        client,
        detail,
        detail,
        {"status": "resolved", "gesture_kind": "coupon", "gesture_value": "500"},
    )
    assert r.status_code == 303
    page = client.get(detail, headers=HTML)
    assert 'id="gesture"' in page.text
    assert f'id="complaint-{first}"' not in client.get("/feedback/complaints", headers=HTML).text
    session.expire_all()
    actions = [a.action for a in session.query(DashboardActivity).order_by(DashboardActivity.id)]
    assert actions == ["complaint.note_added", "complaint.changed", "complaint.changed"]
    # read-only users see the queue but cannot change it
    client.cookies.clear()
    login(client, "r@shop.test")
    assert client.get(f"/feedback/complaints/{second}", headers=HTML).status_code == 200
    r = client.post(f"/feedback/complaints/{second}/notes", data={"body": "x"})
    assert r.status_code == 403
