"""The column-wise earning of the batch replay equals ``domain.order_points``, order by
order, for random orders (lines, discounts, gift cards, channels, currencies, dates) and scales
(bases, multipliers by category, product, channel, tier and dates, first-order bonuses)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from fidele.loyalty import domain
from fidele.loyalty.bulk_earning import add_months, earnings, earnings_by_domain
from fidele.loyalty.bulk_store import LINE_SCHEMA, to_us
from fidele.loyalty.config import parse

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CATS = st.sampled_from([None, "", "shoes", "hats"])
DAYS = st.integers(-5, 5).map(lambda d: (T0 + timedelta(days=d)).isoformat())

multiplier = st.fixed_dictionaries(
    {"type": st.just("multiplier"), "multiplier_bp": st.integers(0, 40_000)},
    optional={
        "categories": st.lists(st.sampled_from(["shoes", "hats"]), max_size=2),
        "products": st.lists(st.sampled_from(["p1", "p2"]), max_size=1),
        "channels": st.lists(st.sampled_from(["web", "pos"]), max_size=1),
        "tiers": st.lists(st.sampled_from(["Bronze", "Silver"]), max_size=1),
        "starts_at": DAYS,
        "ends_at": DAYS,
    },
)
first_order = st.fixed_dictionaries(
    {"type": st.just("first_order"), "points": st.integers(0, 100)},
    optional={"starts_at": DAYS, "ends_at": DAYS},
)
scales = st.fixed_dictionaries(
    {
        "settings": st.fixed_dictionaries(
            {
                "points_per_unit": st.integers(0, 20),
                "base": st.sampled_from(["total", "net", "no_shipping"]),
            }
        ),
        "rules": st.lists(st.one_of(multiplier, first_order), max_size=4).map(
            lambda rules: [{**r, "id": f"r{i}"} for i, r in enumerate(rules)]
        ),
        "tiers": st.sampled_from(
            [
                {"levels": []},
                {
                    "levels": [
                        {"name": "Bronze"},
                        {"name": "Silver", "threshold": {"value": 10}, "multiplier_bp": 12_500},
                    ]
                },
            ]
        ),
    }
)
line = st.tuples(
    st.integers(1, 5),
    st.integers(0, 50_000),
    CATS,
    st.sampled_from([None, "p1", "p2"]),
    st.sampled_from(["product", "product", "gift_card"]),
)
order = st.tuples(
    st.lists(line, max_size=4),
    st.integers(0, 30_000),  # discounts (capped by the lines, as facts_of does)
    st.integers(0, 2_000),  # shipping
    st.integers(0, 2_000),  # tax
    st.sampled_from([None, "web", "pos"]),
    st.sampled_from(["EUR", "JPY", "KWD"]),
    st.integers(-6, 6),
)


@settings(max_examples=150, deadline=None)
@given(scale=scales, orders=st.lists(order, min_size=1, max_size=12))
def test_columns_equal_the_domain(scale: dict, orders: list) -> None:
    rows, lines = [], []
    for i, (ls, discounts, shipping, tax, channel, currency, day) in enumerate(orders):
        subtotal = sum(q * u for q, u, *_ in ls)
        discounts = min(discounts, subtotal)
        total = subtotal - discounts + shipping + tax
        placed = to_us(T0 + timedelta(days=day, hours=i))
        rows.append((i, placed, currency, total, discounts, shipping, tax, channel))
        lines += [(i, n, *ln) for n, ln in enumerate(ls, start=1)]
    frame = pl.DataFrame(
        rows,
        schema=["idx", "placed_us", "currency", "total", "discounts", "shipping", "tax", "channel"],
        orient="row",
    )
    line_frame = pl.DataFrame(
        lines,
        schema={"idx": pl.Int64, **{k: v for k, v in LINE_SCHEMA.items() if k != "id"}},
        orient="row",
    )
    parsed = parse(scale)
    fast = earnings(parsed, frame, line_frame)
    assert fast is not None
    assert fast == earnings_by_domain(parsed, frame, line_frame)


def test_add_months_on_columns_equals_the_domain() -> None:
    starts = [
        T0 + timedelta(days=d, seconds=d * 7919 % 86_400, microseconds=d) for d in range(-800, 800)
    ]
    starts += [datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC)]
    us = pl.DataFrame({"us": [to_us(t) for t in starts]})
    for months in (1, 2, 11, 12, 13, 25, 600):
        got = us.select(add_months(pl.col("us"), months))["us"].to_list()
        assert got == [to_us(domain.add_months(t, months)) for t in starts]
