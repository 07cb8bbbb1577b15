"""What a person meets first over HTTP: ``/``, the docs pages (which must work offline and
offer the API key), and the error shape of routes that do not exist."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

# Authenticated by the platform's HMAC signature, not by an API key.
SIGNED_WEBHOOKS = {
    "/v1/webhooks/shopify/{merchant_id}",
    "/v1/webhooks/woocommerce/{merchant_id}",
    "/v1/webhooks/helpdesk/{merchant_id}",  # a helpdesk ticket, signed like the shop webhooks
    # the customer's signed unsubscribe link (RFC 8058): the token is the authority
    "/v1/messages/unsubscribe/{token}",
}
PUBLIC = {"/", "/healthz", "/v1/t/o/{token}", "/v1/t/c/{token}"}  # tracking: signed tokens
PUBLIC |= {"/storefront/v1/program"}  # the programme as anyone may read it
# The shop's customers: a token the shop signs (the API key is refused there).
CUSTOMER_TOKEN = {
    f"/storefront/v1/{p}"
    for p in ("me", "rewards", "redemptions", "history", "referral", "activities")
}


@pytest.mark.parametrize(
    ("page", "kinds"),
    [("/docs", {"javascript", "css"}), ("/redoc", {"javascript"})],
)
def test_docs_pages_load_only_their_own_assets(
    client: TestClient, page: str, kinds: set[str]
) -> None:
    html = client.get(page)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html.text)
    urls += re.findall(r"""(?:url|spec-url)\s*[:=]\s*["']([^"']+)""", html.text)
    assert urls
    assert not re.search(r"https?://", html.text), "the page loads something from elsewhere"
    served = set()
    for url in urls:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        served.add(asset.headers["content-type"].split(";")[0])
    assert "application/json" in served  # the OpenAPI document
    for kind in kinds:
        assert any(kind in t for t in served), (kind, served)
    js = next(u for u in urls if u.endswith(".js"))
    assert len(client.get(js).content) > 100_000  # the bundle itself, not a stub


def test_openapi_declares_the_bearer_key_on_every_protected_operation(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    checked = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            security = operation.get("security")
            if path in PUBLIC | SIGNED_WEBHOOKS:
                assert not security, (method, path)
            elif path in CUSTOMER_TOKEN:
                assert security == [{"storefront": []}], (method, path)
            else:
                assert security == [{"bearer": []}], (method, path)
                checked += 1
    assert checked > 40
    # the hot endpoints that authenticate in one thread-pool hop are declared too
    assert doc["paths"]["/v1/orders"]["post"]["security"] == [{"bearer": []}]
    assert doc["paths"]["/v1/checkout/evaluate"]["post"]["security"] == [{"bearer": []}]


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/v1/customers"), ("get", "/v1/orders/o1"), ("put", "/v1/customers/c1")],
)
def test_a_missing_key_still_answers_fideles_401(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method.upper(), path, json={})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    wrong_scheme = client.request(
        method.upper(), path, json={}, headers={"Authorization": "Basic abc"}
    )
    assert (wrong_scheme.status_code, wrong_scheme.json()["error"]) == (401, "unauthorized")


def test_root_names_the_service_and_links_that_answer(client: TestClient) -> None:
    from fidele import __version__

    body = client.get("/").json()
    assert (body["name"], body["version"]) == ("fidele", __version__)
    assert {"docs", "openapi", "health"} <= set(body["links"])
    for link in body["links"].values():
        assert client.get(link).status_code == 200, link


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/static-offline-docs/missing.js"])
def test_unknown_paths_answer_404_in_the_error_shape(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "not_found" and path in body["detail"]
    assert set(body) == {"error", "detail"}


def test_a_wrong_method_answers_405_in_the_error_shape_with_allow(client: TestClient) -> None:
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    body = response.json()
    assert body == {"error": "method_not_allowed", "detail": "DELETE is not allowed on /healthz"}


def test_a_known_resource_missing_keeps_its_domain_404(api: TestClient) -> None:
    response = api.get("/v1/customers/nobody")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
