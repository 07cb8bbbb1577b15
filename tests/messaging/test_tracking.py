"""Open pixel, signed click redirects and conversion attribution."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidele.kit.clock import FrozenClock
from fidele.messaging import measurement, tracking
from fidele.messaging.measure_models import MessageConversion, MessageInteraction
from tests.conftest import SECRET
from tests.fixtures.factories import Tenant
from tests.messaging.shop import customer_id, place

PUBLIC = "http://127.0.0.1:8000"
HTML = """<html><body><p>Hello</p>
<a href="https://shop.example/p/42?utm=a&amp;b=1">Product</a>
<a class="x" href='https://shop.example/'>Shop</a>
<a href="mailto:help@shop.example">Mail us</a>
<a href="http://127.0.0.1:8000/v1/unsubscribe/abc">Unsubscribe</a>
</body></html>"""


def marked(merchant_id: int, cid: int, send_id: int) -> str:
    return tracking.instrument_html(
        HTML,
        public_url=PUBLIC,
        secret=SECRET,
        merchant_id=merchant_id,
        customer_id=cid,
        send_id=send_id,
    )


def links(html: str) -> list[str]:
    return re.findall(r"""href=["']([^"']+)["']""", html)


def path(url: str) -> str:
    return url.removeprefix(PUBLIC)


def test_instrument_rewrites_only_outside_links() -> None:
    out = marked(1, 2, 3)
    found = links(out)
    assert found[0].startswith(PUBLIC + tracking.CLICK_PATH)
    assert found[1].startswith(PUBLIC + tracking.CLICK_PATH)
    assert found[2] == "mailto:help@shop.example"
    assert found[3] == "http://127.0.0.1:8000/v1/unsubscribe/abc"
    pixel = re.search(r'<img src="([^"]+)"', out)
    assert pixel is not None
    assert pixel.group(1).startswith(PUBLIC + tracking.OPEN_PATH)
    assert out.index("<img") < out.index("</body>")
    mark = tracking.Mark.parse(SECRET, found[0].rsplit("/", 1)[1], "click")
    assert mark == tracking.Mark("click", 1, 2, 3, "https://shop.example/p/42?utm=a&b=1")


def test_tampered_or_foreign_tokens_are_refused() -> None:
    token = tracking.click_url(
        PUBLIC, SECRET, "https://shop.example/", merchant_id=1, customer_id=2, send_id=3
    ).rsplit("/", 1)[1]
    body, tag = token.split(".")
    evil = tracking.sign(
        "another-secret", {"k": "c", "m": 1, "c": 2, "s": 3, "u": "https://evil.example/"}
    )
    forged_body = evil.split(".")[0]
    assert tracking.Mark.parse(SECRET, f"{forged_body}.{tag}", "click") is None
    assert tracking.Mark.parse(SECRET, evil, "click") is None
    assert tracking.Mark.parse(SECRET, token, "open") is None  # a click token is no pixel
    assert tracking.Mark.parse(SECRET, token[:-2], "click") is None
    assert tracking.Mark.parse(SECRET, "garbage", "click") is None
    js = tracking.sign(SECRET, {"k": "c", "m": 1, "c": 2, "s": 3, "u": "javascript:alert(1)"})
    assert tracking.Mark.parse(SECRET, js, "click") is None


def test_pixel_and_clicks_over_http(
    api: TestClient, session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    cid = customer_id(session, tenant, "c1", clock.now())
    session.commit()
    api.headers.pop("Authorization")  # tracking needs no key
    out = marked(tenant.merchant_id, cid, 77)
    product, shop = links(out)[:2]
    pixel = re.search(r'<img src="([^"]+)"', out).group(1)  # type: ignore[union-attr]
    for _ in range(2):
        r = api.get(path(pixel))
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/gif"
        assert r.content == tracking.PIXEL_GIF
    r = api.get(path(product), follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "https://shop.example/p/42?utm=a&b=1"
    clock.advance(timedelta(minutes=5))
    assert api.get(path(product), follow_redirects=False).status_code == 302
    assert (
        api.get(path(shop), follow_redirects=False).headers["location"] == "https://shop.example/"
    )
    rows = session.scalars(select(MessageInteraction).order_by(MessageInteraction.id)).all()
    got = sorted((r.kind, r.url, r.count) for r in rows)
    assert got == [
        ("click", "https://shop.example/", 1),
        ("click", "https://shop.example/p/42?utm=a&b=1", 2),
        ("open", "", 2),
    ]
    product_row = next(r for r in rows if r.url.endswith("b=1"))
    assert product_row.last_at - product_row.first_at == timedelta(minutes=5)
    assert {r.send_id for r in rows} == {77}
    # A token whose URL was swapped (an open redirect attempt) is a 404, not a redirect.
    token = path(product).rsplit("/", 1)[1]
    evil = tracking.sign("x", {"k": "c", "m": 1, "c": cid, "s": 77, "u": "https://evil.example/"})
    r = api.get(
        f"{tracking.CLICK_PATH}{evil.split('.')[0]}.{token.split('.')[1]}", follow_redirects=False
    )
    assert r.status_code == 404
    assert "location" not in r.headers
    assert api.get(tracking.OPEN_PATH + "nope.nope").status_code == 404


def touch(session: Session, tenant: Tenant, cid: int, send_id: int, kind: str, at) -> None:  # type: ignore[no-untyped-def]
    url = "https://shop.example/" if kind == "click" else ""
    tracking.record(session, tracking.Mark(kind, tenant.merchant_id, cid, send_id, url), at)


@pytest.mark.parametrize(
    ("kind", "days_before", "attributed"),
    [("click", 4.9, True), ("click", 5.1, False), ("open", 2.9, True), ("open", 3.1, False)],
)
def test_attribution_windows(
    session: Session,
    tenant: Tenant,
    clock: FrozenClock,
    kind: str,
    days_before: float,
    attributed: bool,
) -> None:
    cid = customer_id(session, tenant, "c1", clock.now())
    touch(session, tenant, cid, 5, kind, clock.now() - timedelta(days=days_before))
    order = place(session, tenant, "o1", "c1", at=clock.now())
    conv = session.scalars(select(MessageConversion)).all()
    assert [(c.order_id, c.send_id, c.touch) for c in conv] == (
        [(order.id, 5, kind)] if attributed else []
    )


def test_click_beats_a_later_open_and_last_click_wins(
    session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    cid = customer_id(session, tenant, "c1", clock.now())
    now = clock.now()
    touch(session, tenant, cid, 1, "click", now - timedelta(days=4))
    touch(session, tenant, cid, 2, "click", now - timedelta(days=2))
    touch(session, tenant, cid, 3, "open", now - timedelta(hours=1))
    other = customer_id(session, tenant, "c2", now)
    touch(session, tenant, other, 9, "click", now - timedelta(hours=1))  # someone else's
    place(session, tenant, "o1", "c1", at=now)
    assert [(c.send_id, c.touch) for c in session.scalars(select(MessageConversion))] == [
        (2, "click")
    ]


def test_windows_follow_the_merchant_settings(
    session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    measurement.put(
        session,
        tenant.merchant_id,
        global_holdout_share=0,
        click_days=10,
        open_days=0,
        now=clock.now(),
    )
    cid = customer_id(session, tenant, "c1", clock.now())
    touch(session, tenant, cid, 4, "open", clock.now() - timedelta(hours=1))
    place(session, tenant, "o1", "c1", at=clock.now())
    assert session.scalars(select(MessageConversion)).all() == []  # opens turned off
    touch(session, tenant, cid, 5, "click", clock.now() - timedelta(days=9))
    place(session, tenant, "o2", "c1", at=clock.now() + timedelta(seconds=1))
    assert [c.send_id for c in session.scalars(select(MessageConversion))] == [5]


def test_export_and_erasure_of_opens_and_clicks(
    api: TestClient, session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    cid = customer_id(session, tenant, "c1", clock.now())
    touch(session, tenant, cid, 8, "click", clock.now() - timedelta(hours=2))
    touch(session, tenant, cid, 8, "open", clock.now() - timedelta(hours=3))
    place(session, tenant, "o1", "c1", at=clock.now())
    session.commit()
    exported = api.get("/v1/customers/c1/export").json()["message_tracking"]
    assert sorted((x["kind"], x["url"]) for x in exported["opens_and_clicks"]) == [
        ("click", "https://shop.example/"),
        ("open", None),
    ]
    assert [(c["message_id"], c["touch"]) for c in exported["conversions"]] == [(8, "click")]
    assert api.delete("/v1/customers/c1").status_code in (200, 204)
    assert session.scalars(select(MessageInteraction)).all() == []
    assert [c.send_id for c in session.scalars(select(MessageConversion))] == [8]
