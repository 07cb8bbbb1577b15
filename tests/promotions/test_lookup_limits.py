"""The code lookup limit under parallel guessing, with gift cards, and across rollbacks: at most
``failed_lookups_per_minute`` failed lookups get an answer per window, on both backends."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from fidele.db.session import make_sessionmaker, transaction
from fidele.errors import FideleError
from fidele.promotions import giftcards, ratelimit, service
from fidele.promotions.models import RateCounter
from fidele.promotions.schemas import CheckoutIn
from tests.conftest import T0
from tests.fixtures.factories import SECRET, Tenant, make_tenant
from tests.promotions.conftest import cart

LIMIT = 10  # PromotionConfig.failed_lookups_per_minute's default


def _tenant(engine: Engine) -> Tenant:
    with transaction(make_sessionmaker(engine)) as s:
        return make_tenant(s, T0)


def _counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        return {r.key: r.count for r in s.scalars(select(RateCounter))}


def _wrong(i: int, n: int = 10) -> list[str]:
    return [f"GUESS{i:03d}X{j:02d}" for j in range(n)]


def test_parallel_guessing_answers_at_most_the_limit(committed_engine: Engine) -> None:
    """20 threads, each its own connection and transaction, 10 wrong codes each."""
    tenant = _tenant(committed_engine)
    factory = make_sessionmaker(committed_engine)

    def guess(i: int) -> int | str:
        body = CheckoutIn.model_validate(cart(*_wrong(i), customer=f"c{i}"))
        try:
            with transaction(factory) as s:
                row = service.evaluate(s, tenant.caller, body, T0)
                return len(row.result["rejected_codes"])
        except FideleError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(guess, range(20)))
    answered = sum(r for r in results if isinstance(r, int))
    assert answered == LIMIT, results
    assert results.count("rate_limited") == 19
    counts = _counts(committed_engine)
    key = ratelimit.keys(tenant.caller)[0]
    assert counts[key] == LIMIT
    assert counts[f"{key}#in-flight"] == 0


def test_a_failed_checkout_keeps_its_count(committed_engine: Engine) -> None:
    """The count survives the request's rollback (here: a 422 on points an unknown customer
    does not have, raised after the codes were looked up)."""
    tenant = _tenant(committed_engine)
    factory = make_sessionmaker(committed_engine)
    for i in range(3):
        body = CheckoutIn.model_validate(cart(*_wrong(i, 3), points=100))
        with pytest.raises(FideleError) as exc, transaction(factory) as s:
            service.evaluate(s, tenant.caller, body, T0)
        assert exc.value.http_status == 422 and exc.value.extra["fields"][0]["field"] == "points"
    assert _counts(committed_engine)[ratelimit.keys(tenant.caller)[0]] == 9
    body = CheckoutIn.model_validate(cart(*_wrong(9, 2)))
    with pytest.raises(FideleError) as exc, transaction(factory) as s:
        service.evaluate(s, tenant.caller, body, T0)
    assert exc.value.code == "rate_limited"  # 9 + 2 would go over 10


def test_an_error_during_the_lookups_settles_them_as_failures(committed_engine: Engine) -> None:
    """Whatever breaks between counting and settling, nothing stays in flight."""
    tenant = _tenant(committed_engine)
    rate_keys = ratelimit.keys(tenant.caller, "c1")

    class Boom(Exception):
        pass

    def lookup_then_fail() -> None:
        with (
            transaction(make_sessionmaker(committed_engine)) as s,
            ratelimit.lookups(s, rate_keys, T0, 3, LIMIT) as tally,
        ):
            tally.found = 1
            raise Boom

    with pytest.raises(Boom):
        lookup_then_fail()
    counts = _counts(committed_engine)
    assert [counts[k] for k in rate_keys] == [2, 2]
    assert [counts[f"{k}#in-flight"] for k in rate_keys] == [0, 0]


def test_valid_codes_in_parallel_are_never_refused(committed_engine: Engine) -> None:
    """Lookups in flight count against the limit, but valid ones wait for each other rather
    than answer 429: 60 parallel gift card lookups of a real card all answer."""
    tenant = _tenant(committed_engine)
    with transaction(make_sessionmaker(committed_engine)) as s:
        code = giftcards.issue(
            s,
            programme_id=tenant.programme_id,
            merchant_id=tenant.merchant_id,
            amount=1000,
            currency="EUR",
            now=T0,
        ).code
    assert code is not None
    factory = make_sessionmaker(committed_engine)

    def look(_: int) -> int:
        with transaction(factory) as s:
            return giftcards.lookup(s, tenant.caller, code, T0).balance

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(look, range(60))) == [1000] * 60
    assert _counts(committed_engine)[ratelimit.keys(tenant.caller)[0]] == 0


class TestGiftCards:
    def test_get_wrong_codes_answers_429_after_the_limit(self, api: TestClient) -> None:
        made = api.post("/v1/gift-cards", json={"amount": 500, "currency": "EUR"}).json()
        statuses = [api.get(f"/v1/gift-cards/WRONG{i:04d}").status_code for i in range(200)]
        assert statuses[:LIMIT] == [404] * LIMIT
        assert set(statuses[LIMIT:]) == {429}
        r = api.get(f"/v1/gift-cards/{made['code']}")
        assert r.status_code == 429  # a real card too: the key is out of lookups this minute
        assert int(r.headers["Retry-After"]) == 60

    def test_found_cards_do_not_count(self, api: TestClient) -> None:
        made = api.post("/v1/gift-cards", json={"amount": 500, "currency": "EUR"}).json()
        for _ in range(3 * LIMIT):
            assert api.get(f"/v1/gift-cards/{made['code']}").status_code == 200

    def test_checkout_with_wrong_gift_cards_answers_429(self, api: TestClient) -> None:
        statuses = []
        for i in range(60):
            body = cart(gift_cards=[{"code": f"G{i:03d}WRONG", "amount": 100}])
            statuses.append(api.post("/v1/checkout/evaluate", json=body).status_code)
        assert statuses[:LIMIT] == [201] * LIMIT
        assert set(statuses[LIMIT:]) == {429}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(committed_engine: Engine, tmp_path: Path) -> Iterator[str]:
    """A real ``fidele serve`` on the test database."""
    port = _free_port()
    env = {
        **os.environ,
        "FIDELE_DATABASE_URL": committed_engine.url.render_as_string(hide_password=False),
        "FIDELE_SECRET_KEY": SECRET,
        "FIDELE_ENV": "test",
        "FIDELE_EMBEDDED_WORKER": "false",
        # The PostgreSQL server is shared with other test runs: a small pool (10 + 10 overflow
        # by default) keeps this test within max_connections.
        "FIDELE_DB_POOL_SIZE": "4",
    }
    cli = Path(sys.executable).parent / "fidele"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(cli), "serve", "--port", str(port), "--no-access-log"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_served_process_under_60_parallel_guessers(committed_engine: Engine, served: str) -> None:
    """More concurrent clients than the server's thread pool (40), 10 wrong codes each."""
    tenant = _tenant(committed_engine)
    headers = {"Authorization": f"Bearer {tenant.key}"}

    def guess(i: int) -> tuple[int, int]:
        body = cart(*_wrong(i), customer=f"c{i}")
        r = httpx.post(f"{served}/v1/checkout/evaluate", json=body, headers=headers, timeout=120)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            return 429, 0
        assert r.status_code == 201, r.text
        return 201, len(r.json()["rejected_codes"])

    # The server counts in one-minute windows of its own clock: start early in a minute, and
    # allow one more window's limit if the requests still straddle a boundary.
    if time.time() % 60 > 40:
        time.sleep(60 - time.time() % 60 + 0.5)
    first = int(time.time() // 60)
    with ThreadPoolExecutor(max_workers=60) as pool:
        results = list(pool.map(guess, range(60)))
    windows = int(time.time() // 60) - first + 1
    answered = sum(n for _, n in results)
    assert answered == LIMIT or (windows > 1 and answered <= LIMIT * windows), (windows, results)
    assert [s for s, _ in results].count(201) == answered // LIMIT
