from datetime import timedelta

from fidele.analytics import service
from tests.fixtures.factories import make_tenant

from .db import NOW, load_shop, shop_orders


def test_insights_endpoint(api, session, tenant, clock):
    load_shop(session, tenant.caller, shop_orders(60))
    clock.set(NOW)
    missing = api.get("/v1/customers/c0000001/insights")
    assert missing.status_code == 404
    service.refresh(session, tenant.merchant_id, NOW)
    session.commit()
    body = api.get("/v1/customers/c0000001/insights").json()
    assert body["customer_id"] == "c0000001"
    assert body["segment"]
    assert 1 <= body["r_score"] <= 5
    assert body["engagement_status"] in {"casual", "engaged", "fan"}
    assert body["clv_method"] in {"model", "penalised_model", "cadence_average"}
    assert api.get("/v1/customers/nobody/insights").status_code == 404


def test_other_merchants_customers_answer_404(client, session, tenant, clock):
    load_shop(session, tenant.caller, shop_orders(30))
    service.refresh(session, tenant.merchant_id, NOW)
    other = make_tenant(session, clock.now(), name="Shop B")
    session.commit()
    client.headers["Authorization"] = f"Bearer {other.key}"
    r = client.get("/v1/customers/c0000001/insights")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"
    kpis = client.get("/v1/analytics/kpis").json()
    assert kpis["data"]["kpis"] == {}


def test_reports_stored_and_live(api, session, tenant, clock):
    load_shop(session, tenant.caller, shop_orders(60))
    session.commit()
    clock.set(NOW)
    live = api.get("/v1/analytics/rfm").json()
    assert sum(s["customers"] for s in live["data"]["segments"]) == 60
    service.refresh(session, tenant.merchant_id, NOW - timedelta(days=1))
    session.commit()
    stored = api.get("/v1/analytics/kpis").json()
    assert stored["computed_at"].startswith((NOW - timedelta(days=1)).date().isoformat())
    assert stored["data"]["kpis"]["customers"] == 60
    assert stored["data"]["kpis"]["stage"] in {"just opened", "starting"}
    cohorts = api.get("/v1/analytics/cohorts").json()["data"]["cohorts"]
    assert sum(c["customers"] for c in cohorts if c["period"] == 0) == 60


def test_endpoints_need_a_key(client):
    assert client.get("/v1/analytics/kpis").status_code == 401
    assert client.get("/v1/customers/x/insights").status_code == 401
