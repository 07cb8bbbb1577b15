from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fidele.errors import InvalidInput
from fidele.ingest.amounts import order_amounts, parse_time, to_minor

money = st.integers(min_value=0, max_value=10**9)


@given(
    lines=money,
    discounts=money,
    shipping=money,
    tax=money,
    total=money,
    included=st.booleans(),
    rounding=st.integers(-500, 500),
)
def test_order_amounts_always_add_up_and_keep_the_total(
    lines: int,
    discounts: int,
    shipping: int,
    tax: int,
    total: int,
    included: bool,
    rounding: int,
) -> None:
    out = order_amounts(
        lines,
        discounts=discounts,
        shipping=shipping,
        tax=tax,
        total=total,
        prices_include_tax=included,
        rounding=rounding,
    )
    counted = 0 if included else out["tax"]
    assert lines - out["discounts"] + out["shipping"] + counted + out["adjustment"] == total
    assert out["total"] == total
    # only the per-unit rounding may move tax or discounts, and by no more than it
    assert 0 <= out["tax"] - tax <= max(rounding, 0)
    assert 0 <= out["discounts"] - discounts <= max(-rounding, 0)


def test_order_amounts_records_what_does_not_add_up() -> None:
    """A duty of 3.00 the lines do not show is a discrepancy, not tax."""
    out = order_amounts(10_000, discounts=0, shipping=500, tax=2_000, total=12_800)
    assert out == {
        "shipping": 500,
        "discounts": 0,
        "tax": 2_000,
        "adjustment": 300,
        "total": 12_800,
    }
    rounded = order_amounts(999, discounts=0, shipping=0, tax=0, total=1_000, rounding=1)
    assert rounded["adjustment"] == 0 and rounded["tax"] == 1


@given(st.decimals(min_value=0, max_value=10**9, places=2))
def test_to_minor_is_exact_for_two_decimals(value: Decimal) -> None:
    assert to_minor(str(value), "EUR") == int(value * 100)


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("0.10", "EUR", 10),
        ("19.90", "USD", 1990),
        ("1500", "JPY", 1500),
        ("1.2345", "KWD", 1235),
        ("26.999852", "EUR", 2700),
        ("", "EUR", 0),
        (None, "EUR", 0),
    ],
)
def test_to_minor(value: str | None, currency: str, expected: int) -> None:
    assert to_minor(value, currency) == expected


@pytest.mark.parametrize(("value", "currency"), [("abc", "EUR"), ("NaN", "EUR"), ("1", "XXX")])
def test_to_minor_refuses(value: str, currency: str) -> None:
    with pytest.raises(InvalidInput):
        to_minor(value, currency)


def test_parse_time() -> None:
    assert parse_time("2026-01-05T10:00:00-05:00").isoformat() == "2026-01-05T15:00:00+00:00"
    assert parse_time("2026-01-05T09:00:00", naive_is_utc=True).hour == 9
    with pytest.raises(InvalidInput):
        parse_time("2026-01-05T09:00:00")
