from __future__ import annotations

from fidele.messaging import domain, service
from fidele.messaging.consent import customer_of
from fidele.settings import get_settings
from tests.messaging.conftest import VARIANTS


def _template(api, **over):  # type: ignore[no-untyped-def]
    body = {"name": "welcome", "topic": "lifecycle", "variants": VARIANTS, **over}
    return api.post("/v1/messages/templates", json=body)


def _customer(api, ext="c1", **fields):  # type: ignore[no-untyped-def]
    r = api.put(
        f"/v1/customers/{ext}", json={"email": f"{ext}@example.com", "first_name": "Ann", **fields}
    )
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_templates_create_get_put(api):
    r = _template(api)
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    assert (
        api.get(f"/v1/messages/templates/{tid}")
        .json()["variants"]["fr"]["subject"]
        .startswith("Bonjour")
    )
    assert [t["name"] for t in api.get("/v1/messages/templates").json()["items"]] == ["welcome"]
    assert _template(api).status_code == 409
    r = api.put(
        f"/v1/messages/templates/{tid}", json={"variants": {"en": {"subject": "New", "text": "x"}}}
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    # null is "leave as is" for every field (found by the schema fuzzer: it was a 500)
    nulls = {"variables": None, "variants": None, "strict": None, "topic": None}
    r = api.put(f"/v1/messages/templates/{tid}", json=nulls)
    assert r.status_code == 200, r.text
    assert r.json()["variants"]["en"]["subject"] == "New" and r.json()["strict"] is True
    assert api.get("/v1/messages/templates/999999").status_code == 404


def test_unknown_variable_and_syntax_error_are_refused_with_the_line(api):
    bad = {"en": {"subject": "Hi", "text": "line one\n{{ customer.first_name }}\n{{ cupon_code }}"}}
    r = _template(api, variants=bad)
    assert r.status_code == 422
    assert r.json()["fields"][0]["field"] == "variants.en.text"
    assert "line 3" in r.json()["detail"] and "cupon_code" in r.json()["detail"]
    assert _template(api, variants=bad, variables=["cupon_code"]).status_code == 201
    broken = {"en": {"subject": "Hi", "html": "<p>\n{% if x %}\n</p>"}}
    r = _template(api, name="broken", variants=broken, strict=False)
    assert r.status_code == 422 and "variants.en.html line" in r.json()["detail"]


def test_preview_renders_for_a_real_customer(api):
    _customer(api, locale="fr-FR")
    assert _template(api).status_code == 201
    r = api.post("/v1/messages/preview", json={"template": "welcome", "customer_id": "c1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["locale"], body["subject"]) == ("fr", "Bonjour Ann")
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert api.get("/v1/messages/sends").json()["items"] == []  # nothing written
    assert (
        api.post("/v1/messages/preview", json={"template": "nope", "customer_id": "c1"}).status_code
        == 404
    )


def test_policy_defaults_and_update(api):
    p = api.get("/v1/messages/policy").json()
    assert p["caps"]["email"] == [
        {"max": 1, "days": 1},
        {"max": 3, "days": 7},
        {"max": 8, "days": 30},
    ]
    assert p["quiet_hours"] == {"start": "21:00", "end": "08:00", "no_sunday": False}
    r = api.put(
        "/v1/messages/policy",
        json={"caps": {"email": []}, "rate_per_second": 20, "default_locale": "fr"},
    )
    assert (
        r.status_code == 200
        and r.json()["caps"]["email"] == []
        and r.json()["rate_per_second"] == 20
    )
    assert (
        api.put("/v1/messages/policy", json={"timezone": "Mars/Base"}).json()["fields"][0]["field"]
        == "timezone"
    )


def _token(session, tenant, ext, topic):  # type: ignore[no-untyped-def]
    from fidele.customers.repository import CustomerRepository

    c = CustomerRepository(session).by_external_id(tenant.merchant_id, ext)
    return c, domain.unsubscribe_token(get_settings().secret_key, tenant.merchant_id, c.id, topic)


def test_one_click_unsubscribe_and_forged_or_foreign_tokens(api, session, tenant):
    _customer(api, "c1", consent={"email_marketing": True})
    _customer(api, "c2", consent={"email_marketing": True})
    c1, token = _token(session, tenant, "c1", "newsletter")
    c2, _ = _token(session, tenant, "c2", "newsletter")
    # another customer's id in a genuine token, a made-up signature, another topic: refused
    m, cid, topic, sig = token.split(".")
    for forged in (
        f"{m}.{c2.id}.{topic}.{sig}",
        f"{m}.{cid}.{topic}.{'A' * len(sig)}",
        f"{m}.{cid}.lifecycle.{sig}",
    ):
        r = api.post(
            f"/v1/messages/unsubscribe/{forged}",
            content="List-Unsubscribe=One-Click",
            headers={"Authorization": "", "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 404, forged
    kw = {"merchant_id": tenant.merchant_id, "channel": "email", "topic": "newsletter"}
    assert service.consent_granted(session, customer_id=c2.id, **kw)
    assert service.consent_granted(session, customer_id=c1.id, **kw)
    r = api.post(
        f"/v1/messages/unsubscribe/{token}",
        content="List-Unsubscribe=One-Click",
        headers={"Authorization": "", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    session.expire_all()
    assert not service.consent_granted(session, customer_id=c1.id, **kw)
    assert service.consent_granted(session, customer_id=c2.id, **kw)  # only c1, only newsletter
    assert service.consent_granted(session, customer_id=c1.id, **{**kw, "topic": "lifecycle"})
    rows = {c.topic: c for c in service.consents_of(session, tenant.merchant_id, c1.id)}
    assert rows["newsletter"].source == "unsubscribe_link"


def test_preference_page_fr_en_and_leave_everything(api, session, tenant):
    _customer(api, "c1", locale="fr", consent={"email_marketing": True})
    c1, token = _token(session, tenant, "c1", "newsletter")
    page = api.get(f"/v1/messages/unsubscribe/{token}", headers={"Authorization": ""})
    assert (
        page.status_code == 200
        and "Vos préférences" in page.text
        and 'value="lifecycle" checked' in page.text
    )
    _customer(api, "c3", consent={"email_marketing": True})
    c3, token3 = _token(session, tenant, "c3", "newsletter")
    page = api.get(
        f"/v1/messages/unsubscribe/{token3}", headers={"Authorization": "", "Accept-Language": "en"}
    )
    assert "Your email preferences" in page.text
    form = {"Authorization": "", "Content-Type": "application/x-www-form-urlencoded"}
    r = api.post(
        f"/v1/messages/unsubscribe/{token}",
        content="topic=lifecycle&topic=survey&save=1",
        headers=form,
    )
    assert r.status_code == 200
    session.expire_all()
    granted = {c.topic: c.granted for c in service.consents_of(session, tenant.merchant_id, c1.id)}
    assert granted == {"newsletter": False, "lifecycle": True, "survey": True}
    r = api.post(f"/v1/messages/unsubscribe/{token}", content="leave_all=1", headers=form)
    session.expire_all()
    assert not any(c.granted for c in service.consents_of(session, tenant.merchant_id, c1.id))
    assert (
        api.get(
            "/v1/messages/unsubscribe/1.2.newsletter.abc", headers={"Authorization": ""}
        ).status_code
        == 404
    )


def test_delivery_events_suppress(api, session, tenant):
    _customer(api, "c1", consent={"email_marketing": True})
    r = api.post(
        "/v1/messages/delivery-events",
        json={
            "events": [
                {"type": "soft_bounce", "email": "c1@example.com"},
                {
                    "type": "hard_bounce",
                    "email": "C1@Example.com",
                    "diagnostic": "550 no such user",
                },
            ]
        },
    )
    assert r.status_code == 200 and r.json() == {"recorded": 2, "suppressed": ["c1@example.com"]}
    c1, _ = _token(session, tenant, "c1", "newsletter")
    assert not service.consent_granted(
        session,
        merchant_id=tenant.merchant_id,
        customer_id=c1.id,
        topic="transactional",
        channel="email",
    )
    assert customer_of(session, tenant.merchant_id, c1.id).id == c1.id


def test_preview_context_has_orders_loyalty_and_caller_context(api, session, tenant):
    from fidele.customers.repository import CustomerRepository
    from fidele.loyalty import service as loyalty
    from tests.conftest import T0
    from tests.fixtures.factories import order_body

    _customer(api, "c1")
    lines = [
        {
            "product_id": "p9",
            "name": "Teapot",
            "category": "kitchen",
            "quantity": 1,
            "unit_price": 4200,
        }
    ]
    assert api.post("/v1/orders", json=order_body("o-1", "c1", lines=lines)).status_code in (
        200,
        201,
    )
    text = (
        "{{ orders[0].lines[0].name }}/{{ orders[0].categories[0] }}/{{ orders[0].total }}|"
        "{{ loyalty.available }}|{{ coupon_code }}|{{ insights }}"
    )
    variants = {"en": {"subject": "s", "text": text}}
    assert (
        _template(api, name="ctx", variants=variants, variables=["coupon_code"]).status_code == 201
    )
    r = api.post(
        "/v1/messages/preview",
        json={"template": "ctx", "customer_id": "c1", "context": {"coupon_code": "C-1"}},
    )
    assert r.status_code == 200, r.text
    c = CustomerRepository(session).by_external_id(tenant.merchant_id, "c1")
    points = loyalty.summary(session, c, T0)["available"]
    assert r.json()["text"].startswith(f"Teapot/kitchen/4200|{points}|C-1|None")


def test_ledger_lists_a_customers_journey_with_reasons(api, session, tenant):
    from tests.conftest import T0

    _customer(api, "c1", consent={"email_marketing": True})
    _customer(api, "c2")
    assert _template(api).status_code == 201
    ids = {}
    for ext in ("c1", "c2"):
        from fidele.customers.repository import CustomerRepository

        c = CustomerRepository(session).by_external_id(tenant.merchant_id, ext)
        ids[ext] = service.send(
            session,
            merchant_id=tenant.merchant_id,
            customer_id=c.id,
            template="welcome",
            topic="newsletter",
            key=f"b:{ext}",
            now=T0,
            source={"broadcast_id": 7},
        )
    session.commit()
    rows = api.get("/v1/messages/sends", params={"customer_id": "c2"}).json()["items"]
    assert [(r["status"], r["reason"], r["broadcast_id"]) for r in rows] == [
        ("skipped", "no_consent", 7)
    ]
    queued = api.get("/v1/messages/sends", params={"status": "queued"}).json()["items"]
    assert [r["id"] for r in queued] == [ids["c1"].send_id]
    assert api.get("/v1/messages/sends", params={"customer_id": "nobody"}).status_code == 404
