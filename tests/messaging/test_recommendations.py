"""Recommendations: co-occurrence with lift from order lines, read at send time."""

from __future__ import annotations

import itertools
from datetime import timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidele.kit.clock import FrozenClock
from fidele.messaging import recommendations
from fidele.messaging.measure_models import ProductRecommendation
from fidele.orders import service as orders
from fidele.orders.schemas import StatusIn
from fidele.worker.registry import load_jobs
from tests.fixtures.factories import Tenant, make_tenant
from tests.messaging.shop import customer_id, place

BASKETS = {1: "AB", 2: "AB", 3: "AC", 4: "BC", 5: "ABC", 6: "D"}


def frame(baskets: dict[int, str]) -> pl.DataFrame:
    rows = [(c, p) for c, items in baskets.items() for p in items]
    return pl.DataFrame(rows, schema={"customer_id": pl.Int64, "product_id": pl.Utf8}, orient="row")


def test_co_occurrence_by_hand() -> None:
    # N = 6 customers; n_A = 4, n_B = 4, n_C = 3, n_D = 1.
    # A&B: c1 c2 c5 -> support 3, lift 3*6/(4*4) = 1.125, confidence 3/4.
    # A&C: c3 c5 -> support 2, lift 2*6/(4*3) = 1.0;  B&C: c4 c5 -> 2, lift 1.0.
    got = recommendations.co_occurrence(frame(BASKETS)).sort("product_id", "rank").rows()
    assert got == [
        ("A", 1, "B", 3, 1.125, 0.75),
        ("A", 2, "C", 2, 1.0, 0.5),
        ("B", 1, "A", 3, 1.125, 0.75),
        ("B", 2, "C", 2, 1.0, 0.5),
        ("C", 1, "A", 2, 1.0, 2 / 3),
        ("C", 2, "B", 2, 1.0, 2 / 3),
    ]
    assert recommendations.co_occurrence(frame(BASKETS), min_support=3).height == 2


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.integers(1, 40), st.sets(st.sampled_from("ABCDEF"), min_size=1, max_size=6), min_size=1
    )
)
def test_co_occurrence_matches_brute_force(baskets: dict[int, set[str]]) -> None:
    n = len(baskets)
    bought = {p: {c for c, b in baskets.items() if p in b} for p in "ABCDEF"}
    expected = {}
    for a, b in itertools.permutations("ABCDEF", 2):
        both = len(bought[a] & bought[b])
        if both >= 2:
            expected[(a, b)] = (both, both * n / (len(bought[a]) * len(bought[b])))
    got = recommendations.co_occurrence(frame({c: "".join(b) for c, b in baskets.items()}))
    found = {(r[0], r[2]): (r[3], r[4]) for r in got.rows()}
    assert found.keys() == expected.keys()
    for key, (support, lift) in expected.items():
        assert found[key][0] == support
        assert abs(found[key][1] - lift) < 1e-12
    for product in "ABCDEF":  # ranked by lift, then support
        mine = got.filter(pl.col("product_id") == product).sort("rank")
        keys = [(-lift, -s) for lift, s in zip(mine["lift"], mine["support"], strict=True)]
        assert keys == sorted(keys)


def shop(session: Session, tenant: Tenant, clock: FrozenClock) -> None:
    at = clock.now() - timedelta(days=30)
    for i, (c, items) in enumerate(BASKETS.items()):
        place(session, tenant, f"o{i}", f"c{c}", list(items), at=at)


def test_for_customer_excludes_what_they_bought(
    session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    shop(session, tenant, clock)
    place(session, tenant, "o-x", "c7", ["A"], at=clock.now() - timedelta(days=1))
    assert recommendations.refresh(session, tenant.merchant_id, clock.now()) > 0
    c7 = customer_id(session, tenant, "c7", clock.now())
    got = recommendations.for_customer(session, tenant.merchant_id, c7, 3)
    # A's partners: B (lift 1.125, computed with c7 now in: N=7, n_A=5 -> 3*7/(5*4) = 1.05),
    # C (2*7/(5*3) = 0.933); then the most bought product not yet bought: D.
    assert [(r.product_id, r.reason) for r in got] == [
        ("B", "also_bought"),
        ("C", "also_bought"),
        ("D", "popular"),
    ]
    assert got[0].name == "Product B"
    assert abs(got[0].lift - 1.05) < 1e-12
    c5 = customer_id(session, tenant, "c5", clock.now())  # bought A, B and C
    assert [
        r.product_id for r in recommendations.for_customer(session, tenant.merchant_id, c5, 3)
    ] == ["D"]
    newcomer = customer_id(session, tenant, "new", clock.now())
    assert [
        r.product_id for r in recommendations.for_customer(session, tenant.merchant_id, newcomer, 2)
    ] == ["A", "B"]


def test_cancelled_orders_and_refunded_lines_do_not_count(
    session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    at = clock.now() - timedelta(days=3)
    for c in ("c1", "c2"):
        place(session, tenant, f"ok-{c}", c, ["A", "B"], at=at)
    for c in ("c3", "c4"):
        place(session, tenant, f"x-{c}", c, ["A", "Z"], at=at)
        orders.set_status(
            session, tenant.caller, f"x-{c}", StatusIn(status="cancelled"), clock.now()
        )
    recommendations.refresh(session, tenant.merchant_id, clock.now())
    rows = session.scalars(
        select(ProductRecommendation.recommended_product_id).where(
            ProductRecommendation.merchant_id == tenant.merchant_id,
            ProductRecommendation.product_id == "A",
        )
    ).all()
    assert rows == ["B"]


def test_merchants_do_not_see_each_other(
    session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    other = make_tenant(session, clock.now(), name="Shop B")
    shop(session, other, clock)
    place(session, tenant, "mine", "c1", ["A"], at=clock.now())
    recommendations.refresh(session, tenant.merchant_id, clock.now())
    recommendations.refresh(session, other.merchant_id, clock.now())
    c1 = customer_id(session, tenant, "c1", clock.now())
    assert recommendations.for_customer(session, tenant.merchant_id, c1, 5) == []
    mine = session.scalar(
        select(func.count()).where(ProductRecommendation.merchant_id == tenant.merchant_id)
    )
    assert mine == 1  # only the popular row of its own product A


def test_the_job_recomputes_only_when_orders_changed(
    session: Session, tenant: Tenant, clock: FrozenClock
) -> None:
    job = load_jobs()["messaging.recommendations"]
    shop(session, tenant, clock)
    assert job.fn(session, clock.now()) >= 1
    clock.advance(timedelta(days=1))
    before = session.scalar(select(func.max(ProductRecommendation.computed_at)))
    job.fn(session, clock.now())
    assert session.scalar(select(func.max(ProductRecommendation.computed_at))) == before
    place(session, tenant, "later", "c9", ["D", "A"], at=clock.now())
    clock.advance(timedelta(minutes=1))
    job.fn(session, clock.now())
    assert session.scalar(select(func.max(ProductRecommendation.computed_at))) == clock.now()
