"""The engagement scale counts what the API records, and is edited through the API and the
installed CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
from sqlalchemy import select

from fidele.analytics import service
from fidele.analytics.models import CustomerInsight
from fidele.customers.models import Customer

from .db import NOW, load_shop, shop_orders

FIDELE = str(Path(sys.executable).parent / "fidele")


def _insight(session, external_id):
    cid = session.execute(
        select(Customer.id).where(Customer.external_id == external_id)
    ).scalar_one()
    return session.get(CustomerInsight, cid)


def test_actions_posted_through_the_api_count(api, session, tenant, clock):
    """The default scale scored only orders (every score was 5 x orders): an action posted to
    /v1/events under its documented name now counts."""
    shop = shop_orders(40)
    load_shop(session, tenant.caller, shop)
    session.commit()
    clock.set(NOW)
    for kind in ("newsletter_subscribed", "review_posted", "social_share"):
        r = api.post(
            "/v1/events",
            headers={"Idempotency-Key": f"k-{kind}"},
            json={
                "type": kind,
                "customer_id": "c0000001",
                "occurred_at": (NOW - timedelta(days=2)).isoformat(),
            },
        )
        assert r.status_code in (200, 201), r.text
    service.refresh(session, tenant.merchant_id, NOW)
    mine = _insight(session, "c0000001")
    since = NOW - timedelta(days=180)
    recent = shop.filter((pl.col("customer_id") == "c0000001") & (pl.col("date") > since))
    assert mine.engagement_score == 10 + 8 + 3 + 5 * recent.height


def test_put_engagement_validates_and_applies(api, session, tenant, clock):
    assert api.get("/v1/analytics/engagement").json()["scale"]["newsletter_subscribed"] == 10
    bad = api.put(
        "/v1/analytics/engagement",
        json={"scale": {"newsletter.subscribed": 10, "order.placed": -1}},
    )
    assert bad.status_code == 422
    fields = {f["field"]: f["message"] for f in bad.json()["fields"]}
    assert "newsletter_subscribed" in fields["body.scale.newsletter.subscribed.[key]"]
    assert "body.scale.order.placed" in fields
    unordered = api.put(
        "/v1/analytics/engagement",
        json={"statuses": [{"min_score": 10, "status": "a"}, {"min_score": 5, "status": "b"}]},
    )
    assert unordered.status_code == 422
    assert api.get("/v1/analytics/engagement").json()["scale"]["order.placed"] == 5  # unchanged

    scale = {
        "scale": {"order.placed": 0, "quiz_completed": 30},
        "window_days": 30,
        "statuses": [{"min_score": 0, "status": "quiet"}, {"min_score": 25, "status": "fan"}],
    }
    ok = api.put("/v1/analytics/engagement", json=scale)
    assert ok.status_code == 200, ok.text
    assert api.get("/v1/analytics/engagement").json() == scale
    load_shop(session, tenant.caller, shop_orders(30))
    session.commit()
    clock.set(NOW)
    api.post(
        "/v1/events",
        headers={"Idempotency-Key": "quiz"},
        json={
            "type": "quiz_completed",
            "customer_id": "c0000002",
            "occurred_at": "2026-05-30T10:00:00Z",
        },
    )
    service.refresh(session, tenant.merchant_id, NOW)
    mine = _insight(session, "c0000002")
    assert (mine.engagement_score, mine.engagement_status) == (30, "fan")
    others = session.execute(
        select(CustomerInsight.engagement_status).where(
            CustomerInsight.customer_id != mine.customer_id
        )
    ).scalars()
    assert set(others) == {"quiet"}


def test_put_engagement_needs_admin(client, session, clock):
    from tests.fixtures.factories import make_tenant

    reader = make_tenant(session, clock.now(), name="Reader", scopes="read")
    session.commit()
    client.headers["Authorization"] = f"Bearer {reader.key}"
    assert client.put("/v1/analytics/engagement", json={}).status_code == 403


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FIDELE_DATABASE_URL": url, "FIDELE_EMBEDDED_WORKER": "false"}
    return subprocess.run([FIDELE, *args], capture_output=True, text=True, env=env, timeout=120)


def test_installed_cli_loads_a_scale_file(committed_engine, tmp_path):
    url = committed_engine.url.render_as_string(hide_password=False)
    made = _cli(url, "merchant", "create", "Engaged shop", "--json")
    assert made.returncode == 0, made.stderr
    merchant = str(json.loads(made.stdout)["merchant_id"])

    bad = tmp_path / "bad.yaml"
    bad.write_text("scale:\n  order.placed: 5\n  review.posted: 8\n")
    refused = _cli(url, "analytics", "engagement", "load", str(bad), "--merchant", merchant)
    assert refused.returncode == 1
    assert "bad.yaml:3" in refused.stderr and "review_posted" in refused.stderr

    good = tmp_path / "scale.yaml"
    good.write_text(
        "scale:\n  order.placed: 4\n  review_posted: 12\nwindow_days: 90\n"
        "statuses:\n  - {min_score: 0, status: new}\n  - {min_score: 40, status: fan}\n"
    )
    loaded = _cli(
        url, "analytics", "engagement", "load", str(good), "--merchant", merchant, "--json"
    )
    assert loaded.returncode == 0, loaded.stderr
    shown = json.loads(_cli(url, "analytics", "engagement", "show", "--merchant", merchant).stdout)
    assert shown["scale"] == {"order.placed": 4, "review_posted": 12}
    assert shown["window_days"] == 90
    assert [s["status"] for s in shown["statuses"]] == ["new", "fan"]
    missing = _cli(url, "analytics", "engagement", "show", "--merchant", "999")
    assert missing.returncode == 1


def test_loyalty_scale_refuses_look_alike_event_types(api):
    from fidele.loyalty.config import default_scale

    scale = default_scale().model_dump(mode="json")
    scale["rules"].append(
        {"id": "share", "type": "action", "event_type": "social.shared", "points": 5}
    )
    r = api.put("/v1/loyalty/rules", json=scale)
    assert r.status_code == 422
    assert any("social_share" in f["message"] for f in r.json()["fields"])
