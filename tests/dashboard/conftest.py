"""A demo shop in the test database, dashboard users and signed-in test clients."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fidele.analytics import service as analytics
from fidele.dashboard import domain, service, web
from fidele.db.session import transaction
from fidele.demo import service as demo_shop
from fidele.kit.clock import FrozenClock
from tests.conftest import SECRET
from tests.fixtures.browser import browser, demo  # noqa: F401 (the browser tests' fixtures)

PASSWORD = "a long enough password"
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(autouse=True)
def _fresh_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test counts its own failed logins (the throttle lives in the process)."""
    monkeypatch.setattr(web, "throttle", domain.LoginThrottle())


@pytest.fixture
def shop(factory: sessionmaker[Session], clock: FrozenClock) -> demo_shop.DemoShop:
    """A small demo shop with its analytics refreshed (stored reports and insights)."""
    made = demo_shop.build(factory, seed=5, n_customers=60, now=clock.now(), server_secret=SECRET)
    with transaction(factory) as session:
        analytics.refresh(session, made.merchant_id, clock.now())
    return made


def make_user(
    factory: sessionmaker[Session], merchant_id: int, role: str, now: object, email: str
) -> str:
    with transaction(factory) as session:
        service.create_user(
            session, merchant_id=merchant_id, email=email, password=PASSWORD, role=role, now=now
        )
    return email


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD) -> None:
    token = csrf_of(client.get("/login").text)
    answer = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text[:500]


def post(client: TestClient, path: str, page: str, data: dict[str, str]) -> object:
    """Submit a form of ``page`` as a browser would: with the page's CSRF token."""
    token = csrf_of(client.get(page, headers=HTML).text)
    return client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)


def signed_in(
    app: object, factory: sessionmaker[Session], merchant_id: int, role: str, now: object
) -> Iterator[TestClient]:
    with TestClient(app) as c:  # type: ignore[arg-type]
        login(c, make_user(factory, merchant_id, role, now, f"{role}@shop.test"))
        yield c


@pytest.fixture
def admin(app, factory, shop, clock) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    yield from signed_in(app, factory, shop.merchant_id, "admin", clock.now())


@pytest.fixture
def reader(app, factory, shop, clock) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    yield from signed_in(app, factory, shop.merchant_id, "read-only", clock.now())


@pytest.fixture
def marketer(app, factory, shop, clock) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    yield from signed_in(app, factory, shop.merchant_id, "marketer", clock.now())
