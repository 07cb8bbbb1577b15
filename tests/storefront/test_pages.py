"""The dashboard's storefront settings page: origins, colours, launcher text; the secret."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fidele.kit.clock import FrozenClock
from tests.dashboard.conftest import HTML, csrf_of, login, make_user

PAGE = "/settings/storefront"


def _signed_in(
    app: Any, factory: sessionmaker[Session], tenant: Any, clock: FrozenClock, role: str
) -> TestClient:
    client = TestClient(app)
    login(client, make_user(factory, tenant.merchant_id, role, clock.now(), f"{role}@shop.test"))
    return client


def _submit(client: TestClient, path: str, data: dict[str, str]) -> Any:
    token = csrf_of(client.get(PAGE, headers=HTML).text)
    return client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


def test_an_admin_sets_origins_colours_and_launcher_text(
    app: Any, factory: sessionmaker[Session], tenant: Any, clock: FrozenClock
) -> None:
    admin = _signed_in(app, factory, tenant, clock, "admin")
    assert PAGE in admin.get("/settings", headers=HTML).text
    page = admin.get(PAGE, headers=HTML)
    assert page.status_code == 200 and 'id="storefront-form"' in page.text
    r = _submit(
        admin,
        PAGE,
        {
            "origins": "https://shop.example\nhttp://localhost:3000/",
            "primary": "#aa0000",
            "text": "#ffffff",
            "launcher_en": "My points",
            "launcher_fr": "Mes points",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == PAGE
    program = admin.get("/storefront/v1/program", params={"merchant": tenant.merchant_id}).json()
    assert (program["look"]["primary"], program["look"]["launcher_en"]) == ("#aa0000", "My points")
    page = html.unescape(admin.get(PAGE, headers=HTML).text)
    assert "http://localhost:3000\nhttps://shop.example" in page
    # a bad origin is refused, naming the field; nothing changes
    r = _submit(admin, PAGE, {"origins": "not an origin", "launcher_en": "x", "launcher_fr": "y"})
    assert r.status_code == 303
    flashed = html.unescape(admin.get(PAGE, headers=HTML).text)
    assert "origins" in flashed and "https://shop.example" in flashed


def test_the_secret_is_shown_once_and_verifies_tokens(
    app: Any, factory: sessionmaker[Session], tenant: Any, clock: FrozenClock
) -> None:
    admin = _signed_in(app, factory, tenant, clock, "admin")
    page = _submit(admin, f"{PAGE}/secret", {})
    assert page.status_code == 200
    secret = re.search(r'id="new-secret">([^<]+)<', page.text)
    assert secret and secret.group(1).startswith("sfsec_")
    assert secret.group(1) not in admin.get(PAGE, headers=HTML).text


def test_a_read_only_user_sees_but_cannot_change(
    app: Any, factory: sessionmaker[Session], tenant: Any, clock: FrozenClock
) -> None:
    reader = _signed_in(app, factory, tenant, clock, "read-only")
    page = reader.get(PAGE, headers=HTML)
    assert page.status_code == 200 and 'id="storefront-form"' not in page.text
    token = csrf_of(reader.get("/settings", headers=HTML).text)
    r = reader.post(
        PAGE, data={"csrf_token": token, "origins": "https://x.example"}, follow_redirects=False
    )
    assert r.status_code in (303, 403)
    assert (
        reader.get("/storefront/v1/program", params={"merchant": tenant.merchant_id}).status_code
        == 200
    )
    assert "https://x.example" not in reader.get(PAGE, headers=HTML).text
